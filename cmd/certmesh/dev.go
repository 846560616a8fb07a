package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/pki"
)

// devCommand is `certmesh dev` (its --help): a whole cluster in one
// process, and a client walked through its life.
func devCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "dev",
		Usage:     "run a development cluster on loopback and walk a client through login, connect, rotation and revocation",
		UsageText: "certmesh dev [--once] [--regions a,b,c] [--routers-per-region N] [--base-port N] [--dir DIR] [--verbose]",
		Description: "Starts, in this process, one controller and N routers per region over real memberlist and real\n" +
			"loopback sockets, a built-in development OIDC issuer (FOR DEVELOPMENT ONLY: it mints tokens for anyone)\n" +
			"and an HTTP echo upstream, prints every endpoint, then walks one client through login, an immediate\n" +
			"connect via a router in another region, a service reached by name and lost when its policy is removed,\n" +
			"rotation and revocation, printing `sync <router> <change> <ms>`\n" +
			"for each change and router. It then keeps running, with commands to try it by hand, until Ctrl-C;\n" +
			"with --once it exits: 0 if every step held, 1 otherwise.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "once", Usage: "exit after the walk: 0 if every step held, 1 otherwise"},
			&cli.StringFlag{Name: "regions", Value: "us-east,eu-west,ap-southeast", Usage: "comma `LIST` of regions, one controller each (at least 3)"},
			&cli.IntFlag{Name: "routers-per-region", Value: 2, Usage: "routers in each region"},
			&cli.StringFlag{Name: "dir", Usage: "keep the PKI and the nodes' data in `DIR` (default: a temporary directory, removed at exit)"},
			&cli.IntFlag{Name: "base-port", Usage: "pin the ports on 127.0.0.1 from `N` on, so that they stay the same from run to run: N the OIDC issuer, N+1 the upstream, then three per controller (mesh, API, metrics), then three per router (mesh, client, metrics); default: free ports"},
			&cli.BoolFlag{Name: "verbose", Usage: "log what the nodes do to stderr"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			regions := splitList(c.String("regions"))
			if len(regions) < 3 {
				return usagef("--regions: the walk needs at least 3 regions, got %d", len(regions))
			}
			for _, r := range regions {
				if err := pki.ValidateName("ctrl-" + r); err != nil {
					return usagef("--regions: %q: %v", r, err)
				}
			}
			if n := c.Int("routers-per-region"); n < 1 || n > 50 {
				return usagef("--routers-per-region: %d not in [1, 50]", n)
			}
			base := c.Int("base-port")
			if need := devcluster.PortsNeeded(len(regions), c.Int("routers-per-region")); base != 0 && (base < 1024 || base+need-1 > 65535) {
				return usagef("--base-port: %d: the cluster needs ports %d to %d; give a port from 1024 to %d", base, base, base+need-1, 65535-need+1)
			}
			dir := c.String("dir")
			if dir == "" {
				// Ours, not devcluster's, so that it is removed even when
				// the cluster's own close is cut short (stopDev).
				tmp, err := os.MkdirTemp("", "certmesh-dev-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			log := slog.New(slog.DiscardHandler)
			if c.Bool("verbose") {
				log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDev(ctx, stdout, devcluster.Options{
				Dir:              dir,
				Regions:          regions,
				RoutersPerRegion: c.Int("routers-per-region"),
				Logger:           log,
				BasePort:         base,
			}, c.Bool("once"))
		},
	}
}

func runDev(ctx context.Context, stdout io.Writer, opts devcluster.Options, once bool) error {
	fmt.Fprintf(stdout, "starting %d controllers and %d routers...\n", len(opts.Regions), len(opts.Regions)*opts.RoutersPerRegion)
	cl, err := devcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer stopDev(cl)
	cl.PrintEndpoints(stdout)
	fmt.Fprintln(stdout)
	if err := cl.Walk(ctx, stdout); err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return fmt.Errorf("dev: the walk failed: %w", err)
	}
	fmt.Fprintln(stdout, "every step held")
	if once {
		return nil
	}
	if err := printTryIt(stdout, cl); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nrunning; Ctrl-C to stop")
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

// devStopWait bounds how long certmesh dev waits for its nodes to leave
// the mesh once it is told to stop. Every node leaves at once, so the last
// one's leave has no one left to hear it, and memberlist would wait its
// whole leave timeout (3 s) for an acknowledgement: nothing the cluster
// keeps needs that wait (a controller's store is durable at each commit).
const devStopWait = 500 * time.Millisecond

// stopDev closes the cluster, waiting at most devStopWait: Ctrl-C ends
// certmesh dev at once.
func stopDev(cl *devcluster.Cluster) {
	done := make(chan struct{})
	go func() {
		cl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(devStopWait):
	}
}

// printTryIt prints commands a person can paste to use the cluster.
func printTryIt(w io.Writer, cl *devcluster.Cluster) error {
	token, err := cl.OIDC.Mint("you", 8*time.Hour)
	if err != nil {
		return err
	}
	exe := "certmesh"
	if p, err := os.Executable(); err == nil && !strings.Contains(p, "go-build") {
		exe = p
	} else {
		exe = "go run ./cmd/certmesh"
	}
	out := filepath.Join(cl.Dir, "you")
	ca := filepath.Join(cl.PKIDir, pki.CACertFile)
	ctrl := "https://" + cl.Controllers[0].APIAddr()
	fmt.Fprintf(w, "\ntry it (the token is valid for 8h):\n")
	fmt.Fprintf(w, "  %s login --controller %s --ca %s --token %s --dir %s\n", exe, ctrl, ca, token, out)
	fmt.Fprintf(w, "  curl --cacert %s --cert %s --key %s https://%s/\n", ca,
		filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"), cl.Routers[0].Addr())
	fmt.Fprintf(w, "  %s status --url http://%s/v1/status\n", exe, cl.Controllers[0].MetricsAddr())
	adminCert, adminKey := filepath.Join(cl.PKIDir, pki.DefaultAdmin, pki.CertFile), filepath.Join(cl.PKIDir, pki.DefaultAdmin, pki.KeyFile)
	fmt.Fprintf(w, "  %s revoke --controller %s --ca %s --admin-cert %s --admin-key %s --identity you\n", exe, ctrl, ca, adminCert, adminKey)
	var ctrls, routers []string
	for _, n := range cl.Controllers {
		ctrls = append(ctrls, "https://"+n.APIAddr())
	}
	for _, r := range cl.Routers {
		routers = append(routers, r.Addr().String())
	}
	fmt.Fprintf(w, "  %s bench --controller %s --router %s --ca %s --admin-cert %s --admin-key %s --token %s --duration 30s\n",
		exe, strings.Join(ctrls, ","), strings.Join(routers, ","), ca, adminCert, adminKey, token)
	return nil
}
