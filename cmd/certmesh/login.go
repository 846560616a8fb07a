package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/pki"
)

// clientCallTimeout bounds one client command's calls.
const clientCallTimeout = 30 * time.Second

// loginCommand is `certmesh login` (SPEC.md section 1).
func loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log in at a controller with a token: new key, CSR, session certificate written to DIR",
		UsageText: "certmesh login --controller URL --ca FILE (--token TOKEN | --token-file F) --out DIR",
		Description: "Generates an ECDSA P-256 key and CSR, calls POST /v1/sessions and writes DIR/key.pem (0600), " +
			"DIR/cert.pem (leaf and intermediate), DIR/ca.pem and DIR/session.json. " +
			"--controller may be repeated (or comma-separated): the next is tried when one is unreachable.",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			&cli.StringFlag{Name: "token", Usage: "the OIDC or JWT bearer `TOKEN`"},
			&cli.StringFlag{Name: "token-file", Usage: "read the token from `FILE`"},
			&cli.StringFlag{Name: "out", Usage: "`DIR` to write the key, certificates and session.json to", Required: true},
		},
		Action: func(c *cli.Context) error {
			cfg, err := clientConfigFrom(c)
			if err != nil {
				return err
			}
			token, err := tokenFrom(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			s, err := client.Login(ctx, cfg, token)
			if err != nil {
				return cli.Exit("certmesh login: "+err.Error(), 1)
			}
			if err := client.SaveDir(c.String("out"), s); err != nil {
				return cli.Exit("certmesh login: --out: "+err.Error(), 1)
			}
			fmt.Fprintf(c.App.Writer, "session %s\nidentity %s\nserial %s\nexpires %s\nsession_expires %s\n",
				s.ID, s.Identity, s.Serial, s.Expires.UTC().Format(time.RFC3339), s.SessionExpires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

func controllerFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "controller", Usage: "controller API `URL` (https://host:port); repeat for failover", Required: true}
}

func caFlag() cli.Flag {
	return &cli.StringFlag{Name: "ca", Usage: "root CA `FILE` (PEM) that verifies the controller", Required: true}
}

// usageErr is a bad-usage exit (status 2) naming the command.
func usageErr(c *cli.Context, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("certmesh %s: %s", c.Command.Name, fmt.Sprintf(format, args...)), 2)
}

// loadCAPool reads a PEM bundle into a pool.
func loadCAPool(path string) (*x509.CertPool, error) {
	certs, err := pki.LoadCerts(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// clientConfigFrom builds the SDK config from --controller and --ca.
func clientConfigFrom(c *cli.Context) (client.Config, error) {
	cfg := client.DefaultConfig()
	for _, v := range c.StringSlice("controller") {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				cfg.Controllers = append(cfg.Controllers, u)
			}
		}
	}
	if len(cfg.Controllers) == 0 {
		return cfg, usageErr(c, "--controller: no URL given")
	}
	pool, err := loadCAPool(c.String("ca"))
	if err != nil {
		return cfg, usageErr(c, "--ca: %v", err)
	}
	cfg.RootCAs = pool
	if err := cfg.Validate(); err != nil {
		return cfg, usageErr(c, "--controller: %v", err)
	}
	return cfg, nil
}

// tokenFrom reads --token or --token-file (exactly one).
func tokenFrom(c *cli.Context) (string, error) {
	tok, file := c.String("token"), c.String("token-file")
	switch {
	case tok != "" && file != "":
		return "", usageErr(c, "give --token or --token-file, not both")
	case tok != "":
		return tok, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr(c, "--token-file: %v", err)
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return "", usageErr(c, "--token-file: %s is empty", file)
		}
		return tok, nil
	}
	return "", usageErr(c, "--token or --token-file is required")
}

// loadAdminCert reads --admin-cert and --admin-key.
func loadAdminCert(c *cli.Context) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.String("admin-cert"), c.String("admin-key"))
	if err != nil {
		return tls.Certificate{}, usageErr(c, "--admin-cert %s, --admin-key %s: %v", c.String("admin-cert"), c.String("admin-key"), err)
	}
	return cert, nil
}
