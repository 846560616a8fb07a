package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/pki"
)

func pkiCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "pki",
		Usage: "create and manage the certificate authority of a deployment",
		Subcommands: []*cli.Command{
			pkiInitCommand(stdout),
			pkiAddCommand(stdout),
			pkiRotateCommand(stdout),
			pkiRevokeCommand(stdout),
		},
	}
}

func pkiInitCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a root CA, controller intermediates, router and admin certificates, and the gossip key",
		UsageText: "certmesh pki init --dir DIR --controllers a,b,c --routers r1,r2 [--trust-domain D] [--admin NAME] [--hosts [ROUTER=]HOST,...] [--force]",
		Description: "Writes DIR/ca.pem and DIR/ca.key (the root), DIR/<name>/cert.pem and key.pem for every controller\n" +
			"(an intermediate CA, chain included), router and the admin, and DIR/gossip.key. Keys are mode 0600.\n" +
			"Refuses to overwrite existing files unless --force.\n\n" + hostsHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "output `DIR`ectory (required)"},
			&cli.StringFlag{Name: "controllers", Usage: "comma `LIST` of controller names (at least one)"},
			&cli.StringFlag{Name: "routers", Usage: "comma `LIST` of router names"},
			&cli.StringFlag{Name: "trust-domain", Value: pki.DefaultTrustDomain, Usage: "SPIFFE trust `DOMAIN`"},
			&cli.StringFlag{Name: "admin", Value: pki.DefaultAdmin, Usage: "`NAME` of the admin client certificate"},
			&cli.StringFlag{Name: "hosts", Usage: "comma `LIST` of extra DNS names or IPs, each on its own router's certificate: ROUTER=HOST, *=HOST, or HOST (see above)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite existing files"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			opts := pki.InitOptions{
				TrustDomain: c.String("trust-domain"),
				Controllers: splitList(c.String("controllers")),
				Routers:     splitList(c.String("routers")),
				Admin:       c.String("admin"),
				Hosts:       splitList(c.String("hosts")),
				Force:       c.Bool("force"),
				Now:         time.Now(),
			}
			dir := c.String("dir")
			if dir == "" {
				return usagef("--dir is required")
			}
			if err := checkInitFlags(opts); err != nil {
				return err
			}
			written, err := pki.Init(dir, opts)
			if err != nil {
				var ee *pki.ExistsError
				switch {
				case errors.As(err, &ee):
					return fmt.Errorf("%s already exists; pass --force to overwrite", ee.Path)
				case strings.HasPrefix(err.Error(), "pki: init: hosts: "):
					return usagef("--hosts: %s", strings.TrimPrefix(err.Error(), "pki: init: hosts: "))
				}
				return err
			}
			for _, p := range written {
				fmt.Fprintln(stdout, p)
			}
			return nil
		},
	}
}

func pkiAddCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "issue certificates for new controllers and routers from an existing root",
		UsageText: "certmesh pki add --dir DIR [--controllers a,b] [--routers r1,r2] [--hosts [ROUTER=]HOST,...]",
		Description: "Adds nodes to the deployment whose root is DIR/ca.pem and DIR/ca.key, as when a region joins:\n" +
			"DIR/<name>/cert.pem and key.pem for every new controller (an intermediate CA, chain included) and router.\n" +
			"Existing files are never overwritten.\n\n" + hostsHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "the PKI `DIR`ectory of pki init (required)"},
			&cli.StringFlag{Name: "controllers", Usage: "comma `LIST` of new controller names"},
			&cli.StringFlag{Name: "routers", Usage: "comma `LIST` of new router names"},
			&cli.StringFlag{Name: "hosts", Usage: "comma `LIST` of extra DNS names or IPs, each on its own new router's certificate: ROUTER=HOST, *=HOST, or HOST (see above)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			dir := c.String("dir")
			if dir == "" {
				return usagef("--dir is required")
			}
			opts := pki.AddOptions{
				Controllers: splitList(c.String("controllers")),
				Routers:     splitList(c.String("routers")),
				Hosts:       splitList(c.String("hosts")),
				Now:         time.Now(),
			}
			if len(opts.Controllers)+len(opts.Routers) == 0 {
				return usagef("give --controllers, --routers or both")
			}
			for _, n := range append(append([]string(nil), opts.Controllers...), opts.Routers...) {
				if err := pki.ValidateName(n); err != nil {
					return usagef("name %q: %v", n, err)
				}
			}
			written, err := pki.Add(dir, opts)
			if err != nil {
				var ee *pki.ExistsError
				if errors.As(err, &ee) {
					return fmt.Errorf("%s already exists; pki add only issues new names (see pki rotate-controller)", ee.Path)
				}
				if rest, ok := strings.CutPrefix(err.Error(), "pki: add: hosts: "); ok {
					return usagef("--hosts: %s", rest)
				}
				return err
			}
			for _, p := range written {
				fmt.Fprintln(stdout, p)
			}
			return nil
		},
	}
}

// hostsHelp says how --hosts entries go to router certificates
// (pki.RouterHosts).
const hostsHelp = "Every router certificate carries its name, localhost, 127.0.0.1 and ::1. --hosts adds names per router,\n" +
	"so that one router's key cannot pose as another router:\n" +
	"  ROUTER=HOST  HOST on that router only (--hosts edge-1=10.0.0.5,edge-1=edge-1.example.net,edge-2=10.0.1.5)\n" +
	"  *=HOST       HOST on every router, for a name they all answer for (a load balancer's); any router's key can then pose as it\n" +
	"  HOST         where that is unambiguous: on the only router given; on router R when HOST is R or begins with \"R.\"\n" +
	"               (edge-1.example.net); on every router for a loopback name or address. Otherwise an error says what to write."

// checkInitFlags reports a bad flag value of pki init as a usage error
// naming the flag.
func checkInitFlags(o pki.InitOptions) error {
	if err := pki.ValidateTrustDomain(o.TrustDomain); err != nil {
		return usagef("--trust-domain: %v", err)
	}
	if len(o.Controllers) == 0 {
		return usagef("--controllers: at least one controller name is required")
	}
	seen := map[string]string{}
	check := func(flag, name string) error {
		if err := pki.ValidateName(name); err != nil {
			return usagef("--%s: %v", flag, err)
		}
		if prev, dup := seen[name]; dup {
			return usagef("--%s: name %q is also given by --%s; names must be unique", flag, name, prev)
		}
		seen[name] = flag
		return nil
	}
	for _, n := range o.Controllers {
		if err := check("controllers", n); err != nil {
			return err
		}
	}
	for _, n := range o.Routers {
		if err := check("routers", n); err != nil {
			return err
		}
	}
	if err := check("admin", o.Admin); err != nil {
		return err
	}
	return nil
}

func pkiRotateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "rotate-controller",
		Usage:     "issue a new intermediate (a new signing key) for controller NAME",
		UsageText: "certmesh pki rotate-controller --dir DIR NAME",
		Description: "Replaces DIR/NAME/cert.pem and key.pem. Send SIGHUP to the controller: it publishes a signer record\n" +
			"for the new key and signs with it from then on; records and certificates of the old key stay valid until it expires.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "the PKI `DIR`ectory of pki init (required)"},
		},
		Action: func(c *cli.Context) error {
			dir, name, err := dirAndName(c)
			if err != nil {
				return err
			}
			kp, err := pki.RotateController(dir, name, pki.RotateOptions{Now: time.Now()})
			if err != nil {
				return err
			}
			id, _ := pki.KeyID(kp.Cert.PublicKey)
			fmt.Fprintf(stdout, "%s\n%s\nnew key %x, valid until %s; send SIGHUP to controller %s\n",
				filepath.Join(dir, name, pki.CertFile), filepath.Join(dir, name, pki.KeyFile), id[:8],
				kp.Cert.NotAfter.UTC().Format(time.RFC3339), name)
			return nil
		},
	}
}

func dirAndName(c *cli.Context) (string, string, error) {
	dir := c.String("dir")
	if dir == "" {
		return "", "", usagef("--dir is required")
	}
	switch c.NArg() {
	case 0:
		return "", "", usagef("the controller NAME argument is required")
	case 1:
	default:
		return "", "", usagef("unexpected argument %q; give one controller NAME", c.Args().Get(1))
	}
	name := c.Args().First()
	if err := pki.ValidateName(name); err != nil {
		return "", "", usagef("NAME: %v", err)
	}
	return dir, name, nil
}

func pkiRevokeCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "revoke-controller",
		Usage:     "revoke, with the root key, every signing key of controller NAME, through a controller",
		UsageText: "certmesh pki revoke-controller --dir DIR --controller URL NAME",
		Description: "Signs a revocation of controller NAME with DIR/ca.key and submits it to the controller at URL\n" +
			"(POST /v1/revocations with the admin certificate of DIR). Every node verifies it against the root, then refuses\n" +
			"NAME's later records and the certificates its intermediate issued.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "the PKI `DIR`ectory of pki init (required)"},
			&cli.StringFlag{Name: "controller", Usage: "`URL` of a controller's API, such as https://127.0.0.1:8443 (required)"},
			&cli.StringFlag{Name: "admin", Value: pki.DefaultAdmin, Usage: "`NAME` of the admin certificate in DIR"},
			&cli.StringFlag{Name: "trust-domain", Usage: "trust `DOMAIN`; default: read from DIR/NAME/cert.pem or the admin certificate"},
			&cli.StringFlag{Name: "reason", Usage: "a note kept with the revocation"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long to wait for the controller"},
		},
		Action: func(c *cli.Context) error {
			dir, name, err := dirAndName(c)
			if err != nil {
				return err
			}
			base, err := controllerURL(c.String("controller"))
			if err != nil {
				return err
			}
			root, err := pki.LoadKeyPair(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
			if err != nil {
				return err
			}
			adminDir := filepath.Join(dir, c.String("admin"))
			admin, err := tls.LoadX509KeyPair(filepath.Join(adminDir, pki.CertFile), filepath.Join(adminDir, pki.KeyFile))
			if err != nil {
				return fmt.Errorf("admin certificate in %s: %w", adminDir, err)
			}
			td := c.String("trust-domain")
			if td == "" {
				td = trustDomainOf(filepath.Join(dir, name, pki.CertFile), admin)
			}
			blob, err := pki.SignControllerRevocation(root.Key, td, name, time.Now())
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(root.Cert)
			client := &http.Client{
				Timeout:   c.Duration("timeout"),
				Transport: &http.Transport{TLSClientConfig: pki.HardenTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}})},
			}
			body, _ := json.Marshal(api.RevocationRequest{RootSigned: blob, Reason: c.String("reason")})
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+api.PathRevocations, bytes.NewReader(body))
			if err != nil {
				return usagef("--controller: %v", err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("controller %s: %w", base, err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if resp.StatusCode != http.StatusAccepted {
				var eb api.ErrorBody
				if json.Unmarshal(data, &eb) == nil && eb.Code != "" {
					return fmt.Errorf("controller %s refused the revocation: %d %s: %s", base, resp.StatusCode, eb.Code, eb.Error)
				}
				return fmt.Errorf("controller %s refused the revocation: %s", base, resp.Status)
			}
			var rr api.RevocationResponse
			if err := json.Unmarshal(data, &rr); err != nil {
				return fmt.Errorf("controller %s: malformed answer: %w", base, err)
			}
			fmt.Fprintf(stdout, "revoked controller %s (kind %s, hlc %s)\n", rr.Key, rr.Kind, rr.HLC)
			return nil
		},
	}
}

// controllerURL normalises a controller URL: https by default, no trailing
// slash.
func controllerURL(s string) (string, error) {
	if s == "" {
		return "", usagef("--controller is required")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	s = strings.TrimRight(s, "/")
	if !strings.HasPrefix(s, "https://") {
		return "", usagef("--controller: %q: the API is served over https", s)
	}
	return s, nil
}

// trustDomainOf reads the trust domain from a controller's certificate, or
// from the admin certificate, or returns the default.
func trustDomainOf(certPath string, admin tls.Certificate) string {
	if certs, err := pki.LoadCerts(certPath); err == nil {
		if id, err := pki.IDOf(certs[0]); err == nil {
			return id.TrustDomain
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "certmesh: warning: %v\n", err)
	}
	if len(admin.Certificate) > 0 {
		if c, err := x509.ParseCertificate(admin.Certificate[0]); err == nil {
			if id, err := pki.IDOf(c); err == nil {
				return id.TrustDomain
			}
		}
	}
	return pki.DefaultTrustDomain
}
