package router

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
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
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/pki"
)

const testTD = "certmesh"

// testPKI is a root, controller intermediates and a router certificate,
// made once per test.
type testPKI struct {
	root   pki.KeyPair
	ctrls  map[string]pki.KeyPair
	router pki.KeyPair
}

func newTestPKI(t testing.TB, controllers ...string) *testPKI {
	t.Helper()
	now := time.Now().Add(-6 * time.Hour) // so that tests can issue in the past
	root, err := pki.NewRoot(testTD, 48*time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{root: root, ctrls: make(map[string]pki.KeyPair)}
	for _, name := range controllers {
		kp, err := pki.NewController(root, testTD, name, 48*time.Hour, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		p.ctrls[name] = kp
	}
	if p.router, err = pki.NewRouter(root, testTD, "edge-1", nil, 48*time.Hour, now, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) routerCreds() Credentials {
	return Credentials{
		Roots: []*x509.Certificate{p.root.Cert},
		Cert:  tls.Certificate{Certificate: [][]byte{p.router.Cert.Raw}, PrivateKey: p.router.Key, Leaf: p.router.Cert},
	}
}

func (p *testPKI) rootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root.Cert)
	return pool
}

// testVerifier checks record signatures against the controllers'
// intermediate keys, as gossip's verifier does once it knows the signers.
type testVerifier struct{ keys map[string]*ecdsa.PublicKey }

func (p *testPKI) verifier() *testVerifier {
	v := &testVerifier{keys: make(map[string]*ecdsa.PublicKey)}
	for name, kp := range p.ctrls {
		v.keys[name] = kp.Cert.PublicKey.(*ecdsa.PublicKey)
	}
	return v
}

func (v *testVerifier) Verify(r crdt.Record, msg []byte) error {
	pub := v.keys[r.Head().Author.Name]
	if pub == nil {
		return gossip.ErrUnknownSigner
	}
	if !pki.VerifyRecord(pub, msg, r.Head().Sig) {
		return errors.New("bad signature")
	}
	return nil
}

// testController writes signed records the way a controller does: a
// signer record, then sessions, certificates, rotations and revocations.
type testController struct {
	t      testing.TB
	name   string
	ca     pki.KeyPair
	author crdt.Author
	mu     sync.Mutex
	seq    uint64
	clock  *crdt.Clock
	ttl    time.Duration
	grace  time.Duration
}

func (p *testPKI) controller(t testing.TB, name string) *testController {
	return &testController{t: t, name: name, ca: p.ctrls[name], author: crdt.Author{Name: name, Incarnation: 1},
		clock: crdt.NewClock(0), ttl: time.Hour, grace: 5 * time.Minute}
}

func (c *testController) Sign(msg []byte) (crdt.Signature, error) {
	sig, err := pki.SignRecord(c.ca.Key, msg)
	return crdt.Signature(sig), err
}

// write fills the header of each record, signs it and returns them.
func (c *testController) write(recs ...crdt.Record) []crdt.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.seq++
		h := r.Head()
		h.Author, h.Seq, h.HLC = c.author, c.seq, c.clock.Now(time.Now())
		if err := crdt.Sign(r, c); err != nil {
			c.t.Fatal(err)
		}
	}
	return recs
}

func (c *testController) signer() []crdt.Record {
	kid, err := pki.KeyID(c.ca.Cert.PublicKey)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.write(&crdt.SignerRecord{Controller: c.name, KeyID: kid, Cert: c.ca.Cert.Raw, NotAfter: crdt.MillisOf(c.ca.Cert.NotAfter)})
}

// clientCert is what a client holds after login or rotation.
type clientCert struct {
	key     *ecdsa.PrivateKey
	leaf    *x509.Certificate
	chain   []*x509.Certificate // leaf, intermediate
	session crdt.SessionID
	serial  crdt.Serial
	ident   string
}

func (cc *clientCert) tlsCert(withIntermediate bool) tls.Certificate {
	c := tls.Certificate{PrivateKey: cc.key, Leaf: cc.leaf}
	for i, x := range cc.chain {
		if i > 0 && !withIntermediate {
			break
		}
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func (c *testController) issue(identity string, session crdt.SessionID, now time.Time) *clientCert {
	key, err := pki.GenerateKey(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	leaf, err := pki.IssueClient(c.ca, key.Public(), identity, session.String(), c.ttl, now, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	s, _ := pki.SerialOf(leaf)
	return &clientCert{key: key, leaf: leaf, chain: []*x509.Certificate{leaf, c.ca.Cert}, session: session, serial: crdt.Serial(s), ident: identity}
}

// login creates a session and its first certificate and returns the
// records to publish.
func (c *testController) login(identity string, sessionTTL time.Duration) (*clientCert, []crdt.Record) {
	var id crdt.SessionID
	rand.Read(id[:])
	now := time.Now()
	cc := c.issue(identity, id, now)
	recs := c.write(
		&crdt.SessionRecord{ID: id, Identity: identity, Method: "test", Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(sessionTTL))},
		c.certRecord(cc, crdt.Serial{}, 0),
	)
	return cc, recs
}

func (c *testController) certRecord(cc *clientCert, supersedes crdt.Serial, at crdt.Millis) *crdt.CertRecord {
	return &crdt.CertRecord{
		Serial: cc.serial, Session: cc.session, Identity: cc.ident,
		Fingerprint: [32]byte{1}, NotBefore: crdt.MillisOf(cc.leaf.NotBefore), NotAfter: crdt.MillisOf(cc.leaf.NotAfter),
		Supersedes: supersedes, SupersedeAt: at,
	}
}

// rotate issues a new certificate for old's session.
func (c *testController) rotate(old *clientCert) (*clientCert, []crdt.Record) {
	now := time.Now()
	cc := c.issue(old.ident, old.session, now)
	return cc, c.write(c.certRecord(cc, old.serial, crdt.MillisOf(now.Add(c.grace))))
}

func (c *testController) revokeSession(id crdt.SessionID) []crdt.Record {
	return c.write(&crdt.RevocationRecord{Target: crdt.RevokeSession, Session: id, Reason: "test", At: crdt.MillisOf(time.Now()),
		Until: crdt.MillisOf(time.Now().Add(48 * time.Hour))})
}

func (c *testController) revokeSerial(s crdt.Serial) []crdt.Record {
	return c.write(&crdt.RevocationRecord{Target: crdt.RevokeSerial, Serial: s, Reason: "test", At: crdt.MillisOf(time.Now()),
		Until: crdt.MillisOf(time.Now().Add(48 * time.Hour))})
}

func (c *testController) revokeIdentity(identity string) []crdt.Record {
	now := time.Now()
	return c.write(&crdt.IdentityRevocationRecord{Identity: identity, RevokedBefore: crdt.MillisOf(now) + 1, Reason: "test",
		Until: crdt.MillisOf(now.Add(48 * time.Hour))})
}

// fakeMesh is a store with subscribers. Publish merges verified records
// and notifies; Want asks a source mesh (the "controller") after a delay,
// as a pull would.
type fakeMesh struct {
	mu       sync.Mutex
	store    *crdt.Store
	verifier crdt.Verifier
	subs     map[int]func([]crdt.Record)
	nextSub  int
	closed   bool

	// source answers pulls, after wantDelay; nil: pulls find nothing.
	source    *fakeMesh
	wantDelay time.Duration
	wants     int
}

func newFakeMesh(v crdt.Verifier) *fakeMesh {
	return &fakeMesh{store: crdt.NewStore(), verifier: v, subs: make(map[int]func([]crdt.Record))}
}

func (m *fakeMesh) View(fn func(*crdt.Store)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.store)
}

func (m *fakeMesh) Subscribe(fn func([]crdt.Record)) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextSub
	m.nextSub++
	m.subs[id] = fn
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.subs, id)
	}
}

// Publish verifies and merges recs, then tells the subscribers.
func (m *fakeMesh) Publish(t testing.TB, recs ...crdt.Record) {
	t.Helper()
	m.mu.Lock()
	var applied []crdt.Record
	for _, r := range recs {
		if err := crdt.Verify(r, m.verifier); err != nil {
			m.mu.Unlock()
			t.Fatalf("publish: %v", err)
		}
		ok, err := m.store.MergeVerified(r)
		if err != nil {
			m.mu.Unlock()
			t.Fatalf("publish: %v", err)
		}
		if ok {
			applied = append(applied, r)
		}
	}
	subs := make([]func([]crdt.Record), 0, len(m.subs))
	for _, fn := range m.subs {
		subs = append(subs, fn)
	}
	m.mu.Unlock()
	for _, fn := range subs {
		fn(applied)
	}
}

func (m *fakeMesh) Want(ctx context.Context, serial crdt.Serial, issuer string) (gossip.WantResult, error) {
	m.mu.Lock()
	m.wants++
	src, delay := m.source, m.wantDelay
	m.mu.Unlock()
	if src == nil {
		<-ctx.Done()
		return gossip.WantResult{Serial: serial}, ctx.Err()
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return gossip.WantResult{Serial: serial}, ctx.Err()
	}
	var recs []crdt.Record
	src.View(func(s *crdt.Store) {
		if cert, ok := s.Cert(serial); ok {
			if sess, ok := s.Session(cert.Session); ok {
				recs = append(recs, sess)
			}
			recs = append(recs, cert)
		}
	})
	if len(recs) == 0 {
		return gossip.WantResult{Serial: serial, Authoritative: true}, nil
	}
	m.Publish(nopTB{}, recs...)
	return gossip.WantResult{Serial: serial, Found: true}, nil
}

func (m *fakeMesh) wantCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wants
}

func (m *fakeMesh) Ready() bool { return true }

func (m *fakeMesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// nopTB lets Publish run outside a test goroutine; it panics on failure.
type nopTB struct{ testing.TB }

func (nopTB) Helper()                        {}
func (nopTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// echoServer is the upstream: it echoes every byte and, when the client
// half-closes, half-closes back.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newEchoServer(t testing.TB) *echoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(e.close)
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

func (e *echoServer) close() {
	e.ln.Close()
	e.wg.Wait()
}

// testEnv is a router over a fake mesh, with a PKI, two controllers and an
// echo upstream.
type testEnv struct {
	t      testing.TB
	pki    *testPKI
	ctrlA  *testController
	ctrlB  *testController
	mesh   *fakeMesh // the router's
	source *fakeMesh // what the controllers know
	router *Router
	echo   *echoServer
}

func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	p := newTestPKI(t, "ctrl-a", "ctrl-b")
	v := p.verifier()
	e := &testEnv{t: t, pki: p, ctrlA: p.controller(t, "ctrl-a"), ctrlB: p.controller(t, "ctrl-b"),
		mesh: newFakeMesh(v), source: newFakeMesh(v), echo: newEchoServer(t)}
	e.mesh.source = e.source
	for _, c := range []*testController{e.ctrlA, e.ctrlB} {
		recs := c.signer()
		e.source.Publish(t, recs...)
		e.mesh.Publish(t, recs...)
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.Region = "edge-1", "test"
	cfg.Listen, cfg.Upstream = "127.0.0.1:0", e.echo.addr()
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
	r, err := New(cfg, mesh, e.pki.routerCreds(), Options{Logger: testLogger(e.t)})
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
	e.source.Publish(e.t, recs...)
	e.mesh.Publish(e.t, recs...)
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

// expectRefused checks that the router refused c with a TLS alert.
func expectRefused(t testing.TB, c *tls.Conn) {
	t.Helper()
	err := roundTrip(c, "hello")
	if err == nil {
		t.Fatal("connection admitted, want refused")
	}
	if !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("want a bad_certificate alert, got %v", err)
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

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

func x509VerifyOpts(p *testPKI, cc *clientCert) x509.VerifyOptions {
	inter := x509.NewCertPool()
	for _, c := range cc.chain[1:] {
		inter.AddCert(c)
	}
	return x509.VerifyOptions{Roots: p.rootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
