package pki_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/pki"
)

func TestClientLeafVerifiesAgainstRootThroughIntermediate(t *testing.T) {
	p := newTestPKI(t)
	ca := p.ctrl["ctrl-a"]
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pki.CheckCSR(makeCSR(t, clientKey))
	if err != nil {
		t.Fatalf("CheckCSR: %v", err)
	}
	leaf, err := pki.IssueClient(ca, pub, "alice@example.com", "sess-1", time.Hour, t0, rand.Reader)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}

	if leaf.Subject.CommonName != "alice@example.com" {
		t.Errorf("CN = %q, want the identity", leaf.Subject.CommonName)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"spiffe://mesh.test/identity/alice%40example.com/session/sess-1"}, uriStrings(leaf)); diff != "" {
		t.Errorf("URI SANs (-want +got):\n%s", diff)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("client leaf has extra SANs: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if !leaf.NotBefore.Equal(t0.Add(-pki.ClockSkewAllowance)) || !leaf.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Errorf("validity %v to %v, want %v to %v", leaf.NotBefore, leaf.NotAfter, t0.Add(-pki.ClockSkewAllowance), t0.Add(time.Hour))
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %x is not a positive random 128-bit number", leaf.SerialNumber)
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&clientKey.PublicKey) {
		t.Error("leaf does not carry the CSR's key")
	}

	chain, err := p.verify(t, leaf, ca.Cert)
	if err != nil {
		t.Fatalf("leaf does not verify against the root through the intermediate: %v", err)
	}
	if name, err := pki.ControllerOf(chain, "mesh.test"); err != nil || name != "ctrl-a" {
		t.Errorf("ControllerOf = %q, %v; want ctrl-a", name, err)
	}
	if _, err := pki.ControllerOf(chain, "other.test"); err == nil {
		t.Error("ControllerOf accepted a chain of another trust domain")
	}
	id, err := pki.IDOf(leaf)
	if diff := cmp.Diff(pki.IdentityID("mesh.test", "alice@example.com", "sess-1"), id); diff != "" || err != nil {
		t.Errorf("IDOf (-want +got), err %v:\n%s", err, diff)
	}
	if pki.IsAdmin(chain, "mesh.test") {
		t.Error("a client leaf counts as admin")
	}

	// Without the intermediate, the root alone does not verify the leaf.
	if _, err := p.verify(t, leaf); err == nil {
		t.Error("leaf verified without its intermediate")
	}
	// Another controller's intermediate does not verify it either.
	if _, err := p.verify(t, leaf, p.ctrl["ctrl-b"].Cert); err == nil {
		t.Error("leaf verified through the wrong intermediate")
	}
}

func TestIssueClientClampsToTheIntermediateAndRefusesBadInput(t *testing.T) {
	p := newTestPKI(t)
	ca := p.ctrl["ctrl-a"]
	key, _ := pki.GenerateKey(rand.Reader)

	nearEnd := ca.Cert.NotAfter.Add(-10 * time.Minute)
	leaf, err := pki.IssueClient(ca, key.Public(), "bob", "s", time.Hour, nearEnd, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want clamped to the intermediate's %v", leaf.NotAfter, ca.Cert.NotAfter)
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name     string
		issuer   pki.KeyPair
		pub      any
		identity string
		session  string
		ttl      time.Duration
		now      time.Time
		wantErr  string
	}{
		{"P-384 key", ca, p384.Public(), "bob", "s", time.Hour, t0, "want P-256"},
		{"Ed25519 key", ca, edPub, "bob", "s", time.Hour, t0, "want ECDSA P-256"},
		{"empty identity", ca, key.Public(), "", "s", time.Hour, t0, "identity"},
		{"invalid UTF-8 identity", ca, key.Public(), "\xff", "s", time.Hour, t0, "UTF-8"},
		{"huge identity", ca, key.Public(), strings.Repeat("x", pki.MaxIdentityLen+1), "s", time.Hour, t0, "identity"},
		{"empty session", ca, key.Public(), "bob", "", time.Hour, t0, "session id"},
		{"zero ttl", ca, key.Public(), "bob", "s", 0, t0, "ttl"},
		{"expired intermediate", ca, key.Public(), "bob", "s", time.Hour, ca.Cert.NotAfter.Add(time.Second), "not valid at"},
		{"root is not a controller", p.root, key.Public(), "bob", "s", time.Hour, t0, "URI SANs"},
		{"router cannot issue", p.router, key.Public(), "bob", "s", time.Hour, t0, "not a controller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.IssueClient(tt.issuer, tt.pub, tt.identity, tt.session, tt.ttl, tt.now, rand.Reader)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestTLSReadsTheControllerFromTheVerifiedChain runs real TLS 1.3 handshakes
// (server certificate from IssueServer, client certificate from IssueClient)
// where the client sends its certificates in odd orders.
func TestTLSReadsTheControllerFromTheVerifiedChain(t *testing.T) {
	p := newTestPKI(t)
	ca := p.ctrl["ctrl-a"]
	server, err := pki.IssueServer(ca, pki.ServerHosts("ctrl-a", "127.0.0.1:8443", []string{"api.example.com"}), 24*time.Hour, t0, rand.Reader)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	clientKey, _ := pki.GenerateKey(rand.Reader)
	leaf, err := pki.IssueClient(ca, clientKey.Public(), "carol", "s-9", time.Hour, t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := p.ctrl["ctrl-b"].Cert

	tests := []struct {
		name       string
		sent       []*x509.Certificate
		serverName string
		wantCtrl   string
		wantAdmin  string
		wantErr    bool
	}{
		{"leaf and intermediate", []*x509.Certificate{leaf, ca.Cert}, "localhost", "ctrl-a", "", false},
		{"leaf repeated", []*x509.Certificate{leaf, leaf, ca.Cert}, "ctrl-a", "ctrl-a", "", false},
		{"wrong intermediate sent first", []*x509.Certificate{leaf, other, ca.Cert}, "api.example.com", "ctrl-a", "", false},
		{"leaf alone", []*x509.Certificate{leaf}, "127.0.0.1", "", "", true},
		{"admin", []*x509.Certificate{p.admin.Cert}, "::1", "", "ops", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := clientKey
			if tt.wantAdmin != "" {
				key = p.admin.Key.(*ecdsa.PrivateKey)
			}
			var raw [][]byte
			for _, c := range tt.sent {
				raw = append(raw, c.Raw)
			}
			state, err := handshake(t, p, server, tls.Certificate{Certificate: raw, PrivateKey: key}, tt.serverName)
			if tt.wantErr {
				if err == nil {
					t.Fatal("handshake succeeded, want failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			chain := state.VerifiedChains[0]
			if tt.wantAdmin != "" {
				if name, err := pki.AdminOf(chain, "mesh.test"); err != nil || name != tt.wantAdmin {
					t.Errorf("AdminOf = %q, %v; want %q", name, err, tt.wantAdmin)
				}
				return
			}
			if name, err := pki.ControllerOf(chain, "mesh.test"); err != nil || name != tt.wantCtrl {
				t.Errorf("ControllerOf = %q, %v; want %q", name, err, tt.wantCtrl)
			}
		})
	}
}

// handshake runs a TLS 1.3 handshake over an in-memory pipe: the server
// presents server and requires a client certificate verified against the
// test root; it returns the server's view of the connection.
func handshake(t *testing.T, p *testPKI, server, client tls.Certificate, serverName string) (tls.ConnectionState, error) {
	t.Helper()
	now := func() time.Time { return t0.Add(time.Minute) }
	cConn, sConn := net.Pipe()
	defer cConn.Close()
	defer sConn.Close()
	srv := tls.Server(sConn, &tls.Config{
		Certificates: []tls.Certificate{server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.rootsPool,
		MinVersion:   tls.VersionTLS13,
		Time:         now,
	})
	cli := tls.Client(cConn, &tls.Config{
		Certificates: []tls.Certificate{client},
		RootCAs:      p.rootsPool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS13,
		Time:         now,
	})
	errc := make(chan error, 1)
	go func() {
		err := cli.Handshake()
		if err == nil {
			// In TLS 1.3 the client finishes before the server has checked
			// its certificate; a read surfaces the server's verdict.
			_, err = cli.Read(make([]byte, 1))
		}
		errc <- err
	}()
	err := srv.Handshake()
	if err == nil {
		_, err = srv.Write([]byte{1})
	}
	if cerr := <-errc; err == nil && cerr != nil {
		err = cerr
	}
	return srv.ConnectionState(), err
}

func TestAdminIsRecognisedByRootIssuedURIOnly(t *testing.T) {
	p := newTestPKI(t)
	// A certificate that a controller's intermediate issued with an admin
	// URI SAN and CN: it chains, but it is not an admin.
	key, _ := pki.GenerateKey(rand.Reader)
	ctrl := p.ctrl["ctrl-a"]
	forged := createCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "ops"},
		NotBefore:    t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{mustURL(t, "spiffe://mesh.test/admin/ops")},
	}, ctrl.Cert, key.Public(), ctrl.Key)
	forgedChain, err := p.verify(t, forged, ctrl.Cert)
	if err != nil {
		t.Fatal(err)
	}
	adminChain, err := p.verify(t, p.admin.Cert)
	if err != nil {
		t.Fatal(err)
	}
	routerChain, err := p.verify(t, p.router.Cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain []*x509.Certificate
		td    string
		want  bool
	}{
		{"admin cert", adminChain, "mesh.test", true},
		{"admin cert, other trust domain", adminChain, "other.test", false},
		{"router cert", routerChain, "mesh.test", false},
		{"admin URI issued by a controller", forgedChain, "mesh.test", false},
		{"empty chain", nil, "mesh.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pki.IsAdmin(tt.chain, tt.td); got != tt.want {
				t.Errorf("IsAdmin = %v, want %v", got, tt.want)
			}
		})
	}
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestServerHosts(t *testing.T) {
	tests := []struct {
		node, listen string
		extra        []string
		want         []string
	}{
		{"ctrl-us", "127.0.0.1:8443", nil, []string{"ctrl-us", "localhost", "127.0.0.1", "::1"}},
		{"ctrl-us", "10.0.0.5:8443", []string{"api.example.com", "localhost"}, []string{"ctrl-us", "localhost", "127.0.0.1", "::1", "10.0.0.5", "api.example.com"}},
		{"ctrl-us", "0.0.0.0:8443", nil, []string{"ctrl-us", "localhost", "127.0.0.1", "::1"}},
		{"ctrl-us", ":8443", nil, []string{"ctrl-us", "localhost", "127.0.0.1", "::1"}},
		{"ctrl-us", "ctrl.internal:8443", nil, []string{"ctrl-us", "localhost", "127.0.0.1", "::1", "ctrl.internal"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, pki.ServerHosts(tt.node, tt.listen, tt.extra)); diff != "" {
			t.Errorf("ServerHosts(%q, %q, %q) (-want +got):\n%s", tt.node, tt.listen, tt.extra, diff)
		}
	}
}
