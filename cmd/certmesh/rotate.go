package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
)

// rotateCommand is `certmesh rotate` (SPEC.md section 1).
func rotateCommand() *cli.Command {
	return &cli.Command{
		Name:      "rotate",
		Usage:     "rotate the certificate in DIR for the same session (new key, new certificate)",
		UsageText: "certmesh rotate --controller URL --ca FILE --dir DIR",
		Description: "Authenticates with DIR's current certificate, calls POST /v1/sessions/current/certificates " +
			"with a CSR for a fresh key, and replaces DIR/key.pem, cert.pem and session.json. The old " +
			"certificate stays valid for new connections for the controller's rotation grace.",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			&cli.StringFlag{Name: "dir", Usage: "`DIR` written by certmesh login", Required: true},
		},
		Action: func(c *cli.Context) error {
			cfg, err := clientConfigFrom(c)
			if err != nil {
				return err
			}
			dir := c.String("dir")
			s, err := client.LoadDir(dir)
			if err != nil {
				return usageErr(c, "--dir: %v", err)
			}
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			next, err := client.RotateSession(ctx, cfg, s)
			if err != nil {
				return cli.Exit("certmesh rotate: "+err.Error(), 1)
			}
			if err := client.SaveDir(dir, next); err != nil {
				return cli.Exit("certmesh rotate: --dir: "+err.Error(), 1)
			}
			fmt.Fprintf(c.App.Writer, "session %s\nserial %s\nsupersedes %s\nexpires %s\n",
				next.ID, next.Serial, s.Serial, next.Expires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
