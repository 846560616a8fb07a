package pki

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

func TestAddIssuesNewNodesFromTheExistingRoot(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := Init(dir, InitOptions{TrustDomain: "example.org", Controllers: []string{"c1"}, Routers: []string{"r1"}, Now: now}); err != nil {
		t.Fatal(err)
	}
	written, err := Add(dir, AddOptions{Controllers: []string{"c2"}, Routers: []string{"r2"}, Hosts: []string{"r2.example.org"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 4 {
		t.Fatalf("wrote %v", written)
	}
	roots, err := LoadCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	c2, err := LoadKeyPair(filepath.Join(dir, "c2", CertFile), filepath.Join(dir, "c2", KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := c2.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("c2 does not chain to the existing root: %v", err)
	}
	if name, err := ControllerOf(append([]*x509.Certificate{c2.Cert}, chain[0]...), "example.org"); err != nil || name != "c2" {
		t.Fatalf("ControllerOf = %q, %v; want c2 in the root's trust domain", name, err)
	}
	r2, err := LoadKeyPair(filepath.Join(dir, "r2", CertFile), filepath.Join(dir, "r2", KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Cert.VerifyHostname("r2.example.org"); err != nil {
		t.Fatal(err)
	}

	// Existing names are refused and nothing is written.
	_, err = Add(dir, AddOptions{Routers: []string{"r3", "r1"}, Now: now})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("adding an existing name: %v", err)
	}
	if _, err := LoadCerts(filepath.Join(dir, "r3", CertFile)); err == nil {
		t.Fatal("r3 written although the call failed")
	}
	if _, err := Add(t.TempDir(), AddOptions{Routers: []string{"r9"}, Now: now}); err == nil {
		t.Fatal("Add without a root succeeded")
	}
}
