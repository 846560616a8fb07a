package router

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router/routertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAdmitsKnownCertificateAndProxiesBothWays(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)

	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	mustRoundTrip(t, c, "again")
	testutil.Eventually(t, time.Second, "one live connection", func() bool { return e.router.Active() == 1 })
	if e.mesh.Wants() != 0 {
		t.Errorf("a known certificate was pulled %d times", e.mesh.Wants())
	}
	c.Close()
	testutil.Eventually(t, 2*time.Second, "the connection to end", func() bool { return e.router.Active() == 0 })
}

func TestClientRightAfterLoginIsAdmittedByPullWhenGossipIsSlower(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mesh.WantDelay = 50 * time.Millisecond
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	must(t, e.source.Publish(recs...)) // the controller knows; gossip has not reached the router

	start := time.Now()
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	if e.mesh.Wants() != 1 {
		t.Errorf("pulls = %d, want 1", e.mesh.Wants())
	}
	t.Logf("admitted after a pull in %v", time.Since(start))
}

func TestUnknownCertificateIsRefusedWhenTheIssuerNeverIssuedIt(t *testing.T) {
	e := newTestEnv(t, nil)
	// Issued by ctrl-a's key but never written: a forged or lost login.
	var id crdt.SessionID
	id[0] = 7
	cc, err := e.ctrlA.Issue("mallory", id, nil, time.Hour, time.Now())
	must(t, err)
	start := time.Now()
	c := e.dial(cc.TLS(true))
	expectRefused(t, c)
	if d := time.Since(start); d > time.Second {
		t.Errorf("an authoritative not-found took %v to refuse", d)
	}
}

func TestUnknownCertificateIsRefusedAfterPullTimeout(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.PullTimeout = 200 * time.Millisecond })
	e.mesh.Source = nil // no peer answers
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	must(t, e.source.Publish(recs...))
	start := time.Now()
	c := e.dial(cc.TLS(true))
	expectRefused(t, c)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("refused after %v, before the pull timeout", d)
	}
}

func TestGossipArrivingDuringThePullAdmits(t *testing.T) {
	e := newTestEnv(t, nil)
	e.mesh.Source = nil // pulls find nothing; gossip brings it
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.Eventually(t, 2*time.Second, "the pull to start", func() bool { return e.mesh.Wants() > 0 })
		e.mesh.Publish(recs...)
	}()
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	<-done
}

func TestSessionRevocationClosesLiveConnectionAndRefusesNewOnes(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	other, orecs := e.ctrlA.Login("bob", time.Hour)
	e.publish(append(recs, orecs...))
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	bystander := e.dial(other.TLS(true))
	mustRoundTrip(t, bystander, "hello")

	e.publish(e.ctrlB.RevokeSession(cc.Session)) // revoked at another controller
	expectClosed(t, c, 2*time.Second)
	expectRefusedWith(t, e.dial(cc.TLS(true)), "revoked certificate")
	mustRoundTrip(t, bystander, "still here")
}

func TestRefusalAlertSaysWhy(t *testing.T) {
	for v, want := range map[crdt.Verdict]byte{
		crdt.SessionRevoked: alertCertificateRevoked, crdt.IdentityRevoked: alertCertificateRevoked,
		crdt.SerialRevoked: alertCertificateRevoked, crdt.IssuerRevoked: alertCertificateRevoked,
		crdt.CertExpired: alertCertificateExpired, crdt.SessionExpired: alertCertificateExpired,
		crdt.UnknownCert: alertBadCertificate, crdt.Superseded: alertBadCertificate, crdt.MismatchedFacts: alertBadCertificate,
	} {
		if got := alertFor(v); got != want {
			t.Errorf("alertFor(%s) = %d, want %d", v, got, want)
		}
	}
}

func TestSerialRevocationClosesOnlyThatCertificatesConnections(t *testing.T) {
	e := newTestEnv(t, nil)
	old, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	c1 := e.dial(old.TLS(true))
	mustRoundTrip(t, c1, "one")
	cur, rrecs := e.ctrlA.Rotate(old)
	e.publish(rrecs)
	c2 := e.dial(cur.TLS(true))
	mustRoundTrip(t, c2, "two")

	e.publish(e.ctrlB.RevokeSerial(old.Serial))
	expectClosed(t, c1, 2*time.Second)
	mustRoundTrip(t, c2, "two still up")
	expectRefusedWith(t, e.dial(old.TLS(true)), "revoked certificate")
}

func TestIdentityRevocationClosesEverySessionOfTheIdentity(t *testing.T) {
	e := newTestEnv(t, nil)
	a1, r1 := e.ctrlA.Login("alice", time.Hour)
	a2, r2 := e.ctrlB.Login("alice", time.Hour)
	b, r3 := e.ctrlA.Login("bob", time.Hour)
	e.publish(append(append(r1, r2...), r3...))
	c1 := e.dial(a1.TLS(true))
	c2 := e.dial(a2.TLS(true))
	c3 := e.dial(b.TLS(true))
	for _, c := range []net.Conn{c1, c2, c3} {
		mustRoundTrip(t, c, "hi")
	}
	e.publish(e.ctrlB.RevokeIdentity("alice"))
	expectClosed(t, c1, 2*time.Second)
	expectClosed(t, c2, 2*time.Second)
	mustRoundTrip(t, c3, "bob stays")
	expectRefusedWith(t, e.dial(a1.TLS(true)), "revoked certificate")

	// A session created after the revocation is admitted.
	a3, r4 := e.ctrlA.Login("alice", time.Hour)
	e.publish(r4)
	mustRoundTrip(t, e.dial(a3.TLS(true)), "new alice")
}

func TestRotationKeepsTheLiveConnectionAndAdmitsTheNewCertificate(t *testing.T) {
	e := newTestEnv(t, nil)
	e.ctrlA.Grace = 300 * time.Millisecond
	old, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	live := e.dial(old.TLS(true))
	mustRoundTrip(t, live, "before")

	cur, rrecs := e.ctrlA.Rotate(old)
	e.publish(rrecs)
	mustRoundTrip(t, live, "after rotation")
	mustRoundTrip(t, e.dial(cur.TLS(true)), "new cert")
	// Within the grace the old certificate still opens connections.
	mustRoundTrip(t, e.dial(old.TLS(true)), "old cert in grace")

	testutil.Eventually(t, 3*time.Second, "the end of the grace", func() bool {
		var v crdt.Verdict
		e.mesh.View(func(s *crdt.Store) {
			f := crdt.CertFacts{Serial: old.Serial, Session: old.Session, Identity: "alice", Issuer: "ctrl-a",
				NotBefore: crdt.MillisOf(old.Leaf.NotBefore), NotAfter: crdt.MillisOf(old.Leaf.NotAfter)}
			v = Decide(s, f, crdt.MillisOf(time.Now()), ModeStrict).Verdict
		})
		return v == crdt.Superseded
	})
	expectRefused(t, e.dial(old.TLS(true)))
	mustRoundTrip(t, live, "after the grace")
}

func TestRefusesOtherCAExpiredAndAdminCertificates(t *testing.T) {
	e := newTestEnv(t, nil)
	addr := e.router.Addr().String()

	foreign, _ := routertest.NewPKI(t, "ctrl-a").Controller("ctrl-a").Login("alice", time.Hour)
	expectRefused(t, dial(t, addr, e.pki.RootPool(), foreign.TLS(true)))

	var id crdt.SessionID
	id[0] = 1
	key, _ := pki.GenerateKey(nil)
	past := time.Now().Add(-3 * time.Hour)
	leaf, err := pki.IssueClient(e.ctrlA.CA, key.Public(), "alice", id.String(), time.Hour, past, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired := tls.Certificate{Certificate: [][]byte{leaf.Raw, e.ctrlA.CA.Cert.Raw}, PrivateKey: key}
	expectRefused(t, dial(t, addr, e.pki.RootPool(), expired))

	expectRefused(t, dial(t, addr, e.pki.RootPool(), e.pki.AdminCert()))

	// Counted once each handshake has ended on the router's side, which
	// may be just after the client read the alert.
	m := e.router.opts.Metrics
	for _, series := range []string{`certmesh_admissions_total{result="untrusted_chain"}`, `certmesh_admissions_total{result="cert_expired"}`,
		`certmesh_admissions_total{result="not_client_cert"}`} {
		testutil.Eventually(t, 5*time.Second, series+" = 1", func() bool { return m.GetOrCreateCounter(series).Get() == 1 })
	}
}

func TestLeafSentWithoutIntermediateIsAdmittedFromSignerRecords(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlB.Login("alice", time.Hour)
	e.publish(recs)
	mustRoundTrip(t, e.dial(cc.TLS(false)), "leaf alone")

	// A repeated leaf and no intermediate: the issuer still comes from the
	// verified chain.
	c := cc.TLS(false)
	c.Certificate = append(c.Certificate, cc.Leaf.Raw)
	mustRoundTrip(t, e.dial(c), "leaf twice")
}

func TestSessionExpiryClosesItsConnectionsOnTime(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", 400*time.Millisecond)
	e.publish(recs)
	var expires time.Time
	e.source.View(func(s *crdt.Store) {
		sess, _ := s.Session(cc.Session)
		expires = sess.Expires.Time()
	})
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	expectClosed(t, c, 3*time.Second)
	if late := time.Since(expires); late > 200*time.Millisecond || late < -5*time.Millisecond {
		t.Errorf("closed %v after the session expired", late)
	}
	expectRefused(t, e.dial(cc.TLS(true)))
}

// A session extended before it expires (session.bind_to_token: the client
// presented a fresh token) keeps its live connections past its first
// expiry, and they close at the new one.
func TestExtendedSessionClosesAtItsNewExpiry(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", 300*time.Millisecond)
	e.publish(recs)
	first := recs[0].(*crdt.SessionRecord)
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")

	ext := *first
	ext.Header = crdt.Header{}
	ext.Expires = first.Expires + 700
	e.publish(e.ctrlA.Write(&ext))
	// The connection stays open through its first expiry: a read waits
	// until a deadline past it, and times out rather than seeing a close.
	c.SetReadDeadline(first.Expires.Time().Add(100 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read across the first expiry: %v, want a timeout (the connection up)", err)
	}
	c.SetReadDeadline(time.Time{})
	mustRoundTrip(t, c, "still up after the first expiry")
	expectClosed(t, c, 3*time.Second)
	if late := time.Since(ext.Expires.Time()); late > 200*time.Millisecond || late < -5*time.Millisecond {
		t.Errorf("closed %v after the extended expiry", late)
	}
	expectRefused(t, e.dial(cc.TLS(true)))
}

func TestHalfCloseIsCarriedBothWays(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	c := e.dial(cc.TLS(true))
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
	testutil.Eventually(t, 2*time.Second, "the connection to end", func() bool { return e.router.Active() == 0 })
}

func TestVerifiedModeAdmitsUnknownButRefusesRevoked(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Mode = ModeVerified })
	e.mesh.Source = nil
	cc, _ := e.ctrlA.Login("alice", time.Hour)
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "unknown but chain-valid")
	if e.mesh.Wants() != 0 {
		t.Errorf("verified mode pulled")
	}
	must(t, e.mesh.Publish(e.ctrlA.RevokeSession(cc.Session)...))
	expectClosed(t, c, 2*time.Second)
	expectRefused(t, e.dial(cc.TLS(true)))
}

func TestShutdownDrainsThenClosesLiveConnections(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.DrainTimeout = 200 * time.Millisecond })
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	c := e.dial(cc.TLS(true))
	mustRoundTrip(t, c, "hello")
	addr := e.router.Addr().String()
	start := time.Now()
	if err := e.router.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("shutdown took %v, shorter than the drain", d)
	}
	if !e.mesh.Closed() {
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
	alice, r1 := e.ctrlA.Login("alice", time.Hour)
	bob, r2 := e.ctrlA.Login("bob", time.Hour)
	e.publish(append(r1, r2...))
	e.publish(e.ctrlB.RevokeSession(bob.Session))
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
	mesh := routertest.NewMesh(e.pki.Verifier(), store)
	cfg := e.router.cfg
	cfg.PullTimeout = 300 * time.Millisecond
	e.startRouter(cfg, mesh)

	start := time.Now()
	mustRoundTrip(t, e.dial(alice.TLS(true)), "from snapshot")
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("admission from the snapshot took %v: it waited for a pull", d)
	}
	expectRefused(t, e.dial(bob.TLS(true)))
	// A leaf alone still works: the signers came back from the snapshot.
	mustRoundTrip(t, e.dial(alice.TLS(false)), "leaf alone")
}

func TestFactsComeFromTheVerifiedChain(t *testing.T) {
	p := routertest.NewPKI(t, "ctrl-a")
	cc, _ := p.Controller("ctrl-a").Login("ali ce/ü", time.Hour)
	inter := x509.NewCertPool()
	inter.AddCert(cc.Chain[1])
	chains, err := cc.Leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := FactsFromChain(chains[0], testTD)
	if err != nil {
		t.Fatal(err)
	}
	want := crdt.CertFacts{Serial: cc.Serial, Session: cc.Session, Identity: "ali ce/ü", Issuer: "ctrl-a",
		NotBefore: crdt.MillisOf(cc.Leaf.NotBefore), NotAfter: crdt.MillisOf(cc.Leaf.NotAfter),
		Fingerprint: sha256.Sum256(cc.Leaf.Raw)}
	if f != want {
		t.Fatalf("facts = %+v, want %+v", f, want)
	}
	if _, err := FactsFromChain(chains[0], "other"); err == nil {
		t.Fatal("facts from another trust domain")
	}
	if _, err := FactsFromChain(chains[0][:1], testTD); err == nil {
		t.Fatal("facts from a chain without its intermediate")
	}

	// A certificate ctrl-a's key signed with a serial of ctrl-b's: its
	// record could only come from ctrl-b, so it is not a certmesh
	// certificate (pki.IssuedBy).
	foreign, err := pki.NewSerialFor("ctrl-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *cc.Leaf
	tmpl.SerialNumber = foreign.Big()
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, cc.Chain[1], cc.Leaf.PublicKey, p.Controller("ctrl-a").CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FactsFromChain([]*x509.Certificate{leaf, chains[0][1], chains[0][2]}, testTD); !errors.Is(err, ErrNotClientCert) {
		t.Fatalf("facts of a certificate whose serial names another issuer: %v", err)
	}
}

// A router that crashes between two snapshots must come back still
// refusing what was revoked before the crash: the journal holds it.
func TestRevocationSurvivesACrashBeforeTheNextSnapshot(t *testing.T) {
	dir := t.TempDir()
	e := newTestEnv(t, nil)
	cfg := e.router.cfg
	must(t, e.router.Shutdown(context.Background()))
	cfg.DataDir, cfg.SnapshotInterval = dir, time.Hour
	e.mesh = routertest.NewMesh(e.pki.Verifier(), nil)
	e.mesh.Source = e.source
	must(t, e.mesh.Publish(e.ctrlA.Signer()...))
	must(t, e.mesh.Publish(e.ctrlB.Signer()...))
	r, err := New(cfg, e.mesh, routerCreds(e.pki), Options{Logger: testLogger(t)})
	must(t, err)
	applied := make(chan []crdt.Record, 64)
	r.testAfterApply = func(recs []crdt.Record) { applied <- recs }
	must(t, r.Start())
	t.Cleanup(func() { r.Shutdown(context.Background()) })

	alice, r1 := e.ctrlA.Login("alice", time.Hour)
	bob, r2 := e.ctrlA.Login("bob", time.Hour)
	e.publish(append(r1, r2...))
	must(t, r.SaveSnapshot())
	e.publish(e.ctrlB.RevokeSession(bob.Session))
	for revoked := false; !revoked; {
		for _, rec := range <-applied {
			_, ok := rec.(*crdt.RevocationRecord)
			revoked = revoked || ok
		}
	}

	// What the disk holds now is what a crash leaves, plus a torn write.
	gens, err := journalGens(dir)
	must(t, err)
	f, err := os.OpenFile(filepath.Join(dir, journalName(gens[len(gens)-1])), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write([]byte{40, 0, 0, 0, 1, 2})
	must(t, err)
	must(t, f.Close())
	store, _, err := LoadSnapshot(dir)
	must(t, err)
	mesh := routertest.NewMesh(e.pki.Verifier(), store) // reaches no one
	cfg.DataDir, cfg.Listen = "", "127.0.0.1:0"
	e.startRouter(cfg, mesh)
	mustRoundTrip(t, e.dial(alice.TLS(true)), "from snapshot")
	expectRefused(t, e.dial(bob.TLS(true)))

	// The next snapshot covers the journal, which is then removed.
	must(t, r.SaveSnapshot())
	after, err := journalGens(dir)
	must(t, err)
	if len(after) != 1 || after[0] <= gens[len(gens)-1] {
		t.Errorf("journal generations %v after a snapshot (were %v), want only a newer one", after, gens)
	}
	store, _, err = LoadSnapshot(dir)
	must(t, err)
	if v := store.Admission(mustFacts(t, e.pki, bob), crdt.MillisOf(time.Now()), true); v != crdt.SessionRevoked {
		t.Errorf("after the journal is folded into the snapshot, bob's certificate: %v, want %v", v, crdt.SessionRevoked)
	}
}

func mustFacts(t *testing.T, p *routertest.PKI, cc *routertest.ClientCert) crdt.CertFacts {
	t.Helper()
	f, err := FactsFromChain([]*x509.Certificate{cc.Leaf, cc.Chain[1], p.Root.Cert}, testTD)
	must(t, err)
	return f
}

// A router serves only under its own leaf: not another router's, not a
// controller's intermediate, and not through SetCredentials either.
func TestRouterRefusesCredentialsThatAreNotItsOwn(t *testing.T) {
	p := routertest.NewPKI(t, "ctrl-a")
	cfg := DefaultConfig()
	cfg.Name, cfg.Listen, cfg.Upstream = "edge-2", "127.0.0.1:0", "127.0.0.1:9"
	mesh := routertest.NewMesh(p.Verifier(), nil)
	if _, err := New(cfg, mesh, routerCreds(p), Options{}); err == nil || !strings.Contains(err.Error(), "router/edge-1, not of router edge-2") {
		t.Errorf("edge-2 with edge-1's certificate: %v", err)
	}
	ctrl := p.Controllers["ctrl-a"]
	inter := Credentials{Roots: []*x509.Certificate{p.Root.Cert}, Cert: tls.Certificate{Certificate: [][]byte{ctrl.Cert.Raw}, PrivateKey: ctrl.Key}}
	cfg.Name = "edge-1"
	if _, err := New(cfg, mesh, inter, Options{}); err == nil || !strings.Contains(err.Error(), "controller/ctrl-a") {
		t.Errorf("a controller's intermediate: %v", err)
	}
	r, err := New(cfg, mesh, routerCreds(p), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetCredentials(inter); err == nil {
		t.Error("SetCredentials took a controller's intermediate")
	}
}
