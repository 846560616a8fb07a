package client_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/router/routertest"
)

// newBoundEnv is an environment whose controllers bind sessions to their
// login tokens (session.bind_to_token) and issue certificates of an hour,
// which outlive the tests' tokens: only a fresh token keeps a session.
func newBoundEnv(t *testing.T) *env {
	t.Helper()
	return newEnvTuned(t, routertest.NewEchoServer(t).Addr(), func(cfg *config.Controller) {
		cfg.Certs.TTL = time.Hour
		cfg.Session.BindToToken = true
	})
}

// mintingSource is an identity provider that hands out a fresh token,
// valid for life, at each call, and counts the calls.
type mintingSource struct {
	identity string
	life     time.Duration
	calls    atomic.Int64
}

func (m *mintingSource) token(context.Context) (string, error) {
	m.calls.Add(1)
	return expiringToken(m.identity, time.Now().Add(m.life)), nil
}

// dialEcho opens a connection through the router and sees the echo
// server answer on it.
func dialEcho(t *testing.T, c *client.Client, what string) {
	t.Helper()
	conn, _, err := c.Dial(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer conn.Close()
	if err := echo(conn, bufio.NewReader(conn), what); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// A client with Config.Token extends its token-bound session before the
// token it logged in with expires: the session keeps its id and its
// certificate, a connection made before stays up across that expiry, and
// no new login happens.
func TestATokenBoundSessionIsExtendedBeforeItsEnd(t *testing.T) {
	// The shortest token a bound login accepts is 5s; the client extends
	// at three tenths of what is left, so about every 2s.
	const life = 6 * time.Second
	e := newBoundEnv(t)
	e.cfg.RotateAt, e.cfg.RotateJitter = 0.3, 0.01
	src := &mintingSource{identity: "alice", life: life}
	e.cfg.Token = src.token
	ctx := context.Background()
	// The session's end as the controllers and the router keep it, to the
	// millisecond; the client is told it to the second.
	exp := time.Now().Add(life).Truncate(time.Millisecond)
	s, err := client.Login(ctx, e.cfg, expiringToken("alice", exp))
	if err != nil {
		t.Fatal(err)
	}
	end := s.SessionExpires
	if end.After(exp) || exp.Sub(end) >= time.Second || !end.Before(s.Expires) {
		t.Fatalf("session ends %v, certificate %v: want the token's expiry %v, before the certificate's", end, s.Expires, exp)
	}
	c, ev := e.newClient(s)
	conn, _, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if err := echo(conn, r, "before the extension"); err != nil {
		t.Fatal(err)
	}

	testutil.Eventually(t, time.Until(exp)-500*time.Millisecond, "the session's end moved before it came", func() bool {
		return c.Session().SessionExpires.After(end)
	})
	// The connection stays open through the first token's expiry: a read
	// waits until a deadline past it, and times out rather than seeing the
	// router close it.
	conn.SetReadDeadline(exp.Add(300 * time.Millisecond))
	var ne net.Error
	if _, err := r.ReadByte(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read across the first token's expiry: %v, want a timeout (the connection up)", err)
	}
	conn.SetReadDeadline(time.Time{})
	if err := echo(conn, r, "after the first token's expiry"); err != nil {
		t.Fatalf("the connection made before the extension: %v", err)
	}
	// The router admits a new connection of the same certificate.
	dialEcho(t, c, "a connection after the first token's expiry")

	got := c.Session()
	if got.ID != s.ID || got.Serial != s.Serial || got.Key != s.Key {
		t.Errorf("session %s serial %s after the extension, want %s serial %s, the same key", got.ID, got.Serial, s.ID, s.Serial)
	}
	if !got.SessionExpires.After(exp.Add(300 * time.Millisecond)) {
		t.Errorf("the session ends %v, no later than the first token's %v", got.SessionExpires, exp)
	}
	if c.Err() != nil || ev.count(client.LoggedIn) != 0 || ev.count(client.SessionEnded) != 0 {
		t.Errorf("Err %v, events %v: want the same session, no login, no end", c.Err(), ev.kinds())
	}
	// Each extension is scheduled from when it was made, not from the
	// certificate's issue: three or four in the token's first life, not
	// a loop that asks for a token ever more often.
	n := src.calls.Load()
	t.Logf("%d tokens asked for in the first token's life of %v", n, life)
	if n < 2 || n > 5 {
		t.Errorf("the token source was asked %d times in %v; want 2 to 5, one every %v or so", n, life, 3*life/10)
	}
}

// A token for another identity is refused (403) and changes nothing: the
// session goes on, its end where it was, and a token for its own identity
// then extends it.
func TestARefreshRefusedForAnotherIdentityDoesNotEndTheSession(t *testing.T) {
	e := newBoundEnv(t)
	ctx := context.Background()
	s, err := client.Login(ctx, e.cfg, expiringToken("alice", time.Now().Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	c, ev := e.newClient(s)
	err = c.RefreshToken(ctx, expiringToken("bob", time.Now().Add(2*time.Minute)))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != api.CodeForbidden {
		t.Fatalf("refresh with bob's token: %v, want 403 forbidden", err)
	}
	if client.SessionOver(err) {
		t.Errorf("the refusal reads as the session's end: %v", err)
	}
	if c.Err() != nil || !c.Session().SessionExpires.Equal(s.SessionExpires) {
		t.Fatalf("after the refusal: Err %v, session ends %v (was %v)", c.Err(), c.Session().SessionExpires, s.SessionExpires)
	}
	// The controllers agree: the certificate still rotates and connects.
	if err := c.Rotate(ctx); err != nil {
		t.Fatalf("rotation after the refusal: %v", err)
	}
	dialEcho(t, c, "a connection after the refusal")
	if err := c.RefreshToken(ctx, expiringToken("alice", time.Now().Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if got := c.Session(); got.ID != s.ID || !got.SessionExpires.After(s.SessionExpires.Add(30*time.Second)) {
		t.Errorf("alice's token: session %s ends %v, want %s later than %v", got.ID, got.SessionExpires, s.ID, s.SessionExpires)
	}
	if ev.count(client.SessionEnded) != 0 || ev.count(client.LoggedIn) != 0 || c.SessionID() != s.ID {
		t.Errorf("events %v, session %s: want the same session", ev.kinds(), c.SessionID())
	}
}
