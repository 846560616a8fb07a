package client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router/routertest"
)

// admin is an admin client of e's controllers.
func (e *env) admin() *client.Admin {
	e.t.Helper()
	a, err := client.NewAdmin(e.cfg, e.pki.AdminCert())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { a.Close() })
	return a
}

// putService defines service at address, as `certmesh service put` does.
func (e *env) putService(a *client.Admin, name, address string) {
	e.t.Helper()
	if _, err := a.PutService(context.Background(), name, api.ServiceRequest{Address: address}); err != nil {
		e.t.Fatal(err)
	}
}

// grant gives identity the service through the policy named name.
func (e *env) grant(a *client.Admin, name, identity, service string) {
	e.t.Helper()
	req := api.PolicyRequest{Identities: []string{"@" + identity}, Services: []string{"@" + service}}
	if _, err := a.PutPolicy(context.Background(), name, req); err != nil {
		e.t.Fatal(err)
	}
}

// accessDenied reads the router's certmesh_access_denied_total, every
// reason, as Prometheus would scrape it: the refusals of access it sent.
func (e *env) accessDenied() int {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.router.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	total := 0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if !strings.HasPrefix(line, "certmesh_access_denied_total{") {
			continue
		}
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}

// find is the first event named name (as Event.String), or the zero
// Event.
func (ev *events) find(name string) client.Event {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.list {
		if e.String() == name {
			return e
		}
	}
	return client.Event{}
}

// newServiceClient is newClient with the config dialing service by name.
func (e *env) newServiceClient(s *client.Session, service string) (*client.Client, *events) {
	e.t.Helper()
	e.cfg = e.cfg.ForService(service, pki.DefaultTrustDomain)
	return e.newClient(s)
}

// accessChange takes alice's access to the service echo away at a real
// router, and gives it back, as an admin would.
type accessChange struct {
	name          string
	grant, remove func(e *env, a *client.Admin)
}

var accessChanges = []accessChange{
	{"policy removed",
		func(e *env, a *client.Admin) { e.grant(a, "echo-users", "alice", "echo") },
		func(e *env, a *client.Admin) {
			if _, err := a.DeletePolicy(context.Background(), "echo-users"); err != nil {
				e.t.Fatal(err)
			}
		}},
	{"service removed",
		func(e *env, a *client.Admin) {
			e.putService(a, "echo", e.upstream)
			e.grant(a, "echo-users", "alice", "echo")
		},
		func(e *env, a *client.Admin) {
			if _, err := a.DeleteService(context.Background(), "echo"); err != nil {
				e.t.Fatal(err)
			}
		}},
	{"role taken away",
		func(e *env, a *client.Admin) {
			req := api.PolicyRequest{Identities: []string{"#echoers"}, Services: []string{"@echo"}}
			if _, err := a.PutPolicy(context.Background(), "echoers", req); err != nil {
				e.t.Fatal(err)
			}
			if _, err := a.SetIdentityRoles(context.Background(), "alice", []string{"echoers"}); err != nil {
				e.t.Fatal(err)
			}
		},
		func(e *env, a *client.Admin) {
			if _, err := a.SetIdentityRoles(context.Background(), "alice", nil); err != nil {
				e.t.Fatal(err)
			}
		}},
}

// Issue 17: against a real router, an admin's change that removes a live
// connection's access (the policy, the service, the identity's role) is
// Disconnected(access_removed), never revoked and no SessionEnded;
// Connect backs off while the router refuses access (no storm of dials,
// rotations or logins), and access given back brings Connected.
func TestAccessRemovedByAnAdminAtARealRouter(t *testing.T) {
	for i, tc := range accessChanges {
		t.Run(tc.name, func(t *testing.T) {
			// Counting dials takes a while: once is enough.
			testAccessRemoved(t, tc, i == 0)
		})
	}
}

func testAccessRemoved(t *testing.T, tc accessChange, countDials bool) {
	e := newEnv(t, time.Hour)
	a := e.admin()
	e.putService(a, "echo", e.upstream)
	tc.grant(e, a)
	s := e.login("alice")
	// A token to log in again with: a refusal of access must not use it.
	e.cfg.Token = client.StaticToken("token:alice")
	c, ev := e.newServiceClient(s, "echo")

	var mu sync.Mutex
	var seen []error // what fn saw end each connection
	up := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- c.Connect(ctx, func(ctx context.Context, conn net.Conn) error {
			err := writeFirst(up)(ctx, conn)
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
			return err
		})
	}()
	<-up
	testutil.Eventually(t, 5*time.Second, "connected", func() bool { return ev.has("connected") })

	before := e.accessDenied()
	tc.remove(e, a)
	removed := time.Now()
	testutil.Eventually(t, 5*time.Second, "disconnected(access_removed)", func() bool {
		return ev.has("disconnected(access_removed)")
	})
	t.Logf("access_removed reported %v after the change was acknowledged", time.Since(removed).Round(time.Millisecond))
	if e := ev.find("disconnected(access_removed)"); !client.IsAccessDenied(e.Err) {
		t.Errorf("access_removed's Err is %v, want the refusal of access", e.Err)
	}

	// Refused for a while: Connect keeps trying, with backoff.
	testutil.Eventually(t, 5*time.Second, "a few refusals", func() bool { return e.accessDenied()-before >= 3 })
	if countDials {
		time.Sleep(2 * time.Second) // the window whose refusals are counted, not a wait for convergence
		refusals := e.accessDenied() - before
		elapsed := time.Since(removed)
		// Backoff doubles from RetryMin to RetryMax, with jitter down
		// to half: the ramp, then at most one dial per RetryMax/2.
		bound := 6 + int(elapsed/(e.cfg.RetryMax/2))
		t.Logf("%d refusals in %v (bound %d)", refusals, elapsed.Round(time.Millisecond), bound)
		if refusals > bound {
			t.Errorf("%d dials refused in %v: Connect does not back off (bound %d)", refusals, elapsed, bound)
		}
	}
	if err := c.Err(); err != nil {
		t.Errorf("the session is over after a removal of access: %v", err)
	}
	for _, k := range []client.EventKind{client.SessionEnded, client.Rotated, client.LoggedIn, client.RotationFailed} {
		if n := ev.count(k); n != 0 {
			t.Errorf("%d %v events after a removal of access", n, k)
		}
	}
	if got := c.Session().ID; got != s.ID {
		t.Errorf("session %s became %s", s.ID, got)
	}
	mu.Lock()
	ended := slices.Clone(seen) // Connect's fn appends on
	mu.Unlock()
	if !slices.ContainsFunc(ended, client.IsAccessDenied) {
		t.Errorf("fn never saw the refusal of access: %v", ended)
	}
	// The live connection was closed without an alert (none can be sent
	// mid-stream): the refusal came with the redial.
	if len(ended) == 0 || client.IsRefused(ended[0]) {
		t.Errorf("the live connection ended with %v, want a close without an alert", ended)
	} else {
		t.Logf("the live connection ended with %v", ended[0])
	}

	// Access given back: Connect reconnects.
	n := ev.count(client.Connected)
	tc.grant(e, a)
	testutil.Eventually(t, 5*time.Second, "connected again", func() bool { return ev.count(client.Connected) > n })
	<-up
	want := "connected disconnected(access_removed) connected"
	if got := strings.Join(ev.kinds(), " "); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	cancel()
	if err := waitErr(t, errc, 5*time.Second, ev); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect returned %v", err)
	}
}

// Issue 17: a service no policy grants is refused with access_denied, an
// error IsAccessDenied tells from a refused certificate, from Dial's
// connection and from Connect's alike; the session stays valid.
func TestAServiceNoPolicyGrantsIsAccessDenied(t *testing.T) {
	e := newEnv(t, time.Hour)
	a := e.admin()
	e.putService(a, "echo", e.upstream)
	e.putService(a, "billing", e.upstream)
	e.grant(a, "echo-users", "alice", "echo")
	s := e.login("alice")
	c, ev := e.newServiceClient(s, "billing")

	conn, _, err := c.Dial(context.Background())
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	var re *client.RefusedError
	if !client.IsAccessDenied(err) || !errors.As(err, &re) || !re.AccessDenied() || re.Alert != 49 {
		t.Fatalf("Dial of an ungranted service: %v, want a *RefusedError with access_denied", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var fnErr error
	err = c.Connect(ctx, func(ctx context.Context, conn net.Conn) error {
		fnErr = readFirst(ctx, conn)
		return fnErr
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect returned %v, want the context's end (it retries a refusal of access)", err)
	}
	if !client.IsAccessDenied(fnErr) {
		t.Errorf("Connect's fn saw %v, want access_denied", fnErr)
	}
	testutil.Eventually(t, 5*time.Second, "disconnected(access_denied)", func() bool { return ev.has("disconnected(access_denied)") })
	if err := c.Err(); err != nil {
		t.Errorf("the session is over after a refusal of access: %v", err)
	}
	// The session still reaches what it is granted.
	other, _ := e.newServiceClient(s, "echo")
	conn, _, err = other.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn, bufio.NewReader(conn), "still granted"); err != nil {
		t.Errorf("the session no longer reaches a granted service: %v", err)
	}
	for _, k := range []client.EventKind{client.SessionEnded, client.Connected, client.Rotated} {
		if n := ev.count(k); n != 0 {
			t.Errorf("%d %v events: %v", n, k, ev.kinds())
		}
	}
}

// DialContext dials the service a URL's host names: an http.Client
// reaches two services by name through one router, over https:// (the
// router's TLS, verified under the service's name) and http:// alike, and
// a service no policy grants is an error IsAccessDenied tells.
func TestHTTPClientReachesServicesByName(t *testing.T) {
	serve := func(name string) string {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.Host+r.URL.Path)
		}))
		t.Cleanup(up.Close)
		return strings.TrimPrefix(up.URL, "http://")
	}
	web, api2, billing := serve("web"), serve("api"), serve("billing")
	e := newEnvWith(t, time.Hour, routertest.NewEchoServer(t).Addr())
	a := e.admin()
	e.putService(a, "web", web)
	e.putService(a, "api", api2)
	e.putService(a, "billing", billing)
	e.grant(a, "web-users", "alice", "web")
	e.grant(a, "api-users", "alice", "api")
	c, ev := e.newClient(e.login("alice"))
	hc := c.HTTPClient()
	get := func(url string) (string, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for url, want := range map[string]string{
		"https://web.svc.certmesh/a":      "web web.svc.certmesh/a",
		"http://api.svc.certmesh/b":       "api api.svc.certmesh/b",
		"https://WEB.svc.certmesh:8443/c": "web WEB.svc.certmesh:8443/c",
	} {
		if body, err := get(url); err != nil || body != want {
			t.Errorf("GET %s: %q %v, want %q", url, body, err, want)
		}
	}
	_, err := get("https://billing.svc.certmesh/")
	if !client.IsAccessDenied(err) {
		t.Errorf("GET of an ungranted service: %v, want access_denied", err)
	}
	if _, err := get("https://nosuch.svc.certmesh/"); !client.IsAccessDenied(err) {
		t.Errorf("GET of an unknown service: %v, want unrecognized_name", err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("the session is over after refusals of access: %v", err)
	}
	// Another host is the router's default, as before.
	if conn, err := c.DialContext(context.Background(), "tcp", "upstream:80"); err != nil {
		t.Error(err)
	} else {
		defer conn.Close()
		if err := echo(conn, bufio.NewReader(conn), "default"); err != nil {
			t.Errorf("the router's default upstream: %v", err)
		}
	}
	// The policy removed: the router closes the pooled connection, and
	// the next request is refused; the session holds.
	if _, err := a.DeletePolicy(context.Background(), "web-users"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "GET web refused", func() bool {
		_, err := get("https://web.svc.certmesh/a")
		return client.IsAccessDenied(err)
	})
	if body, err := get("http://api.svc.certmesh/b"); err != nil || body != "api api.svc.certmesh/b" {
		t.Errorf("GET of a service still granted: %q %v", body, err)
	}
	if err := c.Err(); err != nil {
		t.Errorf("the session is over after a removal of access: %v", err)
	}
	if n := ev.count(client.SessionEnded); n != 0 {
		t.Errorf("events %v", ev.kinds())
	}
}
