package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/pki"
)

// clientCallTimeout bounds the controller calls of one client command.
const clientCallTimeout = 30 * time.Second

// loginCommand is `certmesh login` (its --help).
func loginCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log in at a controller with a token: new key and CSR, session certificate written to DIR",
		UsageText: "certmesh login --controller URL --ca FILE (--token TOKEN | --token-file F) --dir DIR",
		Description: "Generates an ECDSA P-256 key and a CSR, calls POST /v1/sessions and writes DIR/key.pem (mode 0600),\n" +
			"DIR/cert.pem (the leaf, then the issuing intermediate: what a TLS client presents), DIR/ca.pem (the root)\n" +
			"and DIR/session.json. --controller takes a comma list: the next is tried when one is unreachable.",
		Flags: []cli.Flag{
			controllerFlag(),
			caFlag(),
			tokenFlag(), tokenFileFlag(),
			sessionDirFlag("`DIR` to write key.pem, cert.pem, ca.pem and session.json to (required)"),
			sessionDirAlias(),
		},
		Action: func(c *cli.Context) error {
			out, cfg, token, err := tokenCall(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			s, err := client.Login(ctx, cfg, token)
			if err != nil {
				return explainEndpoint(err, cfg.Controllers, cfg.RootCAs)
			}
			if err := client.SaveDir(out, s); err != nil {
				return fmt.Errorf("--dir: %w", err)
			}
			fmt.Fprintf(stdout, "session %s\nidentity %s\nserial %s\nexpires %s\nsession_expires %s\n",
				s.ID, s.Identity, s.Serial, s.Expires.UTC().Format(time.RFC3339), s.SessionExpires.UTC().Format(time.RFC3339))
			return nil
		},
	}
}

// sessionDirFlag is --dir, the directory of a client's session files, the
// same flag on login (which writes it) and rotate (which reads and
// rewrites it), as the pki commands name theirs.
func sessionDirFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "dir", Usage: usage}
}

// sessionDirAlias is --out, login's name for --dir in earlier releases,
// hidden but still taken so that scripts keep working.
func sessionDirAlias() cli.Flag {
	return &cli.StringFlag{Name: "out", Hidden: true}
}

// sessionDir reads --dir, or its old name --out.
func sessionDir(c *cli.Context) (string, error) {
	dir, out := c.String("dir"), c.String("out")
	switch {
	case dir != "" && out != "" && dir != out:
		return "", usagef("--dir, --out: --out is the old name of --dir; give one")
	case dir == "":
		dir = out
	}
	if dir == "" {
		return "", usagef("--dir: required")
	}
	return dir, nil
}

func controllerFlag() cli.Flag {
	return &cli.StringFlag{Name: "controller", Usage: "controller API `URL` (https://host:port; http:// is refused: credentials never travel in clear), or a comma list for failover (required)"}
}

func caFlag() cli.Flag {
	return &cli.StringFlag{Name: "ca", Usage: "root CA `FILE` (PEM) that verifies the controller (required)"}
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

// clientConfigFrom builds the SDK's config from --controller and --ca.
func clientConfigFrom(c *cli.Context) (client.Config, error) {
	cfg := client.DefaultConfig()
	cfg.Controllers = splitList(c.String("controller"))
	if len(cfg.Controllers) == 0 {
		return cfg, usagef("--controller: required")
	}
	// The URLs first: an http:// controller is refused (exit 2) before
	// any file is read or anything is sent.
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("--controller: %v", err)
	}
	if c.String("ca") == "" {
		return cfg, usagef("--ca: required")
	}
	pool, err := loadCAPool(c.String("ca"))
	if err != nil {
		return cfg, usagef("--ca: %v", err)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// tokenFrom reads --token or --token-file (exactly one).
// tokenCall reads what a command that sends a token needs: no positional
// arguments, the directory of flag dirFlag (required), the client config
// and the token.
func tokenCall(c *cli.Context) (dir string, cfg client.Config, token string, err error) {
	if err = noArgs(c); err != nil {
		return "", cfg, "", err
	}
	if dir, err = sessionDir(c); err != nil {
		return "", cfg, "", err
	}
	if cfg, err = clientConfigFrom(c); err != nil {
		return "", cfg, "", err
	}
	token, err = tokenFrom(c)
	return dir, cfg, token, err
}

// tokenFlag and tokenFileFlag give the token, read by tokenFrom.
func tokenFlag() cli.Flag {
	return &cli.StringFlag{Name: "token", Usage: "the OIDC ID token or JWT `TOKEN`"}
}

func tokenFileFlag() cli.Flag {
	return &cli.StringFlag{Name: "token-file", Usage: "read the token from `FILE`"}
}

func tokenFrom(c *cli.Context) (string, error) {
	tok, file := c.String("token"), c.String("token-file")
	switch {
	case tok != "" && file != "":
		return "", usagef("--token, --token-file: give one, not both")
	case tok != "":
		return tok, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("--token-file: %v", err)
		}
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return "", usagef("--token-file: %s is empty", file)
		}
		return tok, nil
	}
	return "", usagef("--token or --token-file: required")
}

// loadAdminCert reads --admin-cert and --admin-key.
func loadAdminCert(c *cli.Context) (tls.Certificate, error) {
	certFile, keyFile := c.String("admin-cert"), c.String("admin-key")
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, usagef("--admin-cert and --admin-key: both required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, usagef("--admin-cert %s, --admin-key %s: %v", certFile, keyFile, err)
	}
	return cert, nil
}
