package pki_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/pki"
)

func TestInitWritesEveryFileWithItsModeAndNames(t *testing.T) {
	p := newTestPKI(t)

	wantModes := map[string]os.FileMode{
		"ca.pem":          0o644,
		"ca.key":          0o600,
		"gossip.key":      0o600,
		"ctrl-a/cert.pem": 0o644,
		"ctrl-a/key.pem":  0o600,
		"ctrl-b/cert.pem": 0o644,
		"ctrl-b/key.pem":  0o600,
		"edge-1/cert.pem": 0o644,
		"edge-1/key.pem":  0o600,
		"ops/cert.pem":    0o644,
		"ops/key.pem":     0o600,
	}
	gotModes := map[string]os.FileMode{}
	err := filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.dir, path)
		gotModes[filepath.ToSlash(rel)] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantModes, gotModes); diff != "" {
		t.Errorf("files and modes (-want +got):\n%s", diff)
	}

	t.Run("root", func(t *testing.T) {
		c := p.root.Cert
		if !c.IsCA || c.MaxPathLen != 1 || c.CheckSignatureFrom(c) != nil {
			t.Errorf("root: IsCA=%v MaxPathLen=%d, self-signed check %v", c.IsCA, c.MaxPathLen, c.CheckSignatureFrom(c))
		}
		if got, want := c.NotAfter.Sub(c.NotBefore), pki.DefaultRootTTL+pki.ClockSkewAllowance; got != want {
			t.Errorf("root lifetime %v, want %v", got, want)
		}
	})

	t.Run("controller intermediate with chain in cert.pem", func(t *testing.T) {
		certs, err := pki.LoadCerts(filepath.Join(p.dir, "ctrl-a", pki.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != 2 || !certs[1].Equal(p.root.Cert) {
			t.Fatalf("ctrl-a/cert.pem holds %d certificates, want the intermediate then the root", len(certs))
		}
		c := certs[0]
		if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
			t.Errorf("intermediate: IsCA=%v MaxPathLen=%d MaxPathLenZero=%v, want a CA with path length 0", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
		}
		if err := c.CheckSignatureFrom(p.root.Cert); err != nil {
			t.Errorf("intermediate not signed by root: %v", err)
		}
		if diff := cmp.Diff([]string{"spiffe://mesh.test/controller/ctrl-a"}, uriStrings(c)); diff != "" {
			t.Errorf("URI SANs (-want +got):\n%s", diff)
		}
	})

	t.Run("router leaf", func(t *testing.T) {
		c := p.router.Cert
		if diff := cmp.Diff([]string{"edge-1", "localhost", "*.svc.mesh.test", "edge.example.com"}, c.DNSNames); diff != "" {
			t.Errorf("DNS SANs (-want +got):\n%s", diff)
		}
		var ips []string
		for _, ip := range c.IPAddresses {
			ips = append(ips, ip.String())
		}
		if diff := cmp.Diff([]string{"127.0.0.1", "::1", "10.1.2.3"}, ips); diff != "" {
			t.Errorf("IP SANs (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"spiffe://mesh.test/router/edge-1"}, uriStrings(c)); diff != "" {
			t.Errorf("URI SANs (-want +got):\n%s", diff)
		}
		for _, name := range []string{"edge-1", "localhost", "127.0.0.1", "::1", "edge.example.com", "10.1.2.3"} {
			_, err := c.Verify(x509.VerifyOptions{
				DNSName: name, Roots: p.rootsPool, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Errorf("router cert does not verify as server %q: %v", name, err)
			}
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: p.rootsPool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("router cert does not verify as a client: %v", err)
		}
	})

	t.Run("admin", func(t *testing.T) {
		chain, err := p.verify(t, p.admin.Cert)
		if err != nil {
			t.Fatal(err)
		}
		name, err := pki.AdminOf(chain, "mesh.test")
		if err != nil || name != "ops" {
			t.Errorf("AdminOf = %q, %v; want ops", name, err)
		}
	})

	t.Run("gossip key", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(p.dir, pki.GossipKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		line, ok := strings.CutSuffix(string(data), "\n")
		if !ok || strings.Contains(line, "\n") {
			t.Fatalf("gossip.key is not one line: %q", data)
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(key) != 32 {
			t.Errorf("gossip.key decodes to %d bytes (%v), want 32", len(key), err)
		}
	})
}

func uriStrings(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

func TestInitRefusesToOverwriteUnlessForced(t *testing.T) {
	p := newTestPKI(t)
	before := snapshot(t, p.dir)
	opts := pki.InitOptions{TrustDomain: "mesh.test", Controllers: []string{"ctrl-a"}, Admin: "ops", Now: t0}

	_, err := pki.Init(p.dir, opts)
	var exists *pki.ExistsError
	if !errors.As(err, &exists) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Init: err = %v, want *ExistsError", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(p.dir, pki.CACertFile)) {
		t.Errorf("error %q does not name the file", err)
	}
	if diff := cmp.Diff(before, snapshot(t, p.dir)); diff != "" {
		t.Fatalf("refused Init changed files (-before +after):\n%s", diff)
	}

	// A single existing file anywhere is enough to refuse, and nothing else
	// gets written.
	fresh := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fresh, "ops"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, "ops", pki.KeyFile), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Init(fresh, opts); !errors.As(err, &exists) || exists.Path != filepath.Join(fresh, "ops", pki.KeyFile) {
		t.Fatalf("Init over ops/key.pem: err = %v, want *ExistsError naming it", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, pki.CACertFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused Init wrote ca.pem anyway (stat: %v)", err)
	}

	opts.Force = true
	written, err := pki.Init(p.dir, opts)
	if err != nil {
		t.Fatalf("Init with Force: %v", err)
	}
	if len(written) != 7 { // ca.pem, ca.key, ctrl-a x2, ops x2, gossip.key
		t.Errorf("Init with Force wrote %d files, want 7: %v", len(written), written)
	}
	after := snapshot(t, p.dir)
	for _, f := range []string{"ca.pem", "ca.key", "ctrl-a/cert.pem", "ctrl-a/key.pem", "ops/cert.pem", "gossip.key"} {
		if bytes.Equal(before[f], after[f]) {
			t.Errorf("%s unchanged after Init with Force", f)
		}
	}
	if !bytes.Equal(before["edge-1/cert.pem"], after["edge-1/cert.pem"]) {
		t.Errorf("Init with Force touched edge-1, which it was not asked for")
	}
	if info, err := os.Stat(filepath.Join(p.dir, pki.CAKeyFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("ca.key after Force: %v, %v; want mode 0600", info.Mode(), err)
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInitRejectsBadOptions(t *testing.T) {
	base := func() pki.InitOptions {
		return pki.InitOptions{Controllers: []string{"a"}, Routers: []string{"r"}, Now: t0}
	}
	tests := []struct {
		name    string
		mutate  func(*pki.InitOptions)
		wantErr string
	}{
		{"no controllers", func(o *pki.InitOptions) { o.Controllers = nil }, "at least one controller"},
		{"empty name", func(o *pki.InitOptions) { o.Routers = []string{""} }, "name is empty"},
		{"controller twice", func(o *pki.InitOptions) { o.Controllers = []string{"a", "a"} }, `"a" is used twice`},
		{"router named like controller", func(o *pki.InitOptions) { o.Routers = []string{"a"} }, `"a" is used twice`},
		{"admin named like router", func(o *pki.InitOptions) { o.Admin = "r" }, `"r" is used twice`},
		{"path separator", func(o *pki.InitOptions) { o.Controllers = []string{"a/b"} }, "DNS label"},
		{"dot dot", func(o *pki.InitOptions) { o.Controllers = []string{".."} }, "DNS label"},
		{"upper case", func(o *pki.InitOptions) { o.Routers = []string{"Edge"} }, "DNS label"},
		{"leading hyphen", func(o *pki.InitOptions) { o.Routers = []string{"-r"} }, "DNS label"},
		{"too long", func(o *pki.InitOptions) { o.Routers = []string{strings.Repeat("r", 64)} }, "longer than 63"},
		{"bad trust domain", func(o *pki.InitOptions) { o.TrustDomain = "Mesh/Test" }, "trust domain"},
		{"bad host", func(o *pki.InitOptions) { o.Hosts = []string{"bad host"} }, "neither an IP address nor a DNS name"},
		{"no time", func(o *pki.InitOptions) { o.Now = time.Time{} }, "Now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := base()
			tt.mutate(&opts)
			_, err := pki.Init(dir, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Init: err = %v, want one containing %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("rejected Init wrote %d entries", len(entries))
			}
		})
	}
}

func TestRotateControllerIssuesANewKey(t *testing.T) {
	p := newTestPKI(t)
	old := p.ctrl["ctrl-a"]
	later := t0.Add(24 * time.Hour)

	kp, err := pki.RotateController(p.dir, "ctrl-a", pki.RotateOptions{Now: later})
	if err != nil {
		t.Fatalf("RotateController: %v", err)
	}
	loaded := mustLoad(t, p.dir, "ctrl-a")
	if !loaded.Cert.Equal(kp.Cert) {
		t.Fatal("cert.pem does not hold the returned certificate")
	}
	oldID, _ := pki.KeyID(old.Cert.PublicKey)
	newID, _ := pki.KeyID(loaded.Cert.PublicKey)
	if oldID == newID {
		t.Fatal("rotated intermediate has the old key")
	}
	if loaded.Cert.SerialNumber.Cmp(old.Cert.SerialNumber) == 0 {
		t.Error("rotated intermediate has the old serial")
	}
	if diff := cmp.Diff(uriStrings(old.Cert), uriStrings(loaded.Cert)); diff != "" {
		t.Errorf("URI SAN changed (-old +new):\n%s", diff)
	}
	if err := loaded.Cert.CheckSignatureFrom(p.root.Cert); err != nil {
		t.Errorf("new intermediate not signed by the root: %v", err)
	}
	certs, _ := pki.LoadCerts(filepath.Join(p.dir, "ctrl-a", pki.CertFile))
	if len(certs) != 2 || !certs[1].Equal(p.root.Cert) {
		t.Errorf("cert.pem after rotation holds %d certificates, want intermediate and root", len(certs))
	}
	for f, want := range map[string]os.FileMode{pki.CertFile: 0o644, pki.KeyFile: 0o600} {
		info, err := os.Stat(filepath.Join(p.dir, "ctrl-a", f))
		if err != nil || info.Mode().Perm() != want {
			t.Errorf("%s mode %v (%v), want %v", f, info.Mode().Perm(), err, want)
		}
	}
	// The new intermediate issues leaves that chain to the root.
	leafKey, _ := pki.GenerateKey(nil)
	leaf, err := pki.IssueClient(loaded, leafKey.Public(), "alice", "s1", time.Hour, later, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.rootsPool, Intermediates: poolOf(loaded.Cert), CurrentTime: later, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf of the rotated intermediate does not verify: %v", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Join(p.dir, "ctrl-a"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"cert.pem", "key.pem"}, names); diff != "" {
		t.Errorf("ctrl-a/ entries (-want +got):\n%s", diff)
	}
}

func TestRotateControllerRefusesWhatIsNotAController(t *testing.T) {
	p := newTestPKI(t)
	for _, name := range []string{"edge-1", "ops", "nobody", "../ctrl-a"} {
		if _, err := pki.RotateController(p.dir, name, pki.RotateOptions{Now: t0}); err == nil {
			t.Errorf("RotateController(%q) succeeded", name)
		}
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
