package client_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/router"
	"github.com/certmesh/certmesh/router/routertest"
)

func TestMain(m *testing.M) {
	// memberlist's probe goroutine (of TestWithRealControllersAndRouters'
	// cluster) may outlive its Shutdown by a moment, as in reliability/.
	code := m.Run()
	stopExampleCluster()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is two real controllers and a router on an in-memory mesh that every
// controller write reaches at once.
type env struct {
	t      *testing.T
	pki    *routertest.PKI
	ctrlA  *controller
	ctrlB  *controller
	mesh   *routertest.Mesh
	router *router.Router
	cfg    client.Config
	// upstream is the last router's upstream, the address of the
	// services tests define.
	upstream string

	bus        *bus
	verifier   crdt.Verifier
	routerMesh *routertest.Mesh // the last router's
}

// startRouter starts a router with the PKI's router certificate in front
// of upstream, on the bus.
func (e *env) startRouter(upstream string) *router.Router {
	e.t.Helper()
	mesh := routertest.NewMesh(e.verifier, nil)
	e.bus.join(mesh)
	// The router's pulls are answered from what ctrl-a holds: everything.
	mesh.Source = e.ctrlA.mesh
	rc := router.DefaultConfig()
	rc.Name, rc.Listen, rc.Upstream, rc.DrainTimeout = "edge-1", "127.0.0.1:0", upstream, time.Second
	r, err := router.New(rc, mesh, router.Credentials{Roots: []*x509.Certificate{e.pki.Root.Cert}, Cert: e.pki.RouterCert()}, router.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Shutdown(context.Background()) })
	e.routerMesh = mesh
	e.upstream = upstream
	return r
}

// newEnv starts the environment; the controllers issue certificates that
// live ttl.
func newEnv(t *testing.T, ttl time.Duration) *env {
	t.Helper()
	return newEnvWith(t, ttl, routertest.NewEchoServer(t).Addr())
}

// newEnvWith is newEnv with the router's upstream at upstream.
func newEnvWith(t *testing.T, ttl time.Duration, upstream string) *env {
	t.Helper()
	return newEnvSession(t, ttl, 0, upstream)
}

// newEnvSession is newEnvWith with sessions that last session (0: the
// default).
func newEnvSession(t *testing.T, ttl, session time.Duration, upstream string) *env {
	t.Helper()
	return newEnvTuned(t, upstream, func(cfg *config.Controller) {
		cfg.Certs.TTL = ttl
		if session > 0 {
			cfg.Session.MaxLifetime = session
		}
	})
}

// newEnvTuned starts the environment with the controllers' configuration
// changed by tune.
func newEnvTuned(t *testing.T, upstream string, tune func(*config.Controller)) *env {
	t.Helper()
	dir, p := testPKI(t, "ctrl-a", "ctrl-b")
	v := p.Verifier()
	var b bus
	ctrls := startControllers(t, dir, v, &b, tune, "ctrl-a", "ctrl-b")
	e := &env{t: t, pki: p, ctrlA: ctrls[0], ctrlB: ctrls[1], bus: &b, verifier: v}
	e.router = e.startRouter(upstream)
	e.mesh = e.routerMesh
	e.cfg = client.DefaultConfig()
	e.cfg.Controllers = []string{e.ctrlA.URL, e.ctrlB.URL}
	e.cfg.Routers = []string{e.router.Addr().String()}
	e.cfg.RootCAs = p.RootPool()
	e.cfg.RetryMin, e.cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	return e
}

func (e *env) login(identity string) *client.Session {
	e.t.Helper()
	s, err := client.Login(context.Background(), e.cfg, "token:"+identity)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// events records a client's events.
type events struct {
	mu   sync.Mutex
	list []client.Event
}

func (ev *events) add(e client.Event) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.list = append(ev.list, e)
}

func (ev *events) kinds() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []string
	for _, e := range ev.list {
		out = append(out, e.String())
	}
	return out
}

func (ev *events) count(k client.EventKind) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, e := range ev.list {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func echo(c net.Conn, r *bufio.Reader, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != msg {
		return fmt.Errorf("echo %q, want %q", line, msg)
	}
	return nil
}

func TestLoginWritesFilesThatLoadBack(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	if s.ID == "" || s.Identity != "alice" || len(s.Chain) != 2 || len(s.CA) != 1 || s.Controller != e.ctrlA.URL {
		t.Fatalf("session = %+v", s)
	}
	dir := filepath.Join(t.TempDir(), "alice")
	if err := client.SaveDir(dir, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, client.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := client.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != s.ID || got.Serial != s.Serial || !got.Key.Equal(s.Key) || !got.Chain[0].Equal(s.Chain[0]) ||
		!got.Issued.Equal(s.Issued.UTC().Truncate(time.Second)) && got.Issued.Sub(s.Issued).Abs() > time.Second {
		t.Fatalf("loaded %+v, saved %+v", got, s)
	}
}

func TestLoginFailsOverToTheNextController(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.ctrlA.stop(t)
	s := e.login("alice")
	if s.Controller != e.ctrlB.URL {
		t.Fatalf("logged in at %s, want %s", s.Controller, e.ctrlB.URL)
	}
	// A refused token is not retried elsewhere.
	_, err := client.Login(context.Background(), e.cfg, "garbage")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "token_invalid" {
		t.Fatalf("login with a bad token: %v", err)
	}
}

func TestConnectRotatesAndKeepsTheConnection(t *testing.T) {
	// The shortest lifetime a controller allows, rotated after about a
	// twentieth of it.
	e := newEnv(t, time.Minute)
	e.cfg.RotateAt, e.cfg.RotateJitter = 0.05, 0.01
	s := e.login("alice")
	c, err := client.New(e.cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	c.Subscribe(ev.add)
	var saved []*client.Session
	var savedMu sync.Mutex
	c.Subscribe(func(e client.Event) {
		if e.Kind == client.Rotated {
			savedMu.Lock()
			saved = append(saved, e.Session)
			savedMu.Unlock()
		}
	})
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- c.Connect(ctx, func(ctx context.Context, conn net.Conn) error {
			r := bufio.NewReader(conn)
			if err := echo(conn, r, "hello"); err != nil {
				return err
			}
			// Hold the connection across the rotation, then stop.
			testutil.Eventually(t, 10*time.Second, "a rotation", func() bool { return ev.count(client.Rotated) > 0 })
			if err := echo(conn, r, "after rotation"); err != nil {
				return err
			}
			return client.ErrStop
		})
	}()
	if err := <-errc; err != nil {
		t.Fatalf("connect: %v (events %v)", err, ev.kinds())
	}
	testutil.Eventually(t, 5*time.Second, "connected first, disconnected(closed) last", func() bool {
		got := ev.kinds()
		return len(got) >= 2 && got[0] == "connected" && got[len(got)-1] == "disconnected(closed)"
	})
	cur := c.Session()
	if cur.Serial == s.Serial || cur.ID != s.ID {
		t.Fatalf("after rotation: serial %s (was %s), session %s (was %s)", cur.Serial, s.Serial, cur.ID, s.ID)
	}
	savedMu.Lock()
	if len(saved) == 0 || saved[0].Serial == s.Serial {
		t.Error("no Rotated event with the new session")
	}
	savedMu.Unlock()
	// The new certificate is admitted.
	conn, _, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn, bufio.NewReader(conn), "new cert"); err != nil {
		t.Fatal(err)
	}
	if conn.ConnectionState().PeerCertificates == nil {
		t.Fatal("no router certificate")
	}
}

func TestRevokedSessionEndsConnectWithRevoked(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	c, err := client.New(e.cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ev events
	c.Subscribe(ev.add)
	up := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Connect(context.Background(), func(ctx context.Context, conn net.Conn) error {
			r := bufio.NewReader(conn)
			if err := echo(conn, r, "hello"); err != nil {
				return err
			}
			select {
			case up <- struct{}{}:
			default:
			}
			_, err := r.ReadString('\n') // until the router closes it
			return err
		})
	}()
	<-up
	admin, err := client.NewAdmin(e.cfg, e.pki.AdminCert())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	res, err := admin.Revoke(context.Background(), client.Revocation{SessionID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "session" || res.Key != s.ID {
		t.Errorf("revocation result %+v", res)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, client.ErrRevoked) {
			t.Fatalf("connect returned %v, want ErrRevoked", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("connect still running; events %v", ev.kinds())
	}
	testutil.Eventually(t, 5*time.Second, "a SessionEnded event", func() bool { return ev.count(client.SessionEnded) == 1 })
	if _, _, err := c.Dial(context.Background()); !errors.Is(err, client.ErrRevoked) {
		t.Errorf("dial after revocation: %v", err)
	}
}

func TestRotationRetriesTheOtherController(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	e.ctrlA.stop(t)
	next, err := client.RotateSession(context.Background(), e.cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	if next.Controller != e.ctrlB.URL || next.ID != s.ID || next.Serial == s.Serial {
		t.Fatalf("rotated %+v", next)
	}
}

func TestDialFailsOverToALiveRouter(t *testing.T) {
	e := newEnv(t, time.Hour)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := e.cfg
	cfg.Routers = []string{deadAddr, e.router.Addr().String()}
	c, err := client.New(cfg, e.login("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, addr, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if addr != e.router.Addr().String() {
		t.Fatalf("dialed %s", addr)
	}
	if err := echo(conn, bufio.NewReader(conn), "hi"); err != nil {
		t.Fatal(err)
	}
}

func TestLogoutRevokesTheSession(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	if err := client.Logout(context.Background(), e.cfg, s); err != nil {
		t.Fatal(err)
	}
	_, err := client.RotateSession(context.Background(), e.cfg, s)
	if !client.SessionOver(err) {
		t.Fatalf("rotation after logout: %v", err)
	}
}
