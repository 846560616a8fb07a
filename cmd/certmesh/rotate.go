package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
)

// rotateCommand is `certmesh rotate` (its --help).
func rotateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "rotate",
		Usage:     "rotate the certificate in DIR for the same session (new key, new certificate)",
		UsageText: "certmesh rotate --controller URL --ca FILE --dir DIR",
		Description: "Authenticates with DIR's current certificate, calls POST /v1/sessions/current/certificates with a CSR\n" +
			"for a fresh key, and replaces DIR/key.pem, cert.pem and session.json. The old certificate stays valid for\n" +
			"new connections for the controller's certs.rotation_grace; live connections stay up. The controllers of\n" +
			"--controller are tried in their order, whichever issued the session.",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			sessionDirFlag("`DIR` written by certmesh login (required)"),
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			dir, err := sessionDir(c)
			if err != nil {
				return err
			}
			cfg, err := clientConfigFrom(c)
			if err != nil {
				return err
			}
			s, err := client.LoadDir(dir)
			if err != nil {
				return usagef("--dir: %v", err)
			}
			// The controllers on the command line, in their order: not
			// first the one that issued the session (the SDK's choice).
			s.Controller = cfg.Controllers[0]
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			next, err := client.RotateSession(ctx, cfg, s)
			if err != nil {
				return err
			}
			if err := client.SaveDir(dir, next); err != nil {
				return fmt.Errorf("--dir: %w", err)
			}
			fmt.Fprintf(stdout, "session %s\nserial %s\nsupersedes %s\nexpires %s\n",
				next.ID, next.Serial, s.Serial, next.Expires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
