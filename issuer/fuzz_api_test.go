package issuer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// FuzzAPIBodies sends arbitrary bodies to the write routes of the real API
// handler: POST /v1/sessions (no client certificate), POST
// /v1/sessions/current/certificates (with a genuine session certificate)
// and POST /v1/revocations (with the admin certificate, and with a session
// certificate that is not an admin's). Whatever the body, the answer is
// never a 500 and never a panic: a success, or a JSON error whose code is
// one package api names. The seed corpus (valid and invalid bodies of
// each route, built from real encodings) runs in plain go test:
//
//	go test ./issuer/ -run '^$' -fuzz FuzzAPIBodies -fuzztime 60s
func FuzzAPIBodies(f *testing.F) {
	fx := newAPIFixture(f)
	_, csr := newCSR(f)
	tok, err := fx.oidc.Mint("alice", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	root, err := pki.LoadKeyPair(filepath.Join(fx.pkiDir, pki.CACertFile), filepath.Join(fx.pkiDir, pki.CAKeyFile))
	if err != nil {
		f.Fatal(err)
	}
	c2, err := pki.LoadKeyPair(filepath.Join(fx.pkiDir, "c2", pki.CertFile), filepath.Join(fx.pkiDir, "c2", pki.KeyFile))
	if err != nil {
		f.Fatal(err)
	}
	rootBlob, _ := pki.SignControllerRevocation(root.Key, "certmesh", "c2", time.Now())
	ctrlBlob, _ := pki.SignControllerRevocation(c2.Key, "certmesh", "c1", time.Now())
	for _, s := range []struct {
		route uint8
		body  []byte
	}{
		{routeLogin, js(map[string]string{"token": tok, "csr": csr})},
		{routeLogin, js(map[string]string{"token": tok[:len(tok)-3] + "abc", "csr": csr})},
		{routeLogin, js(map[string]string{"token": "e30.e30.", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"})},
		{routeLogin, []byte(`{"token": 5, "csr": []}`)},
		{routeLogin, []byte(`{"token":"a","csr":"b"}{"trailing":1}`)},
		{routeLogin, []byte(``)},
		{routeRotate, js(map[string]string{"csr": csr})},
		{routeRotate, js(map[string]string{"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))})},
		{routeRotate, []byte(`{"csr":"\u0000"}`)},
		// Not the fixture's own session, which rotations keep using.
		{routeRevoke, js(api.RevocationRequest{SessionID: "0123456789abcdef0123456789abcdef", Reason: "lost laptop"})},
		{routeRevoke, js(api.RevocationRequest{Serial: "7f"})},
		{routeRevoke, js(api.RevocationRequest{Identity: "bob@example.com", Reason: "\xff\xfe"})},
		{routeRevoke, js(api.RevocationRequest{RootSigned: rootBlob})},
		{routeRevoke, js(api.RevocationRequest{RootSigned: ctrlBlob})},
		{routeRevoke, js(api.RevocationRequest{SessionID: "zz", Serial: "00"})},
		{routeRevoke, []byte(`{"root_signed":"!!notbase64"}`)},
		{routeRevokeNotAdmin, js(api.RevocationRequest{Identity: "mallory"})},
	} {
		f.Add(s.route, s.body)
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		fx.check(t, route, body)
	})
}

const (
	routeLogin = iota
	routeRotate
	routeRevoke
	routeRevokeNotAdmin
	numRoutes
)

// apiCodes are the error codes of the API (package api).
var apiCodes = map[api.Code]bool{
	api.CodeBadRequest: true, api.CodeBodyTooLarge: true, api.CodeRateLimited: true, api.CodeClockSkew: true,
	api.CodeCSRInvalid: true, api.CodeForbidden: true, api.CodeUnavailable: true,
	api.CodeSessionRevoked: true, api.CodeSessionExpired: true,
	auth.CodeTokenExpired: true, auth.CodeTokenNotYetValid: true, auth.CodeTokenInvalid: true,
	auth.CodeAudienceMismatch: true, auth.CodeIssuerUnknown: true, auth.CodeIssuerUnavailable: true,
}

// apiFixture is a controller on a fake mesh whose API handler is called
// directly, with a session and the admin certificate to present.
type apiFixture struct {
	pkiDir string
	oidc   *devoidc.Server
	c      *Controller
	h      http.Handler
	admin  []*x509.Certificate
	sess   []*x509.Certificate
}

func newAPIFixture(tb testing.TB) *apiFixture {
	tb.Helper()
	return newAPIFixtureOn(tb, func(s *crdt.Store) Mesh { return newFakeMesh(s) })
}

// newAPIFixtureOn is newAPIFixture with the mesh that mesh returns.
func newAPIFixtureOn(tb testing.TB, mesh func(*crdt.Store) Mesh) *apiFixture {
	tb.Helper()
	fx := &apiFixture{pkiDir: newPKI(tb)}
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { oidc.Close() })
	fx.oidc = oidc
	cfg := baseConfig(tb, fx.pkiDir, "c1")
	cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: oidc.URL(), Audience: "certmesh"}}
	c, err := Open(cfg, Options{Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(mesh(c.Store())); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	if v, ok := c.tokens.Load().v.(*auth.Verifier); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.WaitReady(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	fx.c, fx.h = c, c.apiHandler()
	admin, err := tls.LoadX509KeyPair(filepath.Join(fx.pkiDir, "admin", pki.CertFile), filepath.Join(fx.pkiDir, "admin", pki.KeyFile))
	if err != nil {
		tb.Fatal(err)
	}
	for _, der := range admin.Certificate {
		fx.admin = append(fx.admin, mustParse(tb, der))
	}
	// A genuine session, logged in through the handler.
	_, csr := newCSR(tb)
	tok, err := oidc.Mint("alice", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"token": tok, "csr": csr})
	rec := fx.serve(routeLogin, body)
	if rec.Code != http.StatusCreated {
		tb.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	var sr api.SessionResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &sr); err != nil {
		tb.Fatal(err)
	}
	for rest := []byte(sr.Certificate); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		fx.sess = append(fx.sess, mustParse(tb, b.Bytes))
	}
	return fx
}

func (fx *apiFixture) serve(route uint8, body []byte) *httptest.ResponseRecorder {
	path, peer := "/v1/sessions", []*x509.Certificate(nil)
	switch route % numRoutes {
	case routeRotate:
		path, peer = "/v1/sessions/current/certificates", fx.sess
	case routeRevoke:
		path, peer = "/v1/revocations", fx.admin
	case routeRevokeNotAdmin:
		path, peer = "/v1/revocations", fx.sess
	}
	req := httptest.NewRequest(http.MethodPost, "https://controller"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, PeerCertificates: peer}
	rec := httptest.NewRecorder()
	fx.h.ServeHTTP(rec, req)
	return rec
}

// check sends body to route and checks the answer's form.
func (fx *apiFixture) check(t *testing.T, route uint8, body []byte) {
	rec := fx.serve(route, body)
	switch rec.Code {
	case http.StatusCreated, http.StatusAccepted:
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("route %d: %d with a body that is not JSON: %q", route%numRoutes, rec.Code, rec.Body)
		}
		return
	case http.StatusInternalServerError:
		t.Fatalf("route %d: 500 for body %q: %s", route%numRoutes, body, rec.Body)
	}
	if rec.Code < 400 || rec.Code > 599 {
		t.Fatalf("route %d: unexpected status %d: %s", route%numRoutes, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("route %d: error %d with content type %q", route%numRoutes, rec.Code, ct)
	}
	var eb api.ErrorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("route %d: error %d whose body is not an api.ErrorBody: %v", route%numRoutes, rec.Code, err)
	}
	if !apiCodes[eb.Code] || eb.Error == "" {
		t.Fatalf("route %d: error %d with code %q (%q), not one of the API's", route%numRoutes, rec.Code, eb.Code, eb.Error)
	}
}
