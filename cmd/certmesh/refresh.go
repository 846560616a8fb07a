package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
)

// refreshCommand is `certmesh refresh` (its --help).
func refreshCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "refresh",
		Usage:     "present a fresh token for the session in DIR, so that a session bound to its token goes on",
		UsageText: "certmesh refresh --controller URL --ca FILE --dir DIR (--token TOKEN | --token-file F)",
		Description: "With session.bind_to_token a controller ends a session when the token it was opened with expires.\n" +
			"This authenticates with DIR's certificate, calls POST /v1/sessions/current/token with a fresh token for the\n" +
			"same identity, and updates DIR/session.json with the session's new end (the token's expiry, at most\n" +
			"session.max_lifetime after login). The session id, its certificate and its live connections are kept.\n" +
			"Only the controller that created the session can extend it; the others of --controller are tried in turn.",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			&cli.StringFlag{Name: "dir", Usage: "`DIR` written by certmesh login (required)"},
			tokenFlag(), tokenFileFlag(),
		},
		Action: func(c *cli.Context) error {
			dir, cfg, token, err := tokenCall(c)
			if err != nil {
				return err
			}
			s, err := client.LoadDir(dir)
			if err != nil {
				return usagef("--dir: %v", err)
			}
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			next, err := client.RefreshSessionToken(ctx, cfg, s, token)
			if err != nil {
				return err
			}
			if err := client.SaveDir(dir, next); err != nil {
				return fmt.Errorf("--dir: %w", err)
			}
			fmt.Fprintf(stdout, "session %s\nsession_expires %s\n", next.ID, next.SessionExpires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
