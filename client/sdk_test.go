package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/router/routertest"
)

// deadController is the URL of a port nobody listens on.
func deadController(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr
}

// silentController is the URL of a listener that accepts connections and
// never answers, as a hung controller does.
func silentController(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "https://" + l.Addr().String()
}

// withBadControllers puts a dead and a silent controller first in the list.
func (e *env) withBadControllers() {
	e.cfg.Controllers = append([]string{deadController(e.t), silentController(e.t)}, e.cfg.Controllers...)
}

func (e *env) revoke(sessionID string) {
	e.t.Helper()
	cfg := e.cfg
	cfg.Controllers = []string{e.ctrlB.URL}
	admin, err := client.NewAdmin(cfg, e.pki.AdminCert())
	if err != nil {
		e.t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Revoke(context.Background(), client.Revocation{SessionID: sessionID}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) newClient(s *client.Session) (*client.Client, *events) {
	e.t.Helper()
	c, err := client.New(e.cfg, s)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	var ev events
	c.Subscribe(ev.add)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("events: %v", ev.kinds())
		}
	})
	return c, &ev
}

func (ev *events) has(want ...string) bool {
	got := ev.kinds()
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// connectDone runs Connect in the background; its result arrives on the
// channel.
func connectDone(c *client.Client, fn func(ctx context.Context, conn net.Conn) error) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- c.Connect(context.Background(), fn) }()
	return errc
}

func waitErr(t *testing.T, errc <-chan error, within time.Duration, ev *events) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(within):
		t.Fatalf("Connect still running after %v; events %v", within, ev.kinds())
		return nil
	}
}

// writeFirst is a request-response protocol: it writes, then reads, and
// holds the connection up between requests.
func writeFirst(up chan<- struct{}) func(ctx context.Context, conn net.Conn) error {
	return func(ctx context.Context, conn net.Conn) error {
		r := bufio.NewReader(conn)
		for {
			if _, err := io.WriteString(conn, "ping\n"); err != nil {
				return err
			}
			if _, err := r.ReadString('\n'); err != nil {
				return err
			}
			select {
			case up <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// readFirst is a protocol where the client listens before it speaks.
func readFirst(ctx context.Context, conn net.Conn) error {
	_, err := conn.Read(make([]byte, 1))
	return err
}

// Item 1: with a dead and a silent controller first in the list, a
// revocation ends Connect with ErrRevoked, reported once, within seconds:
// one controller's authoritative answer decides.
func TestRevocationIsReportedPastADeadAndASilentController(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.withBadControllers()
	s := e.login("alice")
	c, ev := e.newClient(s)
	up := make(chan struct{}, 1)
	errc := connectDone(c, writeFirst(up))
	<-up
	start := time.Now()
	e.revoke(s.ID)
	err := waitErr(t, errc, 10*time.Second, ev)
	if !errors.Is(err, client.ErrRevoked) || errors.Is(err, client.ErrExpired) {
		t.Fatalf("Connect returned %v, want ErrRevoked", err)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != api.CodeSessionRevoked || ae.Status != http.StatusForbidden {
		t.Errorf("the controller's answer is not in the error: %v", err)
	}
	t.Logf("revocation reported %v after it was acknowledged", time.Since(start).Round(time.Millisecond))
	testutil.Eventually(t, 5*time.Second, "connected, disconnected(revoked), session_ended(revoked)", func() bool {
		return strings.Join(ev.kinds(), " ") == "connected disconnected(revoked) session_ended(revoked)"
	})
	t.Log(ev.kinds())
	if !errors.Is(c.Err(), client.ErrRevoked) {
		t.Errorf("Err() = %v", c.Err())
	}
	if err := c.Rotate(context.Background()); !errors.Is(err, client.ErrRevoked) {
		t.Errorf("Rotate after the revocation: %v", err)
	}
}

// Items 2 and 3: a client that starts after its session was revoked is
// refused by the router, whether its protocol writes or reads first; the
// refusal is typed, Connected is never reported, and the controllers'
// answer ends the session.
func TestARevokedClientIsRefusedWhateverItsProtocol(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context, conn net.Conn) error
	}{
		{"write first", writeFirst(make(chan struct{}, 1))},
		{"read first", readFirst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Hour)
			e.withBadControllers()
			s := e.login("alice")
			e.revoke(s.ID)
			c, ev := e.newClient(s)
			var refusal error
			var mu sync.Mutex
			err := waitErr(t, connectDone(c, func(ctx context.Context, conn net.Conn) error {
				err := tc.fn(ctx, conn)
				mu.Lock()
				refusal = err
				mu.Unlock()
				return err
			}), 10*time.Second, ev)
			if !errors.Is(err, client.ErrRevoked) {
				t.Fatalf("Connect returned %v, want ErrRevoked", err)
			}
			mu.Lock()
			var re *client.RefusedError
			if !errors.As(refusal, &re) || re.Alert != tls.AlertError(44) || re.AccessDenied() || !client.IsRefused(refusal) {
				t.Errorf("fn saw %v, want a *RefusedError with certificate_revoked", refusal)
			}
			mu.Unlock()
			testutil.Eventually(t, 5*time.Second, "disconnected(revoked), session_ended(revoked)", func() bool {
				return strings.Join(ev.kinds(), " ") == "disconnected(revoked) session_ended(revoked)"
			})
			t.Log(ev.kinds())
		})
	}
}

// Item 3: Dial of a revoked certificate returns a connection whose first
// Write or Read is the refusal, not a success and not a broken pipe.
func TestDialOfARevokedCertificateShowsTheRefusal(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	e.revoke(s.ID)
	c, ev := e.newClient(s)
	conn, _, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var werr error
	for i := 0; i < 50 && werr == nil; i++ { // until the alert is in
		_, werr = io.WriteString(conn, "hello\n")
		time.Sleep(10 * time.Millisecond)
	}
	var re *client.RefusedError
	if !errors.As(werr, &re) || re.Router != e.router.Addr().String() {
		t.Fatalf("write: %v, want a *RefusedError", werr)
	}
	if _, err := conn.Read(make([]byte, 1)); !errors.As(err, &re) {
		t.Fatalf("read: %v, want a *RefusedError", err)
	}
	// The refusal reached the client's state without Connect.
	testutil.Eventually(t, 5*time.Second, "session_ended(revoked)", func() bool { return ev.has("session_ended(revoked)") })
}

// Item 4: Close ends Connect at once, the live connection with it, and
// every later call returns ErrClosed; no event follows.
func TestCloseStopsEverything(t *testing.T) {
	e := newEnv(t, time.Hour)
	c, ev := e.newClient(e.login("alice"))
	up := make(chan struct{}, 1)
	var live net.Conn
	var mu sync.Mutex
	errc := connectDone(c, func(ctx context.Context, conn net.Conn) error {
		mu.Lock()
		live = conn
		mu.Unlock()
		return writeFirst(up)(ctx, conn)
	})
	<-up
	other, _, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, errc, 2*time.Second, ev); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Connect returned %v, want ErrClosed", err)
	}
	t.Logf("Connect returned %v after Close", time.Since(start).Round(time.Millisecond))
	n := len(ev.kinds())
	if _, _, err := c.Dial(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	if err := c.Rotate(context.Background()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Rotate after Close: %v", err)
	}
	if err := c.Connect(context.Background(), readFirst); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Connect after Close: %v", err)
	}
	if err := c.RefreshToken(context.Background(), "token:alice"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("RefreshToken after Close: %v", err)
	}
	if !errors.Is(c.Err(), client.ErrClosed) {
		t.Errorf("Err after Close: %v", c.Err())
	}
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err == nil || errors.Is(err, errTimeout) {
		t.Errorf("a dialed connection is still up after Close: %v", err)
	}
	mu.Lock()
	if _, err := live.Write([]byte("x")); err == nil {
		t.Error("Connect's connection is still up after Close")
	}
	mu.Unlock()
	if got := len(ev.kinds()); got != n {
		t.Errorf("events after Close: %v", ev.kinds()[n:])
	}
}

var errTimeout = errors.New("timeout")

// Item 5: an http.Client through the routers; after a revocation the
// router closes its pooled connection, the next request is refused, and
// the client reports the session's end without waiting for a rotation.
func TestHTTPClientSeesTheRevocation(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	e := newEnvWith(t, time.Hour, strings.TrimPrefix(up.URL, "http://"))
	e.withBadControllers()
	s := e.login("alice")
	c, ev := e.newClient(s)
	hc := c.HTTPClient()
	get := func() (string, error) {
		resp, err := hc.Get("http://upstream/x")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(); err != nil || body != "hello /x" {
		t.Fatalf("GET through the router: %q %v", body, err)
	}
	e.revoke(s.ID)
	testutil.Eventually(t, 10*time.Second, "session_ended(revoked)", func() bool {
		get()
		return ev.has("session_ended(revoked)")
	})
	if _, err := get(); !errors.Is(err, client.ErrRevoked) {
		t.Errorf("GET after the session's end: %v", err)
	}
}

// Item 7: a controller that accepts connections and never answers costs
// one AttemptTimeout at most, not HTTPTimeout on every call.
func TestASilentControllerDoesNotCostEveryCall(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.cfg.Controllers = append([]string{silentController(t)}, e.cfg.Controllers...)
	e.cfg.HTTPTimeout = 10 * time.Second
	var total time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		e.login("alice")
		d := time.Since(start)
		total += d
		if d > 5*time.Second {
			t.Errorf("login %d took %v", i, d)
		}
	}
	t.Logf("three logins past a silent controller: %v", total.Round(time.Millisecond))
	if total > 3*time.Second { // one HedgeAfter, then the silent one is asked last
		t.Errorf("three logins took %v", total)
	}
}

// Item 6: errors keep their types, and an alert is read by number, not
// by its text.
func TestErrorsAreTyped(t *testing.T) {
	e := newEnv(t, time.Hour)
	_, err := client.Login(context.Background(), e.cfg, "garbage")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != api.CodeTokenInvalid || ae.Status != http.StatusUnauthorized {
		t.Fatalf("login with a bad token: %v", err)
	}
	if client.IsRefused(errors.New("remote error: tls: bad certificate")) {
		t.Error("IsRefused matches an error's text")
	}
	if client.IsRefused(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}) {
		t.Error("IsRefused matches an OpError's text")
	}
	if !client.IsRefused(&client.RefusedError{Alert: 49}) {
		t.Error("IsRefused does not match a *RefusedError")
	}
}

// Item 8: a subscriber that blocks delays neither rotation nor the other
// subscribers, and sees the events in order once it returns.
func TestASlowSubscriberDoesNotStallRotation(t *testing.T) {
	e := newEnv(t, time.Hour)
	c, ev := e.newClient(e.login("alice"))
	release := make(chan struct{})
	var slow events
	c.Subscribe(func(e client.Event) {
		<-release
		slow.add(e)
	})
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Rotate(ctx)
		cancel()
		if err != nil {
			t.Fatalf("rotation %d behind a blocked subscriber: %v", i, err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "three rotated events at the other subscriber", func() bool { return ev.count(client.Rotated) == 3 })
	close(release)
	testutil.Eventually(t, 5*time.Second, "three rotated events at the slow subscriber", func() bool { return slow.count(client.Rotated) == 3 })
	serials := map[string]bool{}
	for _, e := range slow.list {
		if e.Session == nil || e.Session.Serial != e.Serial || serials[e.Serial] {
			t.Fatalf("event %+v", e)
		}
		serials[e.Serial] = true
	}
	if last := slow.list[len(slow.list)-1].Serial; last != c.Session().Serial {
		t.Errorf("last event's serial %s, current %s: out of order", last, c.Session().Serial)
	}
}

// Item 8: New starts the refresh loop (no Start), and a session that
// reaches its end is replaced by a new login with Config.Token: the
// controllers do not bind sessions to tokens, so the fresh token the
// client presents first does not move the end, and it falls back to a
// login.
func TestTheClientLogsInAgainAtTheSessionsEnd(t *testing.T) {
	// The shortest session a controller allows, and a certificate that
	// lasts as long: no rotation can extend it, so the client logs in
	// again at the rotation time, a twentieth of the lifetime.
	e := newEnvSession(t, time.Minute, time.Minute, routertest.NewEchoServer(t).Addr())
	e.cfg.RotateAt, e.cfg.RotateJitter = 0.05, 0.01
	e.cfg.Token = client.StaticToken("token:alice")
	s := e.login("alice")
	c, ev := e.newClient(s)
	testutil.Eventually(t, 10*time.Second, "logged_in(expired)", func() bool { return ev.has("logged_in(expired)") })
	t.Log(ev.kinds())
	if c.SessionID() == s.ID || c.Err() != nil {
		t.Fatalf("session %s (was %s), err %v", c.SessionID(), s.ID, c.Err())
	}
	conn, _, err := c.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn, bufio.NewReader(conn), "new session"); err != nil {
		t.Fatal(err)
	}
}

// A router that goes away: Connect reports router_lost (the controllers
// say the session holds) and reconnects through the other router.
func TestARouterLostIsReportedAndFailedOver(t *testing.T) {
	e := newEnv(t, time.Hour)
	echoAddr := routertest.NewEchoServer(t).Addr()
	second := e.startRouter(echoAddr)
	e.cfg.Routers = []string{e.router.Addr().String(), second.Addr().String()}
	c, ev := e.newClient(e.login("alice"))
	up := make(chan struct{}, 1)
	errc := connectDone(c, writeFirst(up))
	<-up
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.router.Shutdown(ctx)
	testutil.Eventually(t, 10*time.Second, "connected, disconnected(router_lost), connected", func() bool {
		return strings.Join(ev.kinds(), " ") == "connected disconnected(router_lost) connected"
	})
	ev.mu.Lock()
	last := ev.list[len(ev.list)-1]
	lost := ev.list[1]
	ev.mu.Unlock()
	if last.Router != second.Addr().String() || lost.Router != e.router.Addr().String() {
		t.Errorf("lost %s, connected to %s", lost.Router, last.Router)
	}
	c.Close()
	if err := waitErr(t, errc, 2*time.Second, ev); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Connect returned %v", err)
	}
}

// Controllers lost: a rotation that no controller answers is reported
// once (rotation_failed), the next that succeeds ends the streak
// (rotated), and a new streak is reported again.
func TestControllersLostAreReportedOncePerStreak(t *testing.T) {
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	gate := newGate(t, strings.TrimPrefix(e.ctrlA.URL, "https://"))
	e.cfg.Controllers = []string{deadController(t), "https://" + gate.addr}
	s.Controller = "" // the controller that issued it is asked first otherwise
	c, ev := e.newClient(s)
	ctx := context.Background()
	gate.set(false)
	for i := 0; i < 2; i++ {
		if err := c.Rotate(ctx); err == nil || client.SessionOver(err) || c.Err() != nil {
			t.Fatalf("rotation with every controller down: %v (Err %v)", err, c.Err())
		}
	}
	gate.set(true)
	if err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	gate.set(false)
	c.Rotate(ctx)
	testutil.Eventually(t, 5*time.Second, "rotation_failed rotated rotation_failed", func() bool {
		return strings.Join(ev.kinds(), " ") == "rotation_failed(controllers_unreachable) rotated rotation_failed(controllers_unreachable)"
	})
}

// gate is a TCP proxy to a controller that can be shut: shut, it closes
// every connection it accepts, as a controller whose host is down would
// refuse them.
type gate struct {
	addr string
	mu   sync.Mutex
	open bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{addr: l.Addr().String(), open: true}
	var wg sync.WaitGroup
	var conns []net.Conn // guarded by g.mu
	t.Cleanup(func() {
		l.Close()
		g.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		g.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			open := g.open
			g.mu.Unlock()
			out, err := net.Dial("tcp", target)
			if !open || err != nil {
				in.Close()
				if out != nil {
					out.Close()
				}
				continue
			}
			g.mu.Lock()
			conns = append(conns, in, out)
			g.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return g
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
}
