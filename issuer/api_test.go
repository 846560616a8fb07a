package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
)

func TestLoginRotateLogout(t *testing.T) {
	e := newEnv(t)
	before := time.Now()
	s := e.login("alice@example.com")

	// The answer, field by field (package api).
	if s.Identity != "alice@example.com" || len(s.SessionID) != 32 {
		t.Errorf("identity %q session %q", s.Identity, s.SessionID)
	}
	if s.Serial != strings.ToLower(s.Serial) || len(s.Serial) != 32 {
		t.Errorf("serial %q is not 32 lowercase hex digits", s.Serial)
	}
	if got := hex.EncodeToString(s.leaf.SerialNumber.FillBytes(make([]byte, 16))); got != s.Serial {
		t.Errorf("serial %q, certificate has %q", s.Serial, got)
	}
	if len(s.cert.Certificate) != 2 {
		t.Errorf("certificate holds %d certificates, want leaf and intermediate", len(s.cert.Certificate))
	}
	if s.leaf.Subject.CommonName != "alice@example.com" {
		t.Errorf("CN %q", s.leaf.Subject.CommonName)
	}
	wantURI := "spiffe://certmesh/identity/alice%40example.com/session/" + s.SessionID
	if len(s.leaf.URIs) != 1 || s.leaf.URIs[0].String() != wantURI {
		t.Errorf("URIs %v, want %s", s.leaf.URIs, wantURI)
	}
	exp, err := time.Parse(time.RFC3339, s.ExpiresAt)
	if err != nil || exp.Before(before.Add(59*time.Minute)) || exp.After(time.Now().Add(time.Hour)) {
		t.Errorf("expires_at %q (%v)", s.ExpiresAt, err)
	}
	sexp, err := time.Parse(time.RFC3339, s.SessionExpiresAt)
	if err != nil || sexp.Before(before.Add(24*time.Hour-time.Second)) {
		t.Errorf("session_expires_at %q (%v)", s.SessionExpiresAt, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(s.CA))
	inter := x509.NewCertPool()
	inter.AddCert(mustParse(t, s.cert.Certificate[1]))
	chains, err := s.leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatalf("issued certificate does not verify against the answer's ca: %v", err)
	}
	if issuer, err := pki.ControllerOf(chains[0], "certmesh"); err != nil || issuer != "c1" {
		t.Errorf("issuer %q %v", issuer, err)
	}

	// The records.
	f := facts(t, s.leaf, "c1")
	e.mesh.View(func(st *crdt.Store) {
		sess, ok := st.Session(f.Session)
		if !ok || sess.Identity != "alice@example.com" || sess.Method != "oidc:"+e.oidc.URL() || sess.Author != e.c.Author() {
			t.Errorf("session record %+v", sess)
		}
		if sess.Expires.Time().Format(time.RFC3339) != s.SessionExpiresAt {
			t.Errorf("session record expires %v, answer %s", sess.Expires, s.SessionExpiresAt)
		}
		cr, ok := st.Cert(f.Serial)
		if !ok || cr.Session != f.Session || cr.Identity != f.Identity || cr.Fingerprint != sha256Of(s.leaf.Raw) ||
			cr.NotAfter != crdt.MillisOf(s.leaf.NotAfter) || cr.NotBefore != crdt.MillisOf(s.leaf.NotBefore) {
			t.Errorf("cert record %+v", cr)
		}
		if cr.Seq != sess.Seq+1 || cr.HLC <= sess.HLC {
			t.Errorf("session %v@%v then cert %v@%v: seq and HLC order differ", sess.Seq, sess.HLC, cr.Seq, cr.HLC)
		}
	})
	if v := e.verdict(s); v != crdt.Admit {
		t.Fatalf("new certificate: %v", v)
	}

	// Rotation keeps the session and gives the old certificate its grace.
	s2, r := e.rotate(s)
	if s2 == nil {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	if s2.SessionID != s.SessionID || s2.Serial == s.Serial || s2.SessionExpiresAt != s.SessionExpiresAt {
		t.Errorf("rotation answer %+v", s2.SessionResponse)
	}
	e.mesh.View(func(st *crdt.Store) {
		cr, _ := st.Cert(facts(t, s2.leaf, "c1").Serial)
		if cr == nil || cr.Supersedes != f.Serial {
			t.Fatalf("rotated cert record %+v", cr)
		}
		if d := cr.SupersedeAt.Time().Sub(time.Now()); d < 4*time.Minute || d > 5*time.Minute {
			t.Errorf("old certificate superseded in %v, want the 5m grace", d)
		}
	})
	if v := e.verdict(s); v != crdt.Admit {
		t.Errorf("old certificate within its grace: %v", v)
	}
	if v := e.verdict(s2); v != crdt.Admit {
		t.Errorf("new certificate: %v", v)
	}
	// A client that sends its leaf without the intermediate is still
	// recognised: the intermediate is known from c1's signer record.
	bare := s2.cert
	bare.Certificate = bare.Certificate[:1]
	if _, r := e.rotateWith(bare); r.status != http.StatusCreated {
		t.Errorf("rotation with the leaf alone: %d %s", r.status, r.body)
	}

	// The issuer is read from the verified chain, not from the order the
	// client sent its certificates in: a repeated leaf changes nothing.
	repeated := s2.cert
	repeated.Certificate = [][]byte{s2.cert.Certificate[0], s2.cert.Certificate[0], s2.cert.Certificate[1]}
	if _, r := e.rotateWith(repeated); r.status != http.StatusCreated {
		t.Errorf("rotation with a repeated leaf: %d %s", r.status, r.body)
	}

	// The session route tells a client its session is valid, and the
	// status of the certificate it presented (s's is superseded by s2's
	// after the rotation grace, still active now).
	r = do(t, e.client(s2.cert), "GET", e.url+"/v1/sessions/current", nil)
	var info api.SessionInfo
	if mustJSON(t, r.body, &info); r.status != http.StatusOK || info.SessionID != s.SessionID || info.Status != "active" ||
		len(info.Certificates) != 1 || info.Certificates[0].Serial != s2.Serial || info.Certificates[0].Status != "active" {
		t.Errorf("session check: %d %s", r.status, r.body)
	}

	// Logout revokes the session: every certificate of it.
	r = do(t, e.client(s2.cert), "DELETE", e.url+"/v1/sessions/current", nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	for _, x := range []*session{s, s2} {
		if v := e.verdict(x); v != crdt.SessionRevoked {
			t.Errorf("after logout: %v", v)
		}
	}
	// A revoked session has its own code (the status stays 403, as
	// clients that predate the code expect), on rotation and on the check.
	if _, r := e.rotate(s2); r.status != http.StatusForbidden || r.code() != api.CodeSessionRevoked {
		t.Errorf("rotation after logout: %d %s", r.status, r.body)
	}
	if r := do(t, e.client(s2.cert), "GET", e.url+"/v1/sessions/current", nil); r.status != http.StatusForbidden || r.code() != api.CodeSessionRevoked {
		t.Errorf("session check after logout: %d %s", r.status, r.body)
	}
	if r := do(t, e.client(s2.cert), "DELETE", e.url+"/v1/sessions/current", nil); r.status != http.StatusNoContent {
		t.Errorf("second logout: %d %s", r.status, r.body)
	}

	// Session routes need a session certificate.
	if _, r := e.rotateWith(); r.status != http.StatusUnauthorized || r.code() != "forbidden" {
		t.Errorf("rotation without a certificate: %d %s", r.status, r.body)
	}
	if _, r := e.rotateWith(e.admin); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
		t.Errorf("rotation with the admin certificate: %d %s", r.status, r.body)
	}
}

func (e *env) rotateWith(certs ...tls.Certificate) (*session, response) {
	e.t.Helper()
	key, csr := newCSR(e.t)
	r := do(e.t, e.client(certs...), "POST", e.url+"/v1/sessions/current/certificates", map[string]string{"csr": csr})
	if r.status != http.StatusCreated {
		return nil, r
	}
	return e.session(r, key), r
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAdminRevocations(t *testing.T) {
	e := newEnv(t)
	a1, a2 := e.login("alice"), e.login("alice")
	b1, b2 := e.login("bob"), e.login("bob")
	c1 := e.login("carol")

	check := func(r response, kind, key string) {
		t.Helper()
		if r.status != http.StatusAccepted {
			t.Fatalf("revoke %s %s: %d %s", kind, key, r.status, r.body)
		}
		var rr api.RevocationResponse
		mustJSON(t, r.body, &rr)
		if rr.Kind != kind || rr.Key != key || rr.HLC == "" {
			t.Errorf("answer %+v, want kind %s key %s", rr, kind, key)
		}
	}
	check(e.revoke(api.RevocationRequest{Serial: b1.Serial, Reason: "lost laptop"}), "serial", b1.Serial)
	if v := e.verdict(b1); v != crdt.SerialRevoked {
		t.Errorf("revoked serial: %v", v)
	}
	if v := e.verdict(b2); v != crdt.Admit {
		t.Errorf("other session of the identity: %v", v)
	}
	check(e.revoke(api.RevocationRequest{SessionID: strings.ToUpper(b2.SessionID)}), "session", b2.SessionID)
	if v := e.verdict(b2); v != crdt.SessionRevoked {
		t.Errorf("revoked session: %v", v)
	}
	check(e.revoke(api.RevocationRequest{Identity: "alice"}), "identity", "alice")
	for _, s := range []*session{a1, a2} {
		if v := e.verdict(s); v != crdt.IdentityRevoked {
			t.Errorf("revoked identity: %v", v)
		}
	}
	if v := e.verdict(c1); v != crdt.Admit {
		t.Errorf("bystander: %v", v)
	}
	// Alice may log in again: the revocation covers what came before it.
	a3 := e.login("alice")
	if v := e.verdict(a3); v != crdt.Admit {
		t.Errorf("alice after her identity revocation: %v", v)
	}

	// A serial and a session that this controller has never seen can be
	// revoked; the revocation binds them when they show up.
	var unseen crdt.Serial
	rand.Read(unseen[:])
	check(e.revoke(api.RevocationRequest{Serial: unseen.String()}), "serial", unseen.String())
	var unseenSession crdt.SessionID
	rand.Read(unseenSession[:])
	check(e.revoke(api.RevocationRequest{SessionID: unseenSession.String()}), "session", unseenSession.String())
	e.mesh.View(func(st *crdt.Store) {
		f := crdt.CertFacts{Serial: unseen, Session: unseenSession, Identity: "x", Issuer: "c2",
			NotBefore: crdt.MillisOf(time.Now().Add(-time.Minute)), NotAfter: crdt.MillisOf(time.Now().Add(time.Hour))}
		if v := st.Admission(f, crdt.MillisOf(time.Now()), false); v != crdt.SerialRevoked {
			t.Errorf("unseen serial: %v", v)
		}
		f.Serial[0] ^= 1
		if v := st.Admission(f, crdt.MillisOf(time.Now()), false); v != crdt.SessionRevoked {
			t.Errorf("unseen session: %v", v)
		}
	})

	// The operator's view.
	r := do(t, e.client(e.admin), "GET", e.url+"/v1/sessions?identity=alice", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct {
		Identity string
		Sessions []api.SessionInfo
	}
	mustJSON(t, r.body, &list)
	if len(list.Sessions) != 3 {
		t.Fatalf("alice has %d sessions listed, want 3: %s", len(list.Sessions), r.body)
	}
	statuses := map[string]string{}
	for _, si := range list.Sessions {
		statuses[si.SessionID] = si.Status
		if len(si.Certificates) != 1 || si.Certificates[0].Serial == "" || si.Issuer != "c1" {
			t.Errorf("session %+v", si)
		}
	}
	if statuses[a1.SessionID] != "identity_revoked" || statuses[a3.SessionID] != "active" {
		t.Errorf("statuses %v", statuses)
	}

	// Refusals.
	for _, tc := range []struct {
		name   string
		client *http.Client
		body   any
		status int
		code   api.Code
	}{
		{"no certificate", e.client(), api.RevocationRequest{Identity: "bob"}, 401, "forbidden"},
		{"a session certificate", e.client(c1.cert), api.RevocationRequest{Identity: "bob"}, 403, "forbidden"},
		{"a CN of admin from a controller", e.client(e.fakeAdmin()), api.RevocationRequest{Identity: "bob"}, 403, "forbidden"},
		{"two targets", e.client(e.admin), api.RevocationRequest{Identity: "bob", Serial: "01"}, 400, "bad_request"},
		{"no target", e.client(e.admin), api.RevocationRequest{}, 400, "bad_request"},
		{"bad serial", e.client(e.admin), api.RevocationRequest{Serial: "xyz"}, 400, "bad_request"},
		{"bad session", e.client(e.admin), api.RevocationRequest{SessionID: "abc"}, 400, "bad_request"},
		{"garbage root_signed", e.client(e.admin), api.RevocationRequest{RootSigned: []byte("nope")}, 400, "bad_request"},
		{"not JSON", e.client(e.admin), "{", 400, "bad_request"},
	} {
		r := do(t, tc.client, "POST", e.url+"/v1/revocations", tc.body)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := do(t, e.client(c1.cert), "GET", e.url+"/v1/sessions?identity=alice", nil); r.status != 403 {
		t.Errorf("listing with a session certificate: %d", r.status)
	}
	if r := do(t, e.client(e.admin), "GET", e.url+"/v1/sessions", nil); r.status != 400 {
		t.Errorf("listing without identity: %d", r.status)
	}
}

// fakeAdmin is a client certificate with CN "admin" and an admin URI SAN,
// issued by a controller intermediate instead of the root: not an admin.
func (e *env) fakeAdmin() tls.Certificate {
	e.t.Helper()
	kp, err := pki.LoadKeyPair(filepath.Join(e.pkiDir, "c2", pki.CertFile), filepath.Join(e.pkiDir, "c2", pki.KeyFile))
	if err != nil {
		e.t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://certmesh/admin/admin")
	tmpl := &x509.Certificate{
		SerialNumber: bigOne(), Subject: pkix.Name{CommonName: "admin"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, kp.Cert, &key.PublicKey, kp.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, kp.Cert.Raw}, PrivateKey: key}
}

func TestRootSignedControllerRevocation(t *testing.T) {
	e := newEnv(t)
	root, err := pki.LoadKeyPair(filepath.Join(e.pkiDir, pki.CACertFile), filepath.Join(e.pkiDir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	blob, err := pki.SignControllerRevocation(root.Key, "certmesh", "c2", at)
	if err != nil {
		t.Fatal(err)
	}
	r := e.revoke(api.RevocationRequest{RootSigned: blob})
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var rr api.RevocationResponse
	mustJSON(t, r.body, &rr)
	if rr.Kind != "controller" || rr.Key != "c2" {
		t.Errorf("answer %+v", rr)
	}
	e.mesh.View(func(st *crdt.Store) {
		if got, ok := st.SignerRevoked("c2"); !ok || got != crdt.MillisOf(at) {
			t.Errorf("c2 revoked at %v %v, want %v", got, ok, crdt.MillisOf(at))
		}
	})
	// A revocation signed by anyone but the root is refused.
	c1, _ := pki.LoadKeyPair(filepath.Join(e.pkiDir, "c1", pki.CertFile), filepath.Join(e.pkiDir, "c1", pki.KeyFile))
	forged, _ := pki.SignControllerRevocation(c1.Key, "certmesh", "c2", at)
	if r := e.revoke(api.RevocationRequest{RootSigned: forged}); r.status != http.StatusBadRequest {
		t.Errorf("forged: %d %s", r.status, r.body)
	}
	other, _ := pki.SignControllerRevocation(root.Key, "elsewhere", "c2", at)
	if r := e.revoke(api.RevocationRequest{RootSigned: other}); r.status != http.StatusBadRequest {
		t.Errorf("other trust domain: %d %s", r.status, r.body)
	}
}

func TestTokenAttacks(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"iss": e.oidc.URL(), "aud": "certmesh", "sub": "mallory", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(m)
		}
		return m
	}
	mint := func(edit func(jwt.MapClaims)) string {
		tok, err := e.oidc.MintClaims(claims(edit))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := e.token("mallory")
	parsed, _, err := jwt.NewParser().ParseUnverified(good, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid := parsed.Header["kid"].(string)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sign := func(key *ecdsa.PrivateKey, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	jwks := do(t, http.DefaultClient, "GET", e.oidc.URL()+"/keys", nil).body
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hs.Header["kid"] = kid
	hs256, err := hs.SignedString(jwks) // the issuer's public keys as an HMAC secret
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	for _, tc := range []struct {
		name, token string
		status      int
		code        auth.Code
	}{
		{"expired", mint(func(m jwt.MapClaims) { m["exp"] = now.Add(-5 * time.Minute).Unix() }), 401, auth.CodeTokenExpired},
		{"not yet valid", mint(func(m jwt.MapClaims) { m["nbf"] = now.Add(5 * time.Minute).Unix() }), 401, auth.CodeTokenNotYetValid},
		{"wrong audience", mint(func(m jwt.MapClaims) { m["aud"] = "someone-else" }), 401, auth.CodeAudienceMismatch},
		{"wrong issuer", mint(func(m jwt.MapClaims) { m["iss"] = "https://evil.example" }), 401, auth.CodeIssuerUnknown},
		{"unknown kid", sign(otherKey, "no-such-kid", claims(nil)), 401, auth.CodeTokenInvalid},
		{"alg none", none, 401, auth.CodeTokenInvalid},
		{"HS256 with the public key", hs256, 401, auth.CodeTokenInvalid},
		{"signed by another key", sign(stranger, kid, claims(nil)), 401, auth.CodeTokenInvalid},
		{"garbage", "garbage", 401, auth.CodeTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, csr := newCSR(t)
			r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": tc.token, "csr": csr})
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	// Every refusal was counted by code.
	metrics := do(t, http.DefaultClient, "GET", "http://"+e.c.MetricsAddr()+"/metrics", nil)
	for code, n := range map[string]string{"token_expired": "1", "token_invalid": "5", "issuer_unknown": "1"} {
		want := `certmesh_auth_failures_total{code="` + code + `"} ` + n
		if !strings.Contains(string(metrics.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	e.mesh.View(func(st *crdt.Store) {
		if n := st.Counts()[crdt.KindSession]; n != 0 {
			t.Errorf("%d sessions created by attacks", n)
		}
	})
}

func TestJWTSigner(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keysFile := filepath.Join(t.TempDir(), "corp.pem")
	writeTestFile(t, keysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	e := newEnv(t, func(c *config.Controller) {
		c.Auth.JWT = []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", KeysFile: keysFile, IdentityClaim: "email"}}
	})
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "corp-signer", "aud": "certmesh", "sub": "u123", "email": "dana@corp.example", "exp": time.Now().Add(time.Minute).Unix(),
	})
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	k, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": raw, "csr": csr})
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	s := e.session(r, k)
	// The controller also trusts an OIDC issuer: the signer's identities
	// are namespaced by its name.
	if s.Identity != "corp:dana@corp.example" {
		t.Errorf("identity %q", s.Identity)
	}
	e.mesh.View(func(st *crdt.Store) {
		sess, _ := st.Session(facts(t, s.leaf, "c1").Session)
		if sess == nil || sess.Method != "jwt:corp" {
			t.Errorf("session %+v", sess)
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	tok := e.token("alice")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	rsaCSR := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: rsaDER}))
	_, good := newCSR(t)
	block, _ := pem.Decode([]byte(good))
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   api.Code
	}{
		{"garbage CSR", map[string]string{"token": tok, "csr": "not a csr"}, 400, "csr_invalid"},
		{"RSA CSR", map[string]string{"token": tok, "csr": rsaCSR}, 400, "csr_invalid"},
		{"CSR with a bad signature", map[string]string{"token": tok, "csr": badSig}, 400, "csr_invalid"},
		{"certificate instead of CSR", map[string]string{"token": tok, "csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.admin.Certificate[0]}))}, 400, "csr_invalid"},
		{"malformed JSON", `{"token": `, 400, "bad_request"},
		{"wrong types", `{"token": 5, "csr": []}`, 400, "bad_request"},
		{"missing csr", map[string]string{"token": tok}, 400, "bad_request"},
		{"missing token", map[string]string{"csr": good}, 400, "bad_request"},
		{"empty body", "", 400, "bad_request"},
		{"body too large", `{"token": "` + strings.Repeat("a", api.MaxBodyBytes) + `", "csr": ""}`, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, e.client(), "POST", e.url+"/v1/sessions", tc.body)
			if r.status != tc.status || r.code() != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	t.Run("body too large, chunked", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.url+"/v1/sessions", io.MultiReader(strings.NewReader(`{"token":"`), strings.NewReader(strings.Repeat("a", 2*api.MaxBodyBytes))))
		req.ContentLength = -1
		resp, err := e.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	for _, tc := range []struct{ method, path string }{
		{"PUT", "/v1/sessions"}, {"GET", "/v1/revocations"}, {"POST", "/v1/nothing"},
	} {
		r := do(t, e.client(), tc.method, e.url+tc.path, nil)
		if r.status != 405 && r.status != 404 {
			t.Errorf("%s %s: %d", tc.method, tc.path, r.status)
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *config.Controller) { c.API.RateLimit = 5 }) // burst 10
	client := e.client()
	limited := 0
	for i := 0; i < 40; i++ {
		r := do(t, client, "POST", e.url+"/v1/sessions", "{}")
		switch {
		case r.status == 429:
			if r.code() != "rate_limited" {
				t.Fatalf("429 with code %q", r.code())
			}
			limited++
		case r.status != 400:
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	// 40 requests in well under a second at 5/s with a burst of 10.
	if limited < 20 {
		t.Errorf("%d of 40 requests limited, want most beyond the burst of 10", limited)
	}
}

func TestClockSkewRefusesWrites(t *testing.T) {
	e := newEnv(t)
	s := e.login("alice")
	e.mesh.setOffset(6 * time.Second) // more than half the 10s max offset
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("bob"), "csr": csr})
	if r.status != 503 || r.code() != "clock_skew" {
		t.Errorf("login: %d %s", r.status, r.body)
	}
	if _, r := e.rotate(s); r.status != 503 || r.code() != "clock_skew" {
		t.Errorf("rotate: %d %s", r.status, r.body)
	}
	if r := e.revoke(api.RevocationRequest{Identity: "x"}); r.status != 503 || r.code() != "clock_skew" {
		t.Errorf("revoke: %d %s", r.status, r.body)
	}
	if r := do(t, e.client(e.admin), "GET", e.url+"/v1/status", nil); r.status != 200 {
		t.Errorf("reads go on: %d", r.status)
	}
	e.mesh.setOffset(-4 * time.Second)
	e.login("bob")
}

// A controller that knows live peers but has heard from none of them
// cannot tell whether its clock agrees with theirs: what it wrote could be
// held everywhere for as long as its clock is ahead (a valid client
// refused by every router meanwhile), so it refuses writes until it has
// heard one. Alone, or with only dead peers, it writes.
func TestNoClockSampleYetRefusesWritesWhilePeersAreAlive(t *testing.T) {
	e := newEnv(t)
	s := e.login("alice")
	self := Member{Name: e.cfg.Node.Name, Role: "controller", Region: "default", State: "alive"}
	e.mesh.unheard(self, Member{Name: "r1", Role: "router", Region: "default", State: "alive"},
		Member{Name: "c2", Role: "controller", Region: "default", State: "dead"})
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("bob"), "csr": csr})
	if r.status != 503 || r.code() != "clock_skew" || !strings.Contains(string(r.body), "1 live peers") {
		t.Errorf("login with a live peer unheard: %d %s, want 503 clock_skew", r.status, r.code())
	}
	if _, r := e.rotate(s); r.status != 503 || r.code() != "clock_skew" {
		t.Errorf("rotate with a live peer unheard: %d %s, want 503 clock_skew", r.status, r.code())
	}
	e.mesh.unheard(self, Member{Name: "c2", Role: "controller", Region: "default", State: "dead"})
	e.login("bob") // no live peer: alone, it writes
	e.mesh.unheard(self, Member{Name: "r1", Role: "router", Region: "default", State: "alive"})
	e.mesh.setOffset(time.Second)
	e.login("carol") // heard from a peer, clock within the limit
}

func TestStatusMetricsHealth(t *testing.T) {
	e := newEnv(t)
	e.login("alice")
	mon := "http://" + e.c.MetricsAddr()
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := do(t, http.DefaultClient, "GET", mon+path, nil); r.status != 200 {
			t.Errorf("%s: %d", path, r.status)
		}
	}
	e.mesh.mu.Lock()
	e.mesh.notReady = true
	e.mesh.mu.Unlock()
	if r := do(t, http.DefaultClient, "GET", mon+"/readyz", nil); r.status != 503 {
		t.Errorf("readyz with the mesh not ready: %d", r.status)
	}

	for _, src := range []struct {
		client *http.Client
		url    string
	}{{http.DefaultClient, mon + "/v1/status"}, {e.client(e.admin), e.url + "/v1/status"}} {
		r := do(t, src.client, "GET", src.url, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", src.url, r.status, r.body)
		}
		var raw map[string]any
		mustJSON(t, r.body, &raw)
		for _, k := range []string{"node", "role", "region", "members", "version_vector", "records", "digest"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("status lacks %q: %s", k, r.body)
			}
		}
		var st api.Status
		mustJSON(t, r.body, &st)
		if st.Node != "c1" || st.Role != "controller" || st.Records["session"] != 1 || st.Records["cert"] != 1 || st.Records["signer"] != 1 {
			t.Errorf("status %+v", st)
		}
		if st.VersionVector[e.c.Author().String()] != 3 {
			t.Errorf("version vector %v, want %v at 3", st.VersionVector, e.c.Author())
		}
		if len(st.Members) != 1 || st.Members[0].Lag != 3 {
			t.Errorf("members %+v", st.Members)
		}
	}
	if r := do(t, e.client(), "GET", e.url+"/v1/status", nil); r.status != 401 {
		t.Errorf("API status without admin: %d", r.status)
	}
	m := string(do(t, http.DefaultClient, "GET", mon+"/metrics", nil).body)
	for _, want := range []string{"certmesh_certs_issued_total 1", `certmesh_auth_failures_total{code="token_expired"} 0`, "certmesh_store_commit_seconds_bucket"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestServerCertificate(t *testing.T) {
	e := newEnv(t, func(c *config.Controller) { c.API.Hosts = []string{"ctrl.example.com"} })
	conn, err := tls.Dial("tcp", e.c.APIAddr(), &tls.Config{RootCAs: e.roots, ServerName: "ctrl.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	for _, h := range []string{"c1", "localhost", "ctrl.example.com"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("server certificate: %v", err)
		}
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}

func TestIssuerUnreachableAtStartAndKeyRotation(t *testing.T) {
	addr := testutil.FreeAddr(t)
	e := &env{t: t, pkiDir: newPKI(t)}
	e.cfg = baseConfig(t, e.pkiDir, "c1")
	e.cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: "http://" + addr, Audience: "certmesh"}}
	c, err := Open(e.cfg, Options{Logger: testLogger(t), Auth: auth.Options{DiscoveryBackoffMin: 20 * time.Millisecond, DiscoveryBackoffMax: 100 * time.Millisecond}})
	if err != nil {
		t.Fatalf("a controller whose issuer is down must still start: %v", err)
	}
	e.mesh = newFakeMesh(c.Store())
	if err := c.Start(e.mesh); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	e.c, e.url, e.roots = c, "https://"+c.APIAddr(), loadRoots(t, e.pkiDir)

	// A token naming the issuer, while it is down.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "http://" + addr, "aud": "certmesh", "sub": "a", "exp": time.Now().Add(time.Hour).Unix()})
	raw, _ := tok.SignedString(key)
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": raw, "csr": csr})
	if r.status != http.StatusServiceUnavailable || r.code() != "issuer_unavailable" {
		t.Fatalf("issuer down: %d %s", r.status, r.body)
	}

	// The issuer comes up; its tokens are accepted without a restart.
	oidc, err := devoidc.Start(addr, devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer oidc.Close()
	e.oidc = oidc
	testutil.Eventually(t, 10*time.Second, "the issuer to be discovered", func() bool {
		_, csr := newCSR(t)
		return do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("a"), "csr": csr}).status == http.StatusCreated
	})
	// A new signing key at the issuer is picked up too (once the verifier's
	// JWKS refresh interval, 5s by default, allows a fetch).
	if _, err := oidc.Rotate(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the issuer's new key to be used", func() bool {
		_, csr := newCSR(t)
		r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("b"), "csr": csr})
		return r.status == http.StatusCreated
	})
}
