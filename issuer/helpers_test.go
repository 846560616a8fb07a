package issuer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// fakeMesh is an in-memory Mesh: Publish merges into its store and
// notifies subscribers, as mesh.Mesh does, with nobody to send to.
type fakeMesh struct {
	mu        sync.Mutex
	store     *crdt.Store
	clock     *crdt.Clock
	subs      map[int]func([]crdt.Record)
	nextSub   int
	published []crdt.Record
	offset    time.Duration
	offsetOK  bool // a peer has been heard: the offset is an estimate
	members   []Member
	notReady  bool
	keys      [][]byte
	onPublish func([]crdt.Record) // called under mu
	// perRecord makes BatchSigning false: a member of an older minor.
	perRecord bool
}

var _ Mesh = (*fakeMesh)(nil)

func newFakeMesh(store *crdt.Store) *fakeMesh {
	return &fakeMesh{store: store, clock: crdt.NewClock(0), subs: make(map[int]func([]crdt.Record)),
		offsetOK: true, members: []Member{{Name: "peer", Role: "router", Region: "default", State: "alive", Lag: 3}}}
}

func (m *fakeMesh) Publish(recs []crdt.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var applied []crdt.Record
	for _, r := range recs {
		ok, err := m.store.MergeVerified(r)
		if err != nil {
			return err
		}
		if ok {
			applied = append(applied, r)
		}
	}
	m.published = append(m.published, recs...)
	if m.onPublish != nil {
		m.onPublish(recs)
	}
	for _, fn := range m.subs {
		fn(applied)
	}
	return nil
}

// deliver merges records as if received from a peer.
func (m *fakeMesh) deliver(recs ...crdt.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var applied []crdt.Record
	for _, r := range recs {
		m.clock.Observe(r.Head().HLC, time.Now())
		if ok, _ := m.store.MergeVerified(r); ok {
			applied = append(applied, r)
		}
	}
	for _, fn := range m.subs {
		fn(applied)
	}
}

func (m *fakeMesh) Now() crdt.Timestamp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock.Now(time.Now())
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

func (m *fakeMesh) BatchSigning() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.perRecord
}

func (m *fakeMesh) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.members)
}

func (m *fakeMesh) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.notReady
}

func (m *fakeMesh) ClockOffset() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offset, m.offsetOK
}

func (m *fakeMesh) SetKeys(keys [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = keys
	return nil
}

func (m *fakeMesh) setOffset(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offset, m.offsetOK = d, true
}

// unheard makes the mesh one that has not heard from any peer since it
// started, with the given members.
func (m *fakeMesh) unheard(members ...Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offset, m.offsetOK, m.members = 0, false, members
}

// env is one test deployment: a PKI, a development OIDC issuer and a
// controller on a fake mesh.
type env struct {
	t      *testing.T
	pkiDir string
	oidc   *devoidc.Server
	opts   Options // of the controller; Logger is set by start
	cfg    config.Controller
	c      *Controller
	mesh   *fakeMesh
	roots  *x509.CertPool
	admin  tls.Certificate
	url    string
	log    *slog.Logger // for the next start; nil: testLogger
}

func newPKI(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.InitOptions{Controllers: []string{"c1", "c2"}, Routers: []string{"r1"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func baseConfig(t testing.TB, pkiDir, name string) config.Controller {
	cfg := config.DefaultController()
	cfg.Node.Name = name
	cfg.Node.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Mesh.KeyFile = filepath.Join(pkiDir, pki.GossipKeyFile)
	cfg.PKI.CA = filepath.Join(pkiDir, pki.CACertFile)
	cfg.PKI.Cert = filepath.Join(pkiDir, name, pki.CertFile)
	cfg.PKI.Key = filepath.Join(pkiDir, name, pki.KeyFile)
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.API.RateLimit = 0
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type envOption func(*config.Controller)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oidc.Close() })
	return newEnvOf(t, newPKI(t), "c1", oidc, opts...)
}

// newEnvOf starts controller name of pkiDir (c1 or c2 of newPKI), trusting
// oidc, on its own fake mesh: several of them make a mesh whose records a
// test carries from one to the other (deliver).
func newEnvOf(t *testing.T, pkiDir, name string, oidc *devoidc.Server, opts ...envOption) *env {
	t.Helper()
	return newEnvWith(t, pkiDir, name, oidc, Options{}, opts...)
}

// newEnvWith is newEnvOf with the controller's Options (its Logger is the
// test's); oidc may be nil when opts configure the auth section.
func newEnvWith(t *testing.T, pkiDir, name string, oidc *devoidc.Server, o Options, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, pkiDir: pkiDir, oidc: oidc, opts: o}
	e.cfg = baseConfig(t, e.pkiDir, name)
	if oidc != nil {
		e.cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: oidc.URL(), Audience: "certmesh"}}
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start()
	ca, err := pki.LoadCerts(filepath.Join(e.pkiDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(ca[0])
	e.admin, err = tls.LoadX509KeyPair(filepath.Join(e.pkiDir, "admin", pki.CertFile), filepath.Join(e.pkiDir, "admin", pki.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start opens and starts the controller of e.cfg on a new fake mesh.
func (e *env) start() {
	t := e.t
	t.Helper()
	o := e.opts
	o.Logger = e.log
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	c, err := Open(e.cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	e.mesh = newFakeMesh(c.Store())
	if err := c.Start(e.mesh); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if v, ok := c.tokens.Load().v.(*auth.Verifier); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.c = c
	e.url = "https://" + c.APIAddr()
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.c.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

// client returns an HTTPS client trusting the root and presenting certs.
func (e *env) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      e.roots,
			Certificates: certs,
		}},
	}
}

func newCSR(t testing.TB) (*ecdsa.PrivateKey, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

type response struct {
	status int
	body   []byte
}

func (r response) code() api.Code {
	var eb api.ErrorBody
	json.Unmarshal(r.body, &eb)
	return eb.Code
}

func do(t testing.TB, c *http.Client, method, url string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(url, "https:") && resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: error %d without a JSON body: %q", method, url, resp.StatusCode, b)
	}
	return response{resp.StatusCode, b}
}

// session is a logged-in client.
type session struct {
	api.SessionResponse
	key  *ecdsa.PrivateKey
	cert tls.Certificate
	leaf *x509.Certificate
}

func (e *env) token(sub string) string {
	e.t.Helper()
	tok, err := e.oidc.Mint(sub, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) login(sub string) *session {
	e.t.Helper()
	key, csr := newCSR(e.t)
	r := do(e.t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token(sub), "csr": csr})
	if r.status != http.StatusCreated {
		e.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return e.session(r, key)
}

func (e *env) session(r response, key *ecdsa.PrivateKey) *session {
	e.t.Helper()
	s := &session{key: key}
	if err := json.Unmarshal(r.body, &s.SessionResponse); err != nil {
		e.t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKeyPEM(key)
	if err != nil {
		e.t.Fatal(err)
	}
	s.cert, err = tls.X509KeyPair([]byte(s.Certificate), keyPEM)
	if err != nil {
		e.t.Fatalf("certificate of the answer: %v", err)
	}
	s.leaf, err = x509.ParseCertificate(s.cert.Certificate[0])
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) rotate(s *session) (*session, response) {
	e.t.Helper()
	key, csr := newCSR(e.t)
	r := do(e.t, e.client(s.cert), "POST", e.url+"/v1/sessions/current/certificates", map[string]string{"csr": csr})
	if r.status != http.StatusCreated {
		return nil, r
	}
	return e.session(r, key), r
}

func (e *env) revoke(req api.RevocationRequest) response {
	e.t.Helper()
	return do(e.t, e.client(e.admin), "POST", e.url+"/v1/revocations", req)
}

// verdict is the store's admission verdict for s's certificate now.
func (e *env) verdict(s *session) crdt.Verdict {
	f := facts(e.t, s.leaf, "c1")
	var v crdt.Verdict
	e.mesh.View(func(st *crdt.Store) { v = st.Admission(f, crdt.MillisOf(time.Now()), true) })
	return v
}

func facts(t testing.TB, leaf *x509.Certificate, issuer string) crdt.CertFacts {
	id, err := pki.IDOf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := crdt.ParseSessionID(id.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := pki.SerialOf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return crdt.CertFacts{Serial: crdt.Serial(serial), Session: sid, Identity: id.Name, Issuer: issuer,
		NotBefore: crdt.MillisOf(leaf.NotBefore), NotAfter: crdt.MillisOf(leaf.NotAfter)}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

var _ = fmt.Sprintf

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }

func bigOne() *big.Int { return big.NewInt(1) }

func writeTestFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
