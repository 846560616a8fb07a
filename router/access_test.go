package router

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
)

// bannerServer answers every connection with its name and a newline, then
// echoes, so that a test tells which service a connection reached.
func bannerServer(t testing.TB, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(name + "\n"))
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dialService connects naming service by SNI and verifying the router's
// certificate under that name.
func (e *testEnv) dialService(cert tls.Certificate, service string) *tls.Conn {
	e.t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.router.Addr().String(), &tls.Config{
		RootCAs: e.pki.RootPool(), ServerName: pki.ServiceHost(service, testTD), MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	})
	if err != nil {
		e.t.Fatalf("dial %s: %v", service, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// banner reads the service's name off c.
func banner(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func mustReach(t testing.TB, c net.Conn, service string) {
	t.Helper()
	if got, err := banner(c); err != nil || got != service {
		t.Fatalf("reached %q (%v), want %s", got, err, service)
	}
}

func expectAlert(t testing.TB, c net.Conn, alert string) {
	t.Helper()
	_, err := banner(c)
	if err == nil || !strings.Contains(err.Error(), alert) {
		t.Fatalf("want the %s alert, got %v", alert, err)
	}
}

// Two services through one router by SNI, policies by role and by name,
// access_denied for a service no policy grants, unrecognized_name for an
// unknown one; and a change of a policy or of an identity's roles closes
// at once the live connections it no longer grants, leaving the others.
func TestServicesBySNIAndPolicyChangesCloseLiveConnections(t *testing.T) {
	e := newTestEnv(t, nil)
	echo, db := bannerServer(t, "echo"), bannerServer(t, "db")
	e.publish(e.ctrlA.Write(
		&crdt.ServiceRecord{Name: "echo", Address: echo, Roles: []string{"web"}},
		&crdt.ServiceRecord{Name: "db", Address: db},
		&crdt.PolicyRecord{Name: "web", Identities: []string{"#ops"}, Services: []string{"#web"}},
		&crdt.PolicyRecord{Name: "dba", Identities: []string{"@dora"}, Services: []string{"@db"}},
		&crdt.IdentityRolesRecord{Identity: "alice", Roles: []string{"ops"}},
		&crdt.IdentityRolesRecord{Identity: "bob", Roles: []string{"ops"}},
	))
	alice, r1 := e.ctrlA.Login("alice", time.Hour)
	bob, r2 := e.ctrlA.Login("bob", time.Hour)
	dora, r3 := e.ctrlA.Login("dora", time.Hour)
	e.publish(append(append(r1, r2...), r3...))

	a := e.dialService(alice.TLS(true), "echo")
	mustReach(t, a, "echo")
	b := e.dialService(bob.TLS(true), "echo")
	mustReach(t, b, "echo")
	d := e.dialService(dora.TLS(true), "db")
	mustReach(t, d, "db")
	expectAlert(t, e.dialService(alice.TLS(true), "db"), "access denied")
	expectAlert(t, e.dialService(dora.TLS(true), "echo"), "access denied")
	expectAlert(t, e.dialService(alice.TLS(true), "nope"), "unrecognized name")
	// No service named: the configured upstream, as before services.
	mustRoundTrip(t, e.dial(alice.TLS(true)), "hello")

	// Bob loses his role: his connection closes, alice's stays.
	e.publish(e.ctrlB.Write(&crdt.IdentityRolesRecord{Identity: "bob"}))
	expectClosed(t, b, 2*time.Second)
	if err := roundTrip(a, "still here"); err != nil {
		t.Fatalf("alice's connection: %v", err)
	}
	expectAlert(t, e.dialService(bob.TLS(true), "echo"), "access denied")

	// The policy goes: alice's connection closes, dora's stays.
	e.publish(e.ctrlB.Write(&crdt.PolicyRecord{Name: "web", Deleted: true}))
	expectClosed(t, a, 2*time.Second)
	if err := roundTrip(d, "still here"); err != nil {
		t.Fatalf("dora's connection: %v", err)
	}
	// Each handler counts its close once its copies have stopped.
	testutil.Eventually(t, 5*time.Second, "both closes counted as access_removed", func() bool {
		return counterValue(t, e, `certmesh_connections_closed_total{reason="access_removed"}`) == 2
	})
	for _, m := range []string{`certmesh_access_denied_total{reason="not_granted"}`, `certmesh_access_denied_total{reason="unknown_service"}`} {
		if got := counterValue(t, e, m); got < 1 {
			t.Errorf("%s = %v", m, got)
		}
	}

	// The service goes: dora's connection closes too.
	e.publish(e.ctrlA.Write(&crdt.ServiceRecord{Name: "db", Deleted: true}))
	expectClosed(t, d, 2*time.Second)
	expectAlert(t, e.dialService(dora.TLS(true), "db"), "unrecognized name")
}

// With default_service, a connection that names no service goes there,
// granted like any other; without upstream or default, it is refused.
func TestDefaultService(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Upstream, c.DefaultService = "", "echo" })
	e.publish(e.ctrlA.Write(
		&crdt.ServiceRecord{Name: "echo", Address: bannerServer(t, "echo")},
		&crdt.PolicyRecord{Name: "p", Identities: []string{"@alice"}, Services: []string{"@echo"}},
	))
	alice, r1 := e.ctrlA.Login("alice", time.Hour)
	bob, r2 := e.ctrlA.Login("bob", time.Hour)
	e.publish(append(r1, r2...))
	mustReach(t, e.dial(alice.TLS(true)), "echo")
	expectAlert(t, e.dial(bob.TLS(true)), "access denied")

	n := newTestEnv(t, func(c *Config) { c.Upstream = "" })
	cc, recs := n.ctrlA.Login("alice", time.Hour)
	n.publish(recs)
	expectAlert(t, n.dial(cc.TLS(true)), "unrecognized name")

	cfg := DefaultConfig()
	cfg.Name, cfg.Listen, cfg.Upstream, cfg.DefaultService = "x", "127.0.0.1:0", "127.0.0.1:1", "echo"
	if err := cfg.Validate(); err == nil {
		t.Error("upstream and default_service together validated")
	}
}

func counterValue(t testing.TB, e *testEnv, series string) float64 {
	t.Helper()
	var b strings.Builder
	e.router.opts.Metrics.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// A policy removal is journaled like a revocation: a router that crashes
// before its next snapshot does not grant again what it had taken away.
func TestAccessRemovalSurvivesACrashBeforeTheNextSnapshot(t *testing.T) {
	dir := t.TempDir()
	e := newTestEnv(t, func(c *Config) { c.DataDir, c.SnapshotInterval = dir, time.Hour })
	applied := make(chan []crdt.Record, 64)
	e.router.testAfterApply = func(recs []crdt.Record) { applied <- recs }
	alice, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(append(recs, e.ctrlA.Write(
		&crdt.ServiceRecord{Name: "echo", Address: e.echo.Addr()},
		&crdt.PolicyRecord{Name: "p", Identities: []string{"@alice"}, Services: []string{"@echo"}})...))
	must(t, e.router.SaveSnapshot())
	e.publish(e.ctrlB.Write(&crdt.PolicyRecord{Name: "p", Deleted: true}))
	for removed := false; !removed; {
		for _, rec := range <-applied {
			p, ok := rec.(*crdt.PolicyRecord)
			removed = removed || ok && p.Deleted
		}
	}
	store, _, err := LoadSnapshot(dir)
	must(t, err)
	if v := Access(store, mustFacts(t, e.pki, alice), "echo"); v != crdt.NotGranted {
		t.Fatalf("after a restart from the snapshot and the journal, alice at echo: %v, want %v", v, crdt.NotGranted)
	}
}
