package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
)

// revokeCommand is `certmesh revoke` (its --help).
func revokeCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "revoke a session, an identity (every session it has now) or one certificate serial",
		UsageText: "certmesh revoke --controller URL --ca FILE --admin-cert F --admin-key F (--session ID | --identity ID | --serial HEX)",
		Description: "Calls POST /v1/revocations with the admin certificate. Every router refuses new connections the\n" +
			"revocation covers and closes the live ones. A session or serial not seen yet can be revoked.\n\n" +
			"An IDENTITY is written as the controllers record it (the \"identity\" line of certmesh login, the CN of\n" +
			"the client's certificates, GET /v1/sessions?identity=): the token's identity claim (sub by default) when\n" +
			"the controllers have a single auth entry, else <namespace>:<claim>, where the namespace is the entry's\n" +
			"identity_namespace, by default its name (auth.jwt[].name; auth.oidc[].name, by default the issuer's host).\n" +
			"So with an OIDC issuer at https://login.example.net and a JWT signer named corp, the two alices are\n" +
			"login.example.net:alice and corp:alice, and revoking one leaves the other. Each controller logs the\n" +
			"format of its entries at start (\"identities\" in \"controller started\").",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			&cli.StringFlag{Name: "admin-cert", Usage: "admin certificate `FILE` (PEM) (required)"},
			&cli.StringFlag{Name: "admin-key", Usage: "admin key `FILE` (PEM) (required)"},
			&cli.StringFlag{Name: "session", Usage: "session `ID` (32 hex digits)"},
			&cli.StringFlag{Name: "identity", Usage: "`IDENTITY` whose sessions created until now are revoked: the claim value, or <namespace>:<claim> with several auth entries (below)"},
			&cli.StringFlag{Name: "serial", Usage: "certificate serial in `HEX`"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			var r client.Revocation
			n := 0
			if v := c.String("session"); v != "" {
				id, err := crdt.ParseSessionID(v)
				if err != nil {
					return usagef("--session: %v", err)
				}
				r.SessionID, n = id.String(), n+1
			}
			if v := c.String("identity"); v != "" {
				r.Identity, n = v, n+1
			}
			if v := c.String("serial"); v != "" {
				s, err := crdt.ParseSerial(v)
				if err != nil {
					return usagef("--serial: %v", err)
				}
				r.Serial, n = s.String(), n+1
			}
			if n != 1 {
				return usagef("--session, --identity, --serial: give exactly one")
			}
			return withAdmin(c, func(ctx context.Context, admin *client.Admin) error {
				res, err := admin.Revoke(ctx, r)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "revoked %s %s at %s\n", res.Kind, res.Key, res.HLC)
				return nil
			})
		},
	}
}
