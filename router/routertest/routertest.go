// Package routertest provides what tests of routers and clients need
// without a real controller: a test PKI, a Controller that writes signed
// records as the issuer does, a fake Mesh (a store with subscribers and
// pulls answered from another store) and an echo upstream. Like
// net/http/httptest it is for tests only. It never depends on issuer
// (router/deps_test.go): a test that needs a controller's HTTP API starts a
// real issuer.Controller from a package that may import it (the client
// SDK's tests do, in client/controllers_test.go).
package routertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/pki/pkitest"
	"github.com/certmesh/certmesh/trust"
)

// TrustDomain is the trust domain of the test PKI.
const TrustDomain = pki.DefaultTrustDomain

// PKI is a root, controller intermediates, a router certificate and an
// admin certificate. Everything is valid from six hours ago, so tests can
// issue certificates in the past.
type PKI struct {
	Root        pki.KeyPair
	Controllers map[string]pki.KeyPair
	Router      pki.KeyPair
	Admin       pki.KeyPair
}

// NewPKI makes a PKI with the named controllers (pkitest.New), its
// router named edge-1.
func NewPKI(t testing.TB, controllers ...string) *PKI {
	t.Helper()
	p := pkitest.New(t, TrustDomain, time.Now().Add(-6*time.Hour), 48*time.Hour, controllers, []string{"edge-1"})
	return &PKI{Root: p.Root, Controllers: p.Controllers, Router: p.Routers["edge-1"], Admin: p.Admin}
}

// RouterCert is the router's TLS certificate.
func (p *PKI) RouterCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Router.Cert.Raw}, PrivateKey: p.Router.Key, Leaf: p.Router.Cert}
}

// AdminCert is the admin client certificate.
func (p *PKI) AdminCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Admin.Cert.Raw}, PrivateKey: p.Admin.Key, Leaf: p.Admin.Cert}
}

// RootPool is a pool holding the root.
func (p *PKI) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root.Cert)
	return pool
}

// Verifier checks record signatures against the controllers' keys.
func (p *PKI) Verifier() *Verifier {
	v := &Verifier{keys: make(map[string]*ecdsa.PublicKey)}
	for name, kp := range p.Controllers {
		v.keys[name] = kp.Cert.PublicKey.(*ecdsa.PublicKey)
	}
	return v
}

// Verifier is a crdt.Verifier that knows the controllers' keys up front.
type Verifier struct{ keys map[string]*ecdsa.PublicKey }

// Verify implements crdt.Verifier.
func (v *Verifier) Verify(r crdt.Record, msg []byte) error {
	pub := v.keys[r.Head().Author.Name]
	if pub == nil {
		return trust.ErrUnknownSigner
	}
	msg, _, err := crdt.SignatureMessage(r, msg) // a batch-signed record signs its batch's root
	if err != nil || !pki.VerifyRecord(pub, msg, r.Head().Sig()) {
		return errors.New("routertest: bad signature")
	}
	return nil
}

// Controller writes signed records as a controller does. Its own store
// holds everything it wrote.
type Controller struct {
	Name string
	CA   pki.KeyPair
	// TTL is the lifetime of the certificates it issues, Grace the
	// rotation grace.
	TTL, Grace time.Duration

	author crdt.Author
	mu     sync.Mutex
	seq    uint64
	clock  *crdt.Clock
	store  *crdt.Store
}

// Controller returns a writer for controller name.
func (p *PKI) Controller(name string) *Controller {
	return &Controller{Name: name, CA: p.Controllers[name], TTL: time.Hour, Grace: 5 * time.Minute,
		author: crdt.Author{Name: name, Incarnation: 1}, clock: crdt.NewClock(0), store: crdt.NewStore()}
}

// Sign implements crdt.Signer with the controller's intermediate key.
func (c *Controller) Sign(msg []byte) (crdt.Signature, error) {
	return trust.RecordSigner{Key: c.CA.Key}.Sign(msg)
}

// View calls fn with the controller's own store.
func (c *Controller) View(fn func(*crdt.Store)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.store)
}

// Write fills the headers of recs, signs them and keeps them.
func (c *Controller) Write(recs ...crdt.Record) []crdt.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = crdt.Stamp(recs, c.author, c.seq+1, func() crdt.Timestamp { return c.clock.Now(time.Now()) }) - 1
	for _, r := range recs {
		if err := crdt.Sign(r, c); err != nil {
			panic(fmt.Sprintf("routertest: sign: %v", err))
		}
		if _, err := c.store.MergeVerified(r); err != nil {
			panic(fmt.Sprintf("routertest: merge: %v", err))
		}
	}
	return recs
}

// Learn merges records another controller wrote, as gossip would bring
// them.
func (c *Controller) Learn(recs ...crdt.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.store.MergeVerified(r)
	}
}

// Signer returns the controller's signer record.
func (c *Controller) Signer() []crdt.Record {
	r, err := trust.NewSignerRecord(c.CA.Cert, TrustDomain)
	if err != nil {
		panic(err)
	}
	return c.Write(r)
}

// ClientCert is what a client holds after a login or a rotation.
type ClientCert struct {
	Key      *ecdsa.PrivateKey
	Leaf     *x509.Certificate
	Chain    []*x509.Certificate // leaf, intermediate
	Session  crdt.SessionID
	Serial   crdt.Serial
	Identity string
}

// TLS is the certificate as crypto/tls presents it, with or without the
// intermediate.
func (cc *ClientCert) TLS(withIntermediate bool) tls.Certificate {
	c := tls.Certificate{PrivateKey: cc.Key, Leaf: cc.Leaf}
	for i, x := range cc.Chain {
		if i > 0 && !withIntermediate {
			break
		}
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// Facts are the admission facts of the certificate.
func (cc *ClientCert) Facts(issuer string) crdt.CertFacts {
	return crdt.CertFacts{Serial: cc.Serial, Session: cc.Session, Identity: cc.Identity, Issuer: issuer,
		NotBefore: crdt.MillisOf(cc.Leaf.NotBefore), NotAfter: crdt.MillisOf(cc.Leaf.NotAfter)}
}

// Issue issues a certificate for pub (a new key if nil) without writing
// any record.
func (c *Controller) Issue(identity string, session crdt.SessionID, pub *ecdsa.PublicKey, ttl time.Duration, now time.Time) (*ClientCert, error) {
	var key *ecdsa.PrivateKey
	if pub == nil {
		var err error
		if key, err = pki.GenerateKey(nil); err != nil {
			return nil, err
		}
		pub = &key.PublicKey
	}
	leaf, err := pki.IssueClient(c.CA, pub, identity, session.String(), ttl, now, nil)
	if err != nil {
		return nil, err
	}
	s, _ := pki.SerialOf(leaf)
	return &ClientCert{Key: key, Leaf: leaf, Chain: []*x509.Certificate{leaf, c.CA.Cert}, Session: session, Serial: crdt.Serial(s), Identity: identity}, nil
}

// NewSessionID returns a random session id created by this controller
// (pki.NewSessionID).
func (c *Controller) NewSessionID() crdt.SessionID {
	id, err := pki.NewSessionID(c.Name, nil)
	if err != nil {
		panic(err)
	}
	return id
}

// Login creates a session and its first certificate, with a new key, and
// returns the records to publish. The certificate lives TTL even past the
// session (x509 times have a resolution of a second, too coarse for short
// test sessions).
func (c *Controller) Login(identity string, sessionTTL time.Duration) (*ClientCert, []crdt.Record) {
	id := c.NewSessionID()
	now := time.Now()
	cc, err := c.Issue(identity, id, nil, c.TTL, now)
	if err != nil {
		panic(err)
	}
	return cc, c.Write(
		&crdt.SessionRecord{ID: id, Identity: identity, Method: "test", Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(sessionTTL))},
		c.certRecord(cc, crdt.Serial{}, 0),
	)
}

func (c *Controller) certRecord(cc *ClientCert, supersedes crdt.Serial, at crdt.Millis) *crdt.CertRecord {
	return &crdt.CertRecord{
		Serial: cc.Serial, Session: cc.Session, Identity: cc.Identity,
		Fingerprint: sha256.Sum256(cc.Leaf.Raw), NotBefore: crdt.MillisOf(cc.Leaf.NotBefore), NotAfter: crdt.MillisOf(cc.Leaf.NotAfter),
		Supersedes: supersedes, SupersedeAt: at,
	}
}

// Rotate issues a new certificate, with a new key, for old's session.
func (c *Controller) Rotate(old *ClientCert) (*ClientCert, []crdt.Record) {
	now := time.Now()
	cc, err := c.Issue(old.Identity, old.Session, nil, c.TTL, now)
	if err != nil {
		panic(err)
	}
	return cc, c.Write(c.certRecord(cc, old.Serial, crdt.MillisOf(now.Add(c.Grace))))
}

func until() crdt.Millis { return crdt.MillisOf(time.Now().Add(48 * time.Hour)) }

// RevokeSession revokes a session.
func (c *Controller) RevokeSession(id crdt.SessionID) []crdt.Record {
	return c.Write(&crdt.RevocationRecord{Target: crdt.RevokeSession, Session: id, Reason: "test", At: crdt.MillisOf(time.Now()), Until: until()})
}

// RevokeSerial revokes one certificate.
func (c *Controller) RevokeSerial(s crdt.Serial) []crdt.Record {
	return c.Write(&crdt.RevocationRecord{Target: crdt.RevokeSerial, Serial: s, Reason: "test", At: crdt.MillisOf(time.Now()), Until: until()})
}

// RevokeIdentity revokes every session of identity created until now.
func (c *Controller) RevokeIdentity(identity string) []crdt.Record {
	return c.Write(&crdt.IdentityRevocationRecord{Identity: identity, RevokedBefore: crdt.MillisOf(time.Now()) + 1, Reason: "test", Until: until()})
}

// Mesh is a fake of the router's mesh: a store with subscribers. Publish
// merges verified records and notifies the subscribers; Want answers from
// Source after WantDelay, as a pull from the issuing controller would.
type Mesh struct {
	mu       sync.Mutex
	store    *crdt.Store
	verifier crdt.Verifier
	subs     map[int]func([]crdt.Record)
	nextSub  int
	closed   bool
	wants    int

	// Source answers pulls; nil: pulls find nothing and wait for the
	// deadline. Set before use.
	Source interface{ View(func(*crdt.Store)) }
	// WantDelay is how long a pull takes.
	WantDelay time.Duration
}

// NewMesh returns a fake mesh over store (a new one if nil).
func NewMesh(v crdt.Verifier, store *crdt.Store) *Mesh {
	if store == nil {
		store = crdt.NewStore()
	}
	return &Mesh{store: store, verifier: v, subs: make(map[int]func([]crdt.Record))}
}

// View implements the router's Mesh.
func (m *Mesh) View(fn func(*crdt.Store)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.store)
}

// Subscribe implements the router's Mesh.
func (m *Mesh) Subscribe(fn func([]crdt.Record)) func() {
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
func (m *Mesh) Publish(recs ...crdt.Record) error {
	for _, r := range recs {
		if err := crdt.Verify(r, m.verifier); err != nil {
			return fmt.Errorf("routertest: publish: %w", err)
		}
	}
	return m.PublishVerified(recs...)
}

// PublishVerified is Publish for records already verified: it merges them
// and tells the subscribers, as the mesh does once a record passed
// verification.
func (m *Mesh) PublishVerified(recs ...crdt.Record) error {
	m.mu.Lock()
	var applied []crdt.Record
	for _, r := range recs {
		ok, err := m.store.MergeVerified(r)
		if err != nil {
			m.mu.Unlock()
			return fmt.Errorf("routertest: publish: %w", err)
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
	if len(applied) > 0 {
		for _, fn := range subs {
			fn(applied)
		}
	}
	return nil
}

// Want implements the router's Mesh.
func (m *Mesh) Want(ctx context.Context, serial crdt.Serial, issuer string) (gossip.WantResult, error) {
	m.mu.Lock()
	m.wants++
	src, delay := m.Source, m.WantDelay
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
	if err := m.Publish(recs...); err != nil {
		return gossip.WantResult{Serial: serial}, err
	}
	return gossip.WantResult{Serial: serial, Found: true}, nil
}

// Wants is how many pulls were asked.
func (m *Mesh) Wants() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wants
}

// Ready implements the router's Mesh.
func (m *Mesh) Ready() bool { return true }

// Close implements the router's Mesh.
func (m *Mesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Closed reports whether Close was called.
func (m *Mesh) Closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// EchoServer is a plain-TCP upstream that echoes every byte and, when the
// client half-closes, half-closes back.
type EchoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

// NewEchoServer starts an echo server on loopback, closed at the end of
// the test.
func NewEchoServer(t testing.TB) *EchoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &EchoServer{ln: ln}
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
				// A plain copy: io.Copy between TCP connections splices
				// through a pipe, two more file descriptors per
				// connection, which thousands of connections cannot
				// afford.
				io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 4096))
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(e.Close)
	return e
}

// Addr is the server's address.
func (e *EchoServer) Addr() string { return e.ln.Addr().String() }

// Close stops accepting and waits for the connections to end.
func (e *EchoServer) Close() {
	e.ln.Close()
	e.wg.Wait()
}
