package client_test

import (
	"bufio"
	"context"
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

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/devcluster"
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
