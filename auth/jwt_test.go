package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/pki"
)

// signer is a test JWT signer key.
type signer struct {
	key crypto.Signer
	alg jwt.SigningMethod
	kid string
}

func (s signer) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.alg, claims)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	out, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pemPublicKey(t *testing.T, pub crypto.PublicKey, headers map[string]string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: headers, Bytes: der})
}

func TestJWTSignerWithPEMKeys(t *testing.T) {
	c := newClock()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	strangerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	keysFile := filepath.Join(t.TempDir(), "corp.pem")
	var pems []byte
	pems = append(pems, pemPublicKey(t, ecKey.Public(), map[string]string{"kid": "ec-1"})...)
	pems = append(pems, pemPublicKey(t, rsaKey.Public(), nil)...)
	pems = append(pems, pemPublicKey(t, edKey.Public(), nil)...)
	if err := os.WriteFile(keysFile, pems, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", KeysFile: keysFile}}}
	v := newVerifier(t, cfg, testOptions(c))

	now := c.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"iss": "corp-signer", "aud": "certmesh", "sub": "svc-build", "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(m)
		}
		return m
	}
	ec := signer{ecKey, jwt.SigningMethodES256, "ec-1"}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hsToken, err := hs.SignedString(pems) // the classic: public key file as HMAC secret
	if err != nil {
		t.Fatal(err)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// An RSA signature presented as ES256 must not be checked with the RSA
	// key, and vice versa.
	rsaAsES := swapAlg(t, signer{rsaKey, jwt.SigningMethodRS256, ""}.sign(t, claims(nil)), "ES256")

	tests := []struct {
		name  string
		token string
		want  auth.Code
	}{
		{"ES256 with kid", ec.sign(t, claims(nil)), ""},
		{"ES256 without kid", signer{ecKey, jwt.SigningMethodES256, ""}.sign(t, claims(nil)), ""},
		{"RS256", signer{rsaKey, jwt.SigningMethodRS256, ""}.sign(t, claims(nil)), ""},
		{"PS384", signer{rsaKey, jwt.SigningMethodPS384, "anything"}.sign(t, claims(nil)), ""},
		{"EdDSA", signer{edKey, jwt.SigningMethodEdDSA, ""}.sign(t, claims(nil)), ""},
		{"ES256 under an unknown kid", signer{ecKey, jwt.SigningMethodES256, "ec-2"}.sign(t, claims(nil)), auth.CodeTokenInvalid},
		{"P-256 signature labelled ES384", swapAlg(t, ec.sign(t, claims(nil)), "ES384"), auth.CodeTokenInvalid},
		{"RSA signature labelled ES256", rsaAsES, auth.CodeTokenInvalid},
		{"stranger's key under a known kid", signer{strangerKey, jwt.SigningMethodES256, "ec-1"}.sign(t, claims(nil)), auth.CodeTokenInvalid},
		{"HS256 keyed with the PEM file", hsToken, auth.CodeTokenInvalid},
		{"alg none", none, auth.CodeTokenInvalid},
		{"expired", ec.sign(t, claims(func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Hour).Unix() })), auth.CodeTokenExpired},
		{"not yet valid", ec.sign(t, claims(func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Hour).Unix() })), auth.CodeTokenNotYetValid},
		{"wrong audience", ec.sign(t, claims(func(m jwt.MapClaims) { m["aud"] = []string{"a", "b"} })), auth.CodeAudienceMismatch},
		{"no exp", ec.sign(t, claims(func(m jwt.MapClaims) { delete(m, "exp") })), auth.CodeTokenInvalid},
		{"other issuer", ec.sign(t, claims(func(m jwt.MapClaims) { m["iss"] = "corp-signer-2" })), auth.CodeIssuerUnknown},
		{"sub too long for a certificate", ec.sign(t, claims(func(m jwt.MapClaims) { m["sub"] = strings.Repeat("x", pki.MaxIdentityLen+1) })), auth.CodeTokenInvalid},
		{"sub empty", ec.sign(t, claims(func(m jwt.MapClaims) { m["sub"] = "" })), auth.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tt.want, err)
			}
			if tt.want == "" && (id.Subject != "svc-build" || id.Method != "jwt:corp" || id.Issuer != "corp-signer") {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

// swapAlg rewrites the alg of token's header, keeping payload and signature.
func swapAlg(t *testing.T, token, alg string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	hdr, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(hdr) + "." + parts[1] + "." + parts[2]
}

// jwksServer serves a mutable JWKS and counts its requests.
type jwksServer struct {
	*httptest.Server
	mu           sync.Mutex
	keys         []map[string]string
	cacheControl string // guarded by mu; the answer's Cache-Control
	down         atomic.Bool
	calls        atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(kid string, key *ecdsa.PrivateKey) {
	pt, _ := key.PublicKey.Bytes()
	s.mu.Lock()
	s.keys = append(s.keys, map[string]string{
		"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pt[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(pt[33:]),
	})
	s.mu.Unlock()
}

// withdraw stops publishing key kid.
func (s *jwksServer) withdraw(kid string) {
	s.mu.Lock()
	s.keys = slices.DeleteFunc(s.keys, func(k map[string]string) bool { return k["kid"] == kid })
	s.mu.Unlock()
}

func (s *jwksServer) setCacheControl(v string) {
	s.mu.Lock()
	s.cacheControl = v
	s.mu.Unlock()
}

func (s *jwksServer) addRSA(kid string, key *rsa.PublicKey, alg string) {
	s.mu.Lock()
	s.keys = append(s.keys, map[string]string{
		"kty": "RSA", "kid": kid, "alg": alg,
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	})
	s.mu.Unlock()
}

func TestJWTSignerWithJWKSURL(t *testing.T) {
	c := newClock()
	srv := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k3, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.add("k1", k1)
	srv.addRSA("r1", &rsaKey.PublicKey, "RS256")
	// Keys that must be skipped without disabling the set.
	srv.mu.Lock()
	srv.keys = append(srv.keys,
		map[string]string{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
		map[string]string{"kty": "EC", "crv": "P-256", "kid": "bad", "x": "AA", "y": "AA"},
		map[string]string{"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
	)
	srv.mu.Unlock()

	cfg := auth.Config{JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", JWKSURL: srv.URL, IdentityClaim: "email"}}}
	v := newVerifier(t, cfg, testOptions(c))
	claims := jwt.MapClaims{"iss": "corp-signer", "aud": "certmesh", "email": "ci@corp", "exp": c.Now().Add(time.Hour).Unix()}
	sign := func(s signer) func() string { return func() string { return s.sign(t, claims) } }
	hmacUnderSymmetricKid := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		tok.Header["kid"] = "sym"
		raw, err := tok.SignedString([]byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	// Steps run in order against one verifier: its cache carries over.
	steps := []struct {
		name   string
		before func()
		token  func() string
		want   auth.Code
	}{
		{"first key", nil, sign(signer{k1, jwt.SigningMethodES256, "k1"}), ""},
		{"RSA key pinned to RS256", nil, sign(signer{rsaKey, jwt.SigningMethodRS256, "r1"}), ""},
		{"RSA key with PS256", nil, sign(signer{rsaKey, jwt.SigningMethodPS256, "r1"}), auth.CodeTokenInvalid},
		{"HS256 under the symmetric kid", nil, hmacUnderSymmetricKid, auth.CodeTokenInvalid},
		{"kid not published", nil, sign(signer{k2, jwt.SigningMethodES256, "k2"}), auth.CodeTokenInvalid},
		{"kid published later", func() { srv.add("k2", k2) }, sign(signer{k2, jwt.SigningMethodES256, "k2"}), ""},
		{"cached kid while the JWKS is down", func() { srv.down.Store(true) }, sign(signer{k1, jwt.SigningMethodES256, "k1"}), ""},
		{"new kid while the JWKS is down", func() { srv.add("k3", k3) }, sign(signer{k3, jwt.SigningMethodES256, "k3"}), auth.CodeIssuerUnavailable},
		{"new kid once the JWKS is back", func() { srv.down.Store(false) }, sign(signer{k3, jwt.SigningMethodES256, "k3"}), ""},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		id, err := v.Verify(context.Background(), s.token())
		if got := codeOf(t, err); got != s.want {
			t.Errorf("%s: code %q, want %q (err: %v)", s.name, got, s.want, err)
		}
		if s.want == "" && id.Subject != "ci@corp" {
			t.Errorf("%s: subject %q, want ci@corp", s.name, id.Subject)
		}
	}
}

func TestJWKSFetchesAreRateLimited(t *testing.T) {
	c := newClock()
	srv := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add("k1", k1)
	cfg := auth.Config{JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", JWKSURL: srv.URL}}}
	opts := testOptions(c)
	opts.JWKSRefreshInterval = 10 * time.Second
	v := newVerifier(t, cfg, opts)
	claims := jwt.MapClaims{"iss": "corp-signer", "aud": "certmesh", "sub": "x", "exp": c.Now().Add(time.Hour).Unix()}

	if _, err := v.Verify(context.Background(), signer{k1, jwt.SigningMethodES256, "k1"}.sign(t, claims)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		tok := signer{k1, jwt.SigningMethodES256, "made-up-" + string(rune('a'+i))}.sign(t, claims)
		if _, err := v.Verify(context.Background(), tok); codeOf(t, err) != auth.CodeTokenInvalid {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if got := srv.calls.Load(); got != 1 {
		t.Errorf("20 made-up kids within the refresh interval caused %d fetches, want 1 in all", got)
	}
	c.Add(11 * time.Second)
	tok := signer{k1, jwt.SigningMethodES256, "made-up-later"}.sign(t, claims)
	v.Verify(context.Background(), tok)
	if got := srv.calls.Load(); got != 2 {
		t.Errorf("after the interval: %d fetches, want 2", got)
	}
}

func TestConfigValidation(t *testing.T) {
	keysFile := filepath.Join(t.TempDir(), "k.pem")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := os.WriteFile(keysFile, pemPublicKey(t, key.Public(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallFile := filepath.Join(t.TempDir(), "small.pem")
	if err := os.WriteFile(smallFile, pemPublicKey(t, smallRSA.Public(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	oidcOK := auth.OIDCConfig{Issuer: "https://idp.example.com", Audience: "certmesh"}
	jwtOK := auth.JWTConfig{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", KeysFile: keysFile}
	tests := []struct {
		name    string
		cfg     auth.Config
		wantErr string
	}{
		{"empty is valid", auth.Config{}, ""},
		{"both kinds", auth.Config{OIDC: []auth.OIDCConfig{oidcOK}, JWT: []auth.JWTConfig{jwtOK}}, ""},
		{"oidc issuer missing", auth.Config{OIDC: []auth.OIDCConfig{{Audience: "a"}}}, "auth.oidc[0].issuer"},
		{"oidc issuer not a URL", auth.Config{OIDC: []auth.OIDCConfig{{Issuer: "idp", Audience: "a"}}}, "auth.oidc[0].issuer"},
		{"oidc audience missing", auth.Config{OIDC: []auth.OIDCConfig{oidcOK, {Issuer: "http://x"}}}, "auth.oidc[1].audience"},
		{"issuer twice", auth.Config{OIDC: []auth.OIDCConfig{oidcOK}, JWT: []auth.JWTConfig{{Name: "n", Issuer: oidcOK.Issuer, Audience: "a", KeysFile: keysFile}}}, "auth.jwt[0].issuer"},
		{"jwt name missing", auth.Config{JWT: []auth.JWTConfig{{Issuer: "i", Audience: "a", KeysFile: keysFile}}}, "auth.jwt[0].name"},
		{"jwt name twice", auth.Config{JWT: []auth.JWTConfig{jwtOK, {Name: "corp", Issuer: "j", Audience: "a", KeysFile: keysFile}}}, "auth.jwt[1].name"},
		{"jwt both key sources", auth.Config{JWT: []auth.JWTConfig{{Name: "n", Issuer: "i", Audience: "a", KeysFile: keysFile, JWKSURL: "https://x/keys"}}}, "exactly one of keys_file and jwks_url"},
		{"jwt no key source", auth.Config{JWT: []auth.JWTConfig{{Name: "n", Issuer: "i", Audience: "a"}}}, "exactly one of keys_file and jwks_url"},
		{"jwt keys file missing", auth.Config{JWT: []auth.JWTConfig{{Name: "n", Issuer: "i", Audience: "a", KeysFile: keysFile + ".nope"}}}, "k.pem.nope"},
		{"jwt RSA key too small", auth.Config{JWT: []auth.JWTConfig{{Name: "n", Issuer: "i", Audience: "a", KeysFile: smallFile}}}, "too small"},
		// Identity namespaces: no two entries share one by accident.
		{"two oidc issuers on one host", auth.Config{OIDC: []auth.OIDCConfig{
			{Issuer: "https://kc.example.com/realms/a", Audience: "a"}, {Issuer: "https://kc.example.com/realms/b", Audience: "a"}}},
			"auth.oidc[1]: its identities would be those of auth.oidc[0]"},
		{"two oidc issuers on one host, named", auth.Config{OIDC: []auth.OIDCConfig{
			{Name: "realm-a", Issuer: "https://kc.example.com/realms/a", Audience: "a"}, {Name: "realm-b", Issuer: "https://kc.example.com/realms/b", Audience: "a"}}}, ""},
		{"oidc named like a jwt signer", auth.Config{OIDC: []auth.OIDCConfig{{Name: "corp", Issuer: "https://idp.example.com", Audience: "a"}}, JWT: []auth.JWTConfig{jwtOK}},
			"auth.jwt[0]: its identities would be those of auth.oidc[0]"},
		{"mapped together on purpose", auth.Config{OIDC: []auth.OIDCConfig{{Issuer: "https://idp.example.com", Audience: "a", IdentityNamespace: "staff"}},
			JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", KeysFile: keysFile, IdentityNamespace: "staff"}}}, ""},
		{"mapped on one side only", auth.Config{OIDC: []auth.OIDCConfig{{Issuer: "https://idp.example.com", Audience: "a", IdentityNamespace: "corp"}}, JWT: []auth.JWTConfig{jwtOK}},
			"auth.jwt[0]: its identities would be those of auth.oidc[0]"},
		{"namespace with a colon", auth.Config{OIDC: []auth.OIDCConfig{{Issuer: "https://idp.example.com", Audience: "a", IdentityNamespace: "a:b"}}},
			"auth.oidc[0].identity_namespace"},
		{"jwt name that cannot be a namespace", auth.Config{OIDC: []auth.OIDCConfig{oidcOK}, JWT: []auth.JWTConfig{{Name: "corp signer", Issuer: "j", Audience: "a", KeysFile: keysFile}}},
			"auth.jwt[0].name"},
		{"jwt name that cannot be a namespace, alone", auth.Config{JWT: []auth.JWTConfig{{Name: "corp signer", Issuer: "j", Audience: "a", KeysFile: keysFile}}}, ""},
		{"oidc on an IPv6 host with another entry", auth.Config{OIDC: []auth.OIDCConfig{{Issuer: "https://[::1]:5556", Audience: "a"}}, JWT: []auth.JWTConfig{jwtOK}},
			"auth.oidc[0].issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := auth.New(ctx, tt.cfg, auth.Options{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
			}
			if verr := tt.cfg.Validate(); verr != nil {
				var ce *auth.ConfigError
				if !errors.As(verr, &ce) || !strings.HasPrefix(ce.Field, "auth.") {
					t.Errorf("Validate error %v is not a *ConfigError with a field path", verr)
				}
			}
		})
	}
}
