package router

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/router/routertest"
)

const testTD = routertest.TrustDomain

func routerCreds(p *routertest.PKI) Credentials {
	return Credentials{Roots: []*x509.Certificate{p.Root.Cert}, Cert: p.RouterCert()}
}

// testEnv is a router over a fake mesh, with a PKI, two controllers and an
// echo upstream. source holds what the controllers wrote and answers the
// router's pulls.
type testEnv struct {
	t      testing.TB
	pki    *routertest.PKI
	ctrlA  *routertest.Controller
	ctrlB  *routertest.Controller
	mesh   *routertest.Mesh // the router's
	source *routertest.Mesh // what the controllers know
	router *Router
	echo   *routertest.EchoServer
	logs   *logBuffer // every line the router logged, at debug level
}

func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	p := routertest.NewPKI(t, "ctrl-a", "ctrl-b")
	v := p.Verifier()
	e := &testEnv{t: t, pki: p, ctrlA: p.Controller("ctrl-a"), ctrlB: p.Controller("ctrl-b"),
		mesh: routertest.NewMesh(v, nil), source: routertest.NewMesh(v, nil), echo: routertest.NewEchoServer(t),
		logs: &logBuffer{}}
	e.mesh.Source = e.source
	e.publish(e.ctrlA.Signer())
	e.publish(e.ctrlB.Signer())
	cfg := DefaultConfig()
	cfg.Name, cfg.Region = "edge-1", "test"
	cfg.Listen, cfg.Upstream = "127.0.0.1:0", e.echo.Addr()
	cfg.PullTimeout = 2 * time.Second
	cfg.DrainTimeout = time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	e.startRouter(cfg, e.mesh)
	return e
}

func (e *testEnv) startRouter(cfg Config, mesh Mesh) {
	e.t.Helper()
	log := testLogger(e.t)
	if e.logs != nil {
		log = slog.New(teeHandler{log.Handler(), slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	}
	r, err := New(cfg, mesh, routerCreds(e.pki), Options{Logger: log})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.router = r
	e.t.Cleanup(func() { r.Shutdown(context.Background()) })
}

// publish sends records to the controllers' view and to the router's.
func (e *testEnv) publish(recs []crdt.Record) {
	e.t.Helper()
	must(e.t, e.source.Publish(recs...))
	must(e.t, e.mesh.Publish(recs...))
}

func (e *testEnv) dial(cert tls.Certificate) *tls.Conn {
	e.t.Helper()
	return dial(e.t, e.router.Addr().String(), e.pki.RootPool(), cert)
}

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// teeHandler sends each record to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.a.Enabled(ctx, r.Level) {
		h.a.Handle(ctx, r.Clone())
	}
	if h.b.Enabled(ctx, r.Level) {
		return h.b.Handle(ctx, r)
	}
	return nil
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ROUTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// dial connects to the router with cert and returns the TLS connection once
// the client side of the handshake is done. In TLS 1.3 the client finishes
// before the router has judged its certificate: a refusal shows on the
// first read.
func dial(t testing.TB, addr string, roots *x509.CertPool, cert tls.Certificate) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes a line and reads it back through the echo upstream.
func roundTrip(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != msg {
		return fmt.Errorf("echo: got %q, want %q", line, msg)
	}
	return nil
}

func mustRoundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if err := roundTrip(c, msg); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

// expectRefused checks that the router refused c with a TLS alert about
// its certificate (bad_certificate, certificate_revoked or
// certificate_expired: alertFor).
func expectRefused(t testing.TB, c *tls.Conn) {
	t.Helper()
	err := roundTrip(c, "hello")
	if err == nil {
		t.Fatal("connection admitted, want refused")
	}
	if !strings.Contains(err.Error(), "bad certificate") && !strings.Contains(err.Error(), "revoked certificate") &&
		!strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("want a certificate alert, got %v", err)
	}
}

// expectRefusedWith checks that the router refused c with the TLS alert
// whose text (crypto/tls's) is alert, such as "revoked certificate".
func expectRefusedWith(t testing.TB, c *tls.Conn, alert string) {
	t.Helper()
	err := roundTrip(c, "hello")
	if err == nil {
		t.Fatal("connection admitted, want refused")
	}
	if !strings.Contains(err.Error(), "tls: "+alert) {
		t.Fatalf("want the alert %q, got %v", alert, err)
	}
}

// expectClosed waits until the router closes c.
func expectClosed(t testing.TB, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 64)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
		return
	}
}
