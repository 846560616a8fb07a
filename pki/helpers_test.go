package pki_test

import (
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// t0 is the issue time of every test PKI.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testPKI is a PKI written by Init, loaded back.
type testPKI struct {
	dir       string
	root      pki.KeyPair
	ctrl      map[string]pki.KeyPair
	router    pki.KeyPair
	admin     pki.KeyPair
	rootsPool *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	opts := pki.InitOptions{
		TrustDomain: "mesh.test",
		Controllers: []string{"ctrl-a", "ctrl-b"},
		Routers:     []string{"edge-1"},
		Admin:       "ops",
		Hosts:       []string{"edge.example.com", "10.1.2.3"},
		Now:         t0,
		Rand:        rand.Reader,
	}
	if _, err := pki.Init(dir, opts); err != nil {
		t.Fatalf("Init: %v", err)
	}
	p := &testPKI{dir: dir, ctrl: map[string]pki.KeyPair{}}
	p.root = mustLoad(t, dir, "")
	for _, c := range opts.Controllers {
		p.ctrl[c] = mustLoad(t, dir, c)
	}
	p.router = mustLoad(t, dir, "edge-1")
	p.admin = mustLoad(t, dir, "ops")
	p.rootsPool = x509.NewCertPool()
	p.rootsPool.AddCert(p.root.Cert)
	return p
}

func mustLoad(t *testing.T, dir, name string) pki.KeyPair {
	t.Helper()
	certFile, keyFile := filepath.Join(dir, name, pki.CertFile), filepath.Join(dir, name, pki.KeyFile)
	if name == "" {
		certFile, keyFile = filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile)
	}
	kp, err := pki.LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadKeyPair(%s): %v", name, err)
	}
	return kp
}

// verify builds and verifies leaf's chain to the test root as a TLS server
// would for a client certificate.
func (p *testPKI) verify(t *testing.T, leaf *x509.Certificate, intermediates ...*x509.Certificate) ([]*x509.Certificate, error) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         p.rootsPool,
		Intermediates: pool,
		CurrentTime:   t0.Add(time.Minute),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	if len(chains) != 1 {
		t.Fatalf("got %d chains, want 1", len(chains))
	}
	return chains[0], nil
}
