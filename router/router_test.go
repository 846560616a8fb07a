package router

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAdmitsKnownCertificateAndProxiesBothWays(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.login("alice", time.Hour)
	e.publish(recs)

	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	mustRoundTrip(t, c, "again")
	waitFor(t, time.Second, "one live connection", func() bool { return e.router.Active() == 1 })
	if e.mesh.wantCount() != 0 {
		t.Errorf("a known certificate was pulled %d times", e.mesh.wantCount())
	}
	c.Close()
	waitFor(t, 2*time.Second, "the connection to end", func() bool { return e.router.Active() == 0 })
}

func TestClientRightAfterLoginIsAdmittedByPullWhenGossipIsSlower(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mesh.wantDelay = 50 * time.Millisecond
	cc, recs := e.ctrlA.login("alice", time.Hour)
	e.source.Publish(t, recs...) // the controller knows; gossip has not reached the router

	start := time.Now()
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	if e.mesh.wantCount() != 1 {
		t.Errorf("pulls = %d, want 1", e.mesh.wantCount())
	}
	t.Logf("admitted after a pull in %v", time.Since(start))
}

func TestUnknownCertificateIsRefusedWhenTheIssuerNeverIssuedIt(t *testing.T) {
	e := newTestEnv(t, nil)
	// Issued by ctrl-a's key but never written: a forged or lost login.
	var id crdt.SessionID
	id[0] = 7
	cc := e.ctrlA.issue("mallory", id, time.Now())
	start := time.Now()
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	expectRefused(t, c)
	if d := time.Since(start); d > time.Second {
		t.Errorf("an authoritative not-found took %v to refuse", d)
	}
}

func TestUnknownCertificateIsRefusedAfterPullTimeout(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.PullTimeout = 200 * time.Millisecond })
	e.mesh.source = nil // no peer answers
	cc, recs := e.ctrlA.login("alice", time.Hour)
	e.source.Publish(t, recs...)
	start := time.Now()
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	expectRefused(t, c)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("refused after %v, before the pull timeout", d)
	}
}

func TestGossipArrivingDuringThePullAdmits(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mesh.source = nil // pulls find nothing; gossip brings it
	cc, recs := e.ctrlA.login("alice", time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitFor(t, 2*time.Second, "the pull to start", func() bool { return e.mesh.wantCount() > 0 })
		e.mesh.Publish(nopTB{}, recs...)
	}()
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	<-done
}

func TestSessionRevocationClosesLiveConnectionAndRefusesNewOnes(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.login("alice", time.Hour)
	other, orecs := e.ctrlA.login("bob", time.Hour)
	e.publish(append(recs, orecs...))
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	bystander := dial(t, e.router.Addr().String(), e.pki.rootPool(), other.tlsCert(true))
	mustRoundTrip(t, bystander, "hello")

	e.publish(e.ctrlB.revokeSession(cc.session)) // revoked at another controller
	expectClosed(t, c, 2*time.Second)
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true)))
	mustRoundTrip(t, bystander, "still here")
}

func TestSerialRevocationClosesOnlyThatCertificatesConnections(t *testing.T) {
	e := newTestEnv(t, nil)
	old, recs := e.ctrlA.login("alice", time.Hour)
	e.publish(recs)
	c1 := dial(t, e.router.Addr().String(), e.pki.rootPool(), old.tlsCert(true))
	mustRoundTrip(t, c1, "one")
	cur, rrecs := e.ctrlA.rotate(old)
	e.publish(rrecs)
	c2 := dial(t, e.router.Addr().String(), e.pki.rootPool(), cur.tlsCert(true))
	mustRoundTrip(t, c2, "two")

	e.publish(e.ctrlB.revokeSerial(old.serial))
	expectClosed(t, c1, 2*time.Second)
	mustRoundTrip(t, c2, "two still up")
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), old.tlsCert(true)))
}

func TestIdentityRevocationClosesEverySessionOfTheIdentity(t *testing.T) {
	e := newTestEnv(t, nil)
	a1, r1 := e.ctrlA.login("alice", time.Hour)
	a2, r2 := e.ctrlB.login("alice", time.Hour)
	b, r3 := e.ctrlA.login("bob", time.Hour)
	e.publish(append(append(r1, r2...), r3...))
	c1 := dial(t, e.router.Addr().String(), e.pki.rootPool(), a1.tlsCert(true))
	c2 := dial(t, e.router.Addr().String(), e.pki.rootPool(), a2.tlsCert(true))
	c3 := dial(t, e.router.Addr().String(), e.pki.rootPool(), b.tlsCert(true))
	for _, c := range []net.Conn{c1, c2, c3} {
		mustRoundTrip(t, c, "hi")
	}
	e.publish(e.ctrlB.revokeIdentity("alice"))
	expectClosed(t, c1, 2*time.Second)
	expectClosed(t, c2, 2*time.Second)
	mustRoundTrip(t, c3, "bob stays")
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), a1.tlsCert(true)))

	// A session created after the revocation is admitted.
	a3, r4 := e.ctrlA.login("alice", time.Hour)
	e.publish(r4)
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), a3.tlsCert(true)), "new alice")
}

func TestRotationKeepsTheLiveConnectionAndAdmitsTheNewCertificate(t *testing.T) {
	e := newTestEnv(t, nil)
	e.ctrlA.grace = 300 * time.Millisecond
	old, recs := e.ctrlA.login("alice", time.Hour)
	e.publish(recs)
	live := dial(t, e.router.Addr().String(), e.pki.rootPool(), old.tlsCert(true))
	mustRoundTrip(t, live, "before")

	cur, rrecs := e.ctrlA.rotate(old)
	e.publish(rrecs)
	mustRoundTrip(t, live, "after rotation")
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), cur.tlsCert(true)), "new cert")
	// Within the grace the old certificate still opens connections.
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), old.tlsCert(true)), "old cert in grace")

	waitFor(t, 3*time.Second, "the end of the grace", func() bool {
		var v crdt.Verdict
		e.mesh.View(func(s *crdt.Store) {
			f := crdt.CertFacts{Serial: old.serial, Session: old.session, Identity: "alice", Issuer: "ctrl-a",
				NotBefore: crdt.MillisOf(old.leaf.NotBefore), NotAfter: crdt.MillisOf(old.leaf.NotAfter)}
			v = Decide(s, f, crdt.MillisOf(time.Now()), ModeStrict).Verdict
		})
		return v == crdt.Superseded
	})
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), old.tlsCert(true)))
	mustRoundTrip(t, live, "after the grace")
}

func TestRefusesOtherCAExpiredAndAdminCertificates(t *testing.T) {
	e := newTestEnv(t, nil)
	addr := e.router.Addr().String()

	other := newTestPKI(t, "ctrl-a")
	oc := other.controller(t, "ctrl-a")
	foreign, _ := oc.login("alice", time.Hour)
	expectRefused(t, dial(t, addr, e.pki.rootPool(), foreign.tlsCert(true)))

	var id crdt.SessionID
	id[0] = 1
	key, _ := pki.GenerateKey(nil)
	past := time.Now().Add(-3 * time.Hour)
	leaf, err := pki.IssueClient(e.ctrlA.ca, key.Public(), "alice", id.String(), time.Hour, past, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired := tls.Certificate{Certificate: [][]byte{leaf.Raw, e.ctrlA.ca.Cert.Raw}, PrivateKey: key}
	expectRefused(t, dial(t, addr, e.pki.rootPool(), expired))

	admin, err := pki.NewAdmin(e.pki.root, testTD, "admin", time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	expectRefused(t, dial(t, addr, e.pki.rootPool(), tls.Certificate{Certificate: [][]byte{admin.Cert.Raw}, PrivateKey: admin.Key}))

	m := e.router.opts.Metrics
	for _, series := range []string{`certmesh_admissions_total{result="untrusted_chain"}`, `certmesh_admissions_total{result="cert_expired"}`,
		`certmesh_admissions_total{result="not_client_cert"}`} {
		if n := m.GetOrCreateCounter(series).Get(); n != 1 {
			t.Errorf("%s = %d, want 1", series, n)
		}
	}
}

func TestLeafSentWithoutIntermediateIsAdmittedFromSignerRecords(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlB.login("alice", time.Hour)
	e.publish(recs)
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(false)), "leaf alone")

	// A repeated leaf and no intermediate: the issuer still comes from the
	// verified chain.
	c := cc.tlsCert(false)
	c.Certificate = append(c.Certificate, cc.leaf.Raw)
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), c), "leaf twice")
}

func TestSessionExpiryClosesItsConnectionsOnTime(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.login("alice", 400*time.Millisecond)
	e.publish(recs)
	var expires time.Time
	e.source.View(func(s *crdt.Store) {
		sess, _ := s.Session(cc.session)
		expires = sess.Expires.Time()
	})
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	expectClosed(t, c, 3*time.Second)
	if late := time.Since(expires); late > 200*time.Millisecond || late < -5*time.Millisecond {
		t.Errorf("closed %v after the session expired", late)
	}
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true)))
}

func TestHalfCloseIsCarriedBothWays(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.login("alice", time.Hour)
	e.publish(recs)
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "first")
	if _, err := io.WriteString(c, "last words"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil { // close_notify: our side is done
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c) // the echo answers, then half-closes back
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(got) != "last words" {
		t.Fatalf("got %q after half-close", got)
	}
	waitFor(t, 2*time.Second, "the connection to end", func() bool { return e.router.Active() == 0 })
}

func TestVerifiedModeAdmitsUnknownButRefusesRevoked(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Mode = ModeVerified })
	e.mesh.source = nil
	cc, _ := e.ctrlA.login("alice", time.Hour)
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "unknown but chain-valid")
	if e.mesh.wantCount() != 0 {
		t.Errorf("verified mode pulled")
	}
	e.mesh.Publish(t, e.ctrlA.revokeSession(cc.session)...)
	expectClosed(t, c, 2*time.Second)
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true)))
}

func TestShutdownDrainsThenClosesLiveConnections(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.DrainTimeout = 200 * time.Millisecond })
	cc, recs := e.ctrlA.login("alice", time.Hour)
	e.publish(recs)
	c := dial(t, e.router.Addr().String(), e.pki.rootPool(), cc.tlsCert(true))
	mustRoundTrip(t, c, "hello")
	addr := e.router.Addr().String()
	start := time.Now()
	if err := e.router.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("shutdown took %v, shorter than the drain", d)
	}
	if !e.mesh.closed {
		t.Error("the router did not leave the mesh")
	}
	expectClosed(t, c, time.Second)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestRestartFromSnapshotWithNoControllerReachable(t *testing.T) {
	dir := t.TempDir()
	e := newTestEnv(t, func(c *Config) { c.DataDir = dir })
	alice, r1 := e.ctrlA.login("alice", time.Hour)
	bob, r2 := e.ctrlA.login("bob", time.Hour)
	e.publish(append(r1, r2...))
	e.publish(e.ctrlB.revokeSession(bob.session))
	if err := e.router.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	store, n, err := LoadSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("empty snapshot")
	}
	// The restarted router's mesh reaches no one: pulls find nothing.
	mesh := newFakeMesh(e.pki.verifier())
	mesh.store = store
	cfg := e.router.cfg
	cfg.PullTimeout = 300 * time.Millisecond
	e.startRouter(cfg, mesh)

	start := time.Now()
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), alice.tlsCert(true)), "from snapshot")
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("admission from the snapshot took %v: it waited for a pull", d)
	}
	expectRefused(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), bob.tlsCert(true)))
	// A leaf alone still works: the signers came back from the snapshot.
	mustRoundTrip(t, dial(t, e.router.Addr().String(), e.pki.rootPool(), alice.tlsCert(false)), "leaf alone")
}

func TestFactsComeFromTheVerifiedChain(t *testing.T) {
	p := newTestPKI(t, "ctrl-a")
	c := p.controller(t, "ctrl-a")
	cc, _ := c.login("ali ce/ü", time.Hour)
	chains, err := cc.leaf.Verify(x509VerifyOpts(p, cc))
	if err != nil {
		t.Fatal(err)
	}
	f, err := FactsFromChain(chains[0], testTD)
	if err != nil {
		t.Fatal(err)
	}
	want := crdt.CertFacts{Serial: cc.serial, Session: cc.session, Identity: "ali ce/ü", Issuer: "ctrl-a",
		NotBefore: crdt.MillisOf(cc.leaf.NotBefore), NotAfter: crdt.MillisOf(cc.leaf.NotAfter)}
	if f != want {
		t.Fatalf("facts = %+v, want %+v", f, want)
	}
	if _, err := FactsFromChain(chains[0], "other"); err == nil {
		t.Fatal("facts from another trust domain")
	}
	if _, err := FactsFromChain(chains[0][:1], testTD); err == nil {
		t.Fatal("facts from a chain without its intermediate")
	}
}
