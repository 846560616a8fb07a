package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/internal/testutil"
)

// TestWithRealControllersAndRouters runs the SDK against a development
// cluster (real controllers, real memberlist, real routers): login at the
// controller of one region, connect through the router of the other, rotate
// with the connection up, and a revocation at the other controller ends
// Connect with ErrRevoked.
func TestWithRealControllersAndRouters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), Regions: []string{"us-east", "eu-west"}, RoutersPerRegion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	caPEM, err := os.ReadFile(filepath.Join(cl.PKIDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := client.DefaultConfig()
	cfg.Controllers = []string{"https://" + cl.Controllers[0].APIAddr(), "https://" + cl.Controllers[1].APIAddr()}
	cfg.Routers = []string{cl.Routers[1].Addr().String(), cl.Routers[0].Addr().String()}
	cfg.RootCAs = roots
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond

	tok, err := cl.OIDC.Mint("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var s *client.Session
	testutil.Eventually(t, 20*time.Second, "a login (the OIDC issuer is discovered in the background)", func() bool {
		s, err = client.Login(ctx, cfg, tok)
		var ae *client.APIError
		if err != nil && !(errors.As(err, &ae) && ae.Code == "issuer_unavailable") {
			t.Fatal(err)
		}
		return err == nil
	})
	c, err := client.New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ev events
	c.Subscribe(ev.add)

	up := make(chan net.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Connect(ctx, func(ctx context.Context, conn net.Conn) error {
			r := bufio.NewReader(conn)
			if _, err := fmt.Fprintf(conn, "GET /hello HTTP/1.1\r\nHost: upstream\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("upstream: %s", resp.Status)
			}
			select {
			case up <- conn:
			default:
			}
			_, err = r.ReadByte() // until the router closes it
			return err
		})
	}()
	select {
	case <-up:
	case err := <-errc:
		t.Fatalf("connect: %v (events %v)", err, ev.kinds())
	case <-ctx.Done():
		t.Fatalf("no connection; events %v", ev.kinds())
	}

	// Rotation with the connection up; the new certificate is admitted.
	if err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Session().Serial == s.Serial || c.SessionID() != s.ID {
		t.Fatalf("rotation: %+v", c.Session())
	}
	conn, _, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /rotated HTTP/1.1\r\nHost: upstream\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("with the rotated certificate: %v %v", resp, err)
	}
	conn.Close()

	// An admin revokes the session at the other controller.
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(cl.PKIDir, "admin", "cert.pem"), filepath.Join(cl.PKIDir, "admin", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	acfg := cfg
	acfg.Controllers = []string{cfg.Controllers[1]}
	admin, err := client.NewAdmin(acfg, adminCert)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Revoke(ctx, client.Revocation{SessionID: s.ID}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, client.ErrRevoked) {
			t.Fatalf("connect returned %v, want ErrRevoked (events %v)", err, ev.kinds())
		}
	case <-ctx.Done():
		t.Fatalf("connect still running after the revocation; events %v", ev.kinds())
	}
	testutil.Eventually(t, 5*time.Second, "SessionEnded after Rotated and Connected", func() bool {
		return ev.count(client.SessionEnded) == 1 && ev.count(client.Rotated) >= 1 && ev.count(client.Connected) >= 1
	})
}
