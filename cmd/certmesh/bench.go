package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/certmesh/certmesh/bench"
)

// benchCommand is `certmesh bench` (its --help).
func benchCommand(stdout, stderr io.Writer) *cli.Command {
	d := bench.DefaultConfig()
	var measures strings.Builder
	for _, m := range bench.Measures {
		fmt.Fprintf(&measures, "  %-18s %s\n", m.Key, m.Help)
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "drive a running cluster with clients that log in, connect, rotate and get revoked; report latencies",
		UsageText: "certmesh bench --controller URL[,URL...] --router ADDR[,ADDR...] --ca FILE (--token T | --token-file F)\n" +
			"   [--admin-cert F --admin-key F] [--clients N] [--rate R] [--duration D] [--json]",
		Description: "Runs --clients clients at once for --duration, each repeating one client's life: log in at a controller\n" +
			"(round robin over --controller, all with the one token), connect through every --router at once\n" +
			"(retrying every --retry-interval while a router refuses), rotate at the next controller and connect\n" +
			"again, revoke the session at the next (with the admin certificate, or by the session's own logout),\n" +
			"and wait for the router to close the connection kept up. --rate caps new lives per second over all\n" +
			"clients (0: as fast as they go). An admission is the upstream answering --probe through the router:\n" +
			"the upstream must answer it (the default is an HTTP GET; an echo answers anything).\n\n" +
			"Prints p50/p90/p99/max in milliseconds (HDR histograms) of:\n" + measures.String() +
			"and the errors of each step. A progress line goes to stderr when it is a terminal. Exit 0 when the\n" +
			"run completed (errors are in the report), 1 when not one login succeeded, 2 on bad usage.\n" +
			"With `certmesh dev`: --ca DIR/pki/ca.pem, --token from its \"try it\" lines, --admin-cert and --admin-key\n" +
			"from DIR/pki/admin/, its controllers' api and routers' tls addresses.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "controller", Usage: "controller API `URL` (https://host:port), or a comma list: logins, rotations and revocations go round robin over them (required)"},
			&cli.StringFlag{Name: "router", Usage: "router client `ADDR`ess (host:port), or a comma list: every client connects through each (required)"},
			caFlag(),
			&cli.StringFlag{Name: "token", Usage: "the OIDC or JWT bearer `TOKEN` every client logs in with"},
			&cli.StringFlag{Name: "token-file", Usage: "read the token from `FILE`"},
			&cli.StringFlag{Name: "admin-cert", Usage: "admin certificate `FILE` (PEM) to revoke with; without it each session logs itself out"},
			&cli.StringFlag{Name: "admin-key", Usage: "admin key `FILE` (PEM)"},
			&cli.IntFlag{Name: "clients", Value: d.Clients, Usage: "clients running at once"},
			&cli.Float64Flag{Name: "rate", Value: d.Rate, Usage: "client lives started per second over all clients; 0: as fast as they go"},
			&cli.DurationFlag{Name: "duration", Value: d.Duration, Usage: "how long new lives start (those under way finish)"},
			&cli.BoolFlag{Name: "no-rotate", Usage: "skip the rotation and its connects"},
			&cli.BoolFlag{Name: "no-revoke", Usage: "skip the revocation and the wait for the close"},
			&cli.StringFlag{Name: "probe", Value: strings.Trim(strconv.Quote(string(d.Probe)), `"`), Usage: "what to send the upstream through a router, with Go escapes (\\r\\n); any answer means admitted"},
			&cli.DurationFlag{Name: "retry-interval", Value: d.RetryInterval, Usage: "wait between two connects to a router that refused"},
			&cli.DurationFlag{Name: "sync-timeout", Value: d.SyncTimeout, Usage: "longest wait for an admission at a router, and for a revoked session's connection to close"},
			&cli.DurationFlag{Name: "timeout", Value: d.CallTimeout, Usage: "bound on one controller call or one connection attempt"},
			&cli.StringFlag{Name: "server-name", Usage: "`NAME` routers' certificates are checked against (default: the host of each --router)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := benchConfigFrom(c)
			if err != nil {
				return err
			}
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				cfg.Progress = func(p bench.Progress) { fmt.Fprintf(stderr, "\r\033[K%s", p) }
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if cfg.Progress != nil {
				fmt.Fprint(stderr, "\r\033[K")
			}
			if rep == nil {
				return usagef("%v", err) // Run refused the config
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); jerr != nil {
					return jerr
				}
			} else if terr := rep.WriteTable(stdout); terr != nil {
				return terr
			}
			return err
		},
	}
}

// benchConfigFrom reads the flags; every error names its flag.
func benchConfigFrom(c *cli.Context) (bench.Config, error) {
	cfg := bench.DefaultConfig()
	sdk, err := clientConfigFrom(c)
	if err != nil {
		return cfg, err
	}
	cfg.Controllers, cfg.RootCAs = sdk.Controllers, sdk.RootCAs
	cfg.Routers = splitList(c.String("router"))
	if len(cfg.Routers) == 0 {
		return cfg, usagef("--router: required")
	}
	if cfg.Token, err = tokenFrom(c); err != nil {
		return cfg, err
	}
	if c.IsSet("admin-cert") || c.IsSet("admin-key") {
		cert, err := loadAdminCert(c)
		if err != nil {
			return cfg, err
		}
		cfg.Admin = &cert
	}
	cfg.Clients, cfg.Rate, cfg.Duration = c.Int("clients"), c.Float64("rate"), c.Duration("duration")
	cfg.Rotate, cfg.Revoke = !c.Bool("no-rotate"), !c.Bool("no-revoke")
	cfg.RetryInterval, cfg.SyncTimeout, cfg.CallTimeout = c.Duration("retry-interval"), c.Duration("sync-timeout"), c.Duration("timeout")
	cfg.ServerName = c.String("server-name")
	probe, err := strconv.Unquote(`"` + strings.ReplaceAll(c.String("probe"), `"`, `\"`) + `"`)
	if err != nil {
		return cfg, usagef("--probe: %q has a bad escape: %v", c.String("probe"), err)
	}
	cfg.Probe = []byte(probe)
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%s", flagOf(err))
	}
	return cfg, nil
}

// flagOf renames the config field an error of bench.Config.Validate names
// to the flag that sets it.
func flagOf(err error) string {
	msg := err.Error()
	for field, flag := range map[string]string{
		"controllers:": "--controller:", "routers:": "--router:", "clients:": "--clients:", "rate:": "--rate:",
		"duration:": "--duration:", "probe:": "--probe:", "retry interval:": "--retry-interval:",
		"sync timeout:": "--sync-timeout:", "call timeout:": "--timeout:",
	} {
		if rest, ok := strings.CutPrefix(msg, field); ok {
			return flag + rest
		}
	}
	return msg
}
