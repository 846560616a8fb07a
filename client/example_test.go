package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/pki"
)

// The examples run against one development cluster (one controller, one
// router and an HTTP echo upstream behind it), started for the first
// example and stopped by TestMain.
var example struct {
	once  sync.Once
	cl    *devcluster.Cluster
	cfg   client.Config
	token string
	err   error
}

// exampleSetup returns a config for the development cluster and a login
// token of its OIDC issuer: what an application reads from its own
// configuration.
func exampleSetup() (client.Config, string) {
	example.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		dir, err := os.MkdirTemp("", "certmesh-example-")
		if err != nil {
			example.err = err
			return
		}
		cl, err := devcluster.Start(ctx, devcluster.Options{Dir: dir, Regions: []string{"us-east"}, RoutersPerRegion: 1})
		if err != nil {
			example.err = err
			return
		}
		example.cl = cl
		caPEM, err := os.ReadFile(filepath.Join(cl.PKIDir, "ca.pem"))
		if err != nil {
			example.err = err
			return
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		cfg := client.DefaultConfig()
		cfg.Controllers = []string{"https://" + cl.Controllers[0].APIAddr()}
		cfg.Routers = []string{cl.Routers[0].Addr().String()}
		cfg.RootCAs = roots
		example.cfg = cfg
		if example.token, example.err = cl.OIDC.Mint("alice", time.Hour); example.err != nil {
			return
		}
		// The controller discovers its OIDC issuer in the background.
		for ctx.Err() == nil {
			if _, err := client.Login(ctx, cfg, example.token); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		example.err = ctx.Err()
	})
	if example.err != nil {
		log.Fatal(example.err)
	}
	return example.cfg, example.token
}

func stopExampleCluster() {
	if example.cl != nil {
		example.cl.Close()
		os.RemoveAll(example.cl.Dir)
	}
}

// Log in with a token, and keep the session in the files `certmesh login`
// writes.
func ExampleLogin() {
	cfg, token := exampleSetup() // controllers, routers, roots; a token from your identity provider
	ctx := context.Background()

	s, err := client.Login(ctx, cfg, token)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) {
			log.Fatalf("refused: %s (%s)", ae.Code, ae.Message)
		}
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "session-")
	defer os.RemoveAll(dir)
	if err := client.SaveDir(dir, s); err != nil {
		log.Fatal(err)
	}
	fmt.Println("logged in as", s.Identity)
	// Output: logged in as alice
}

// Keep one connection up through the routers, whatever happens to it, and
// follow its state.
func ExampleClient_Connect() {
	cfg, token := exampleSetup()
	ctx := context.Background()
	s, err := client.Login(ctx, cfg, token)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg, s) // rotates the certificate from now on
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Subscribe(func(e client.Event) {
		// Connected, Disconnected(router_lost, access_removed, revoked,
		// ...), Rotated, RotationFailed, SessionEnded, LoggedIn.
		log.Println("certmesh:", e)
	})

	err = c.Connect(ctx, func(ctx context.Context, conn net.Conn) error {
		// Speak the upstream's protocol; here, one HTTP request.
		fmt.Fprintf(conn, "GET /hello HTTP/1.1\r\nHost: upstream\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err // Connect reconnects
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Print(string(body))
		return client.ErrStop // done: Connect returns nil
	})
	if errors.Is(err, client.ErrRevoked) {
		log.Fatal("the session was revoked: log in again")
	}
	// Output: hello from the certmesh dev upstream: GET /hello
}

// DialContext has the signature net/http, gRPC and database drivers take
// for their dialer.
func ExampleClient_DialContext() {
	cfg, token := exampleSetup()
	ctx := context.Background()
	s, err := client.Login(ctx, cfg, token)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg, s)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	tr := &http.Transport{DialContext: c.DialContext}
	resp, err := (&http.Client{Transport: tr}).Get("http://upstream/dialed")
	if err != nil {
		var re *client.RefusedError
		if errors.As(err, &re) {
			log.Fatalf("router %s refused: %v", re.Router, re.Alert)
		}
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello from the certmesh dev upstream: GET /dialed
}

// An http.Client whose requests go through the routers: the router's TLS
// protects the hop, so the URLs are http://.
func ExampleClient_HTTPClient() {
	cfg, token := exampleSetup()
	ctx := context.Background()
	s, err := client.Login(ctx, cfg, token)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg, s)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A revocation closes the pooled connection; the client hears of it
	// (SessionEnded) and every later request fails with ErrRevoked.
	hc := c.HTTPClient()
	resp, err := hc.Get("http://upstream/via-http-client")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello from the certmesh dev upstream: GET /via-http-client
}

// Reach a service by name: a URL's host <service>.svc.<trust-domain>
// selects it at the router (TLS SNI), and https:// is the router's TLS,
// verified under the service's name.
func ExampleClient_HTTPClient_serviceByName() {
	cfg, token := exampleSetup()
	ctx := context.Background()
	exampleGrant(ctx, cfg, "echo") // an admin: certmesh service put, certmesh policy put

	s, err := client.Login(ctx, cfg, token)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(cfg, s)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.HTTPClient().Get("https://echo.svc.certmesh/by-name")
	if client.IsAccessDenied(err) {
		log.Fatal("no policy grants alice the service echo")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello from the certmesh dev upstream: GET /by-name
}

// exampleGrant defines service in the development cluster (its echo
// upstream) and grants it to alice, with the admin certificate, as
// `certmesh service put` and `certmesh policy put` do.
func exampleGrant(ctx context.Context, cfg client.Config, service string) {
	dir := filepath.Join(example.cl.PKIDir, pki.DefaultAdmin)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.KeyFile))
	if err != nil {
		log.Fatal(err)
	}
	admin, err := client.NewAdmin(cfg, cert)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.PutService(ctx, service, api.ServiceRequest{Address: example.cl.Upstream}); err != nil {
		log.Fatal(err)
	}
	grant := api.PolicyRequest{Identities: []string{"@alice"}, Services: []string{"@" + service}}
	if _, err := admin.PutPolicy(ctx, "alice-"+service, grant); err != nil {
		log.Fatal(err)
	}
	// The grant reaches the router by gossip, in milliseconds.
	for deadline := time.Now().Add(10 * time.Second); !routerGrants(service); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("the router did not hear of the grant of %s", service)
		}
	}
}

// routerGrants reports whether the development cluster's router grants
// alice service.
func routerGrants(service string) bool {
	granted := false
	example.cl.Routers[0].Mesh.View(func(s *crdt.Store) {
		for _, g := range s.AccessOf("alice", nil) {
			granted = granted || g.Service == service
		}
	})
	return granted
}
