package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
)

// t0 is the time on every test clock when it starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock shared by issuers and verifiers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startIssuer serves a development OIDC issuer on 127.0.0.1.
func startIssuer(t *testing.T, c *clock) *devoidc.Server {
	t.Helper()
	srv, err := devoidc.Start("127.0.0.1:0", devoidc.Config{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func testOptions(c *clock) auth.Options {
	return auth.Options{
		Now:                 c.Now,
		DiscoveryBackoffMin: 5 * time.Millisecond,
		DiscoveryBackoffMax: 50 * time.Millisecond,
		JWKSRefreshInterval: -1,
	}
}

// newVerifier builds a verifier whose background work ends with the test.
func newVerifier(t *testing.T, cfg auth.Config, opts auth.Options) *auth.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.New(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

func waitReady(t *testing.T, v *auth.Verifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func oidcConfig(issuers ...string) auth.Config {
	var cfg auth.Config
	for _, iss := range issuers {
		cfg.OIDC = append(cfg.OIDC, auth.OIDCConfig{Issuer: iss, Audience: "certmesh"})
	}
	return cfg
}

// codeOf returns the auth code of err, or "" for nil, failing the test for
// any error that is not an *auth.Error.
func codeOf(t *testing.T, err error) auth.Code {
	t.Helper()
	if err == nil {
		return ""
	}
	var ae *auth.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *auth.Error", err, err)
	}
	return ae.Code
}

// mustMint returns a function that fails t on a minting error, for
// mustMint(t)(iss.Mint(...)).
func mustMint(t *testing.T) func(string, error) string {
	return func(tok string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// signES256 signs claims with key under kid, as an attacker would.
func signES256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func TestOIDCTokensAreAcceptedOrRefusedWithTheirCode(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	stranger := startIssuer(t, c)
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)

	now := c.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"iss": iss.URL(), "aud": "certmesh", "sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(m)
		}
		return m
	}
	mint := func(edit func(jwt.MapClaims)) string {
		return mustMint(t)(iss.MintClaims(claims(edit)))
	}
	good := mustMint(t)(iss.Mint("alice", time.Hour))
	kid := kidOf(t, good)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := get(t, iss.URL()+"/keys")

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hsTok.Header["kid"] = kid
	hs256, err := hsTok.SignedString(jwks) // the published key as an HMAC secret
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		want  auth.Code
	}{
		{"valid", good, ""},
		{"valid, expired within the leeway", mint(func(m jwt.MapClaims) { m["exp"] = now.Add(-20 * time.Second).Unix() }), ""},
		{"valid, audience among several", mint(func(m jwt.MapClaims) { m["aud"] = []string{"other", "certmesh"} }), ""},
		{"valid, nbf within the leeway", mint(func(m jwt.MapClaims) { m["nbf"] = now.Add(20 * time.Second).Unix() }), ""},
		{"expired", mint(func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Minute).Unix() }), auth.CodeTokenExpired},
		{"not yet valid", mint(func(m jwt.MapClaims) { m["nbf"] = now.Add(5 * time.Minute).Unix() }), auth.CodeTokenNotYetValid},
		{"wrong audience", mint(func(m jwt.MapClaims) { m["aud"] = "someone-else" }), auth.CodeAudienceMismatch},
		{"no audience", mint(func(m jwt.MapClaims) { delete(m, "aud") }), auth.CodeAudienceMismatch},
		{"no exp", mint(func(m jwt.MapClaims) { delete(m, "exp") }), auth.CodeTokenInvalid},
		{"exp not a number", mint(func(m jwt.MapClaims) { m["exp"] = "tomorrow" }), auth.CodeTokenInvalid},
		{"no sub", mint(func(m jwt.MapClaims) { delete(m, "sub") }), auth.CodeTokenInvalid},
		{"sub not a string", mint(func(m jwt.MapClaims) { m["sub"] = 42 }), auth.CodeTokenInvalid},
		{"unknown issuer", mustMint(t)(stranger.Mint("alice", time.Hour)), auth.CodeIssuerUnknown},
		{"no issuer", mint(func(m jwt.MapClaims) { delete(m, "iss") }), auth.CodeIssuerUnknown},
		{"unknown kid", signES256(t, otherKey, "no-such-kid", claims(nil)), auth.CodeTokenInvalid},
		{"another key under the issuer's kid", signES256(t, otherKey, kid, claims(nil)), auth.CodeTokenInvalid},
		{"another key, no kid", signES256(t, otherKey, "", claims(nil)), auth.CodeTokenInvalid},
		{"alg none", none, auth.CodeTokenInvalid},
		{"HS256 keyed with the public JWKS", hs256, auth.CodeTokenInvalid},
		{"payload swapped under a valid signature", swapPayload(t, good, claims(func(m jwt.MapClaims) { m["sub"] = "mallory" })), auth.CodeTokenInvalid},
		{"garbage", "garbage", auth.CodeTokenInvalid},
		{"three garbage segments", "a.b.c", auth.CodeTokenInvalid},
		{"empty", "", auth.CodeTokenInvalid},
		{"huge", strings.Repeat("a", auth.MaxTokenBytes+1), auth.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err: %v)", got, tt.want, err)
			}
			if tt.want != "" {
				return
			}
			if id.Subject != "alice" || id.Issuer != iss.URL() || id.Method != "oidc" || id.Expiry.IsZero() {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

// swapPayload puts claims in place of token's payload, keeping its header and
// signature.
func swapPayload(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	forged, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOIDCIdentity(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	cfg := oidcConfig(iss.URL())
	cfg.OIDC[0].IdentityClaim = "email"
	v := newVerifier(t, cfg, testOptions(c))
	waitReady(t, v)

	tok := mustMint(t)(iss.MintClaims(map[string]any{
		"iss": iss.URL(), "aud": "certmesh", "sub": "0042", "email": "a/b c%@example.com",
		"exp": c.Now().Add(time.Hour).Unix(),
	}))
	got, err := v.Verify(context.Background(), tok+"\n")
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Identity{ID: "a/b c%@example.com", Subject: "a/b c%@example.com", Issuer: iss.URL(), Method: "oidc", Expiry: c.Now().Add(time.Hour)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
}

func TestOIDCKeyRotationIsPickedUpWithoutRestart(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)

	before := mustMint(t)(iss.Mint("alice", time.Hour))
	if _, err := v.Verify(context.Background(), before); err != nil {
		t.Fatalf("token of the first key: %v", err)
	}
	newKid, err := iss.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	after := mustMint(t)(iss.Mint("bob", time.Hour))
	if kidOf(t, after) != newKid || kidOf(t, before) == newKid {
		t.Fatal("rotation did not change the kid")
	}
	for name, tok := range map[string]string{"new kid": after, "old kid": before} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s after rotation: %v", name, err)
		}
	}
}

// reservePort returns a loopback address with nothing listening on it.
func reservePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOIDCIssuerDownAtStartIsRetriedInTheBackground(t *testing.T) {
	c := newClock()
	addr := reservePort(t)
	iss, err := devoidc.New(devoidc.Config{Issuer: "http://" + addr, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c)) // must not fail
	tok := mustMint(t)(iss.Mint("alice", time.Hour))

	if _, err := v.Verify(context.Background(), tok); codeOf(t, err) != auth.CodeIssuerUnavailable {
		t.Fatalf("issuer down: err = %v, want issuer_unavailable", err)
	}
	if got := auth.CodeIssuerUnavailable.HTTPStatus(); got != http.StatusServiceUnavailable {
		t.Errorf("issuer_unavailable maps to HTTP %d, want 503", got)
	}

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on the reserved address again: %v", err)
	}
	srv := &http.Server{Handler: iss}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			break
		}
		if code := codeOf(t, err); code != auth.CodeIssuerUnavailable {
			t.Fatalf("while the issuer comes up: err = %v, want issuer_unavailable or success", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still refused 10s after the issuer came up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOIDCIssuerDownAfterDiscovery: cached keys keep working; a token naming
// a key that is not cached cannot be checked, which is issuer_unavailable.
func TestOIDCIssuerDownAfterDiscovery(t *testing.T) {
	c := newClock()
	addr := reservePort(t)
	iss, err := devoidc.New(devoidc.Config{Issuer: "http://" + addr, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)
	cached := mustMint(t)(iss.Mint("alice", time.Hour))
	if _, err := v.Verify(context.Background(), cached); err != nil {
		t.Fatal(err)
	}

	down.Store(true)
	if _, err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	fresh := mustMint(t)(iss.Mint("alice", time.Hour))
	if _, err := v.Verify(context.Background(), cached); err != nil {
		t.Errorf("cached key while the issuer is down: %v", err)
	}
	if _, err := v.Verify(context.Background(), fresh); codeOf(t, err) != auth.CodeIssuerUnavailable {
		t.Errorf("new key while the issuer is down: err = %v, want issuer_unavailable", err)
	}

	down.Store(false)
	if _, err := v.Verify(context.Background(), fresh); err != nil {
		t.Errorf("new key once the issuer is back: %v", err)
	}
}

func TestTimeMovesTokensThroughTheirLifetime(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)
	tok := mustMint(t)(iss.MintClaims(map[string]any{
		"iss": iss.URL(), "aud": "certmesh", "sub": "alice",
		"nbf": t0.Add(time.Minute).Unix(), "exp": t0.Add(10 * time.Minute).Unix(),
	}))
	steps := []struct {
		advance time.Duration
		want    auth.Code
	}{
		{0, auth.CodeTokenNotYetValid},
		{40 * time.Second, ""}, // nbf - 20s: within the 30s leeway
		{5 * time.Minute, ""},
		{4*time.Minute + 25*time.Second, ""}, // exp + 5s
		{30 * time.Second, auth.CodeTokenExpired},
	}
	for _, s := range steps {
		c.Add(s.advance)
		_, err := v.Verify(context.Background(), tok)
		if got := codeOf(t, err); got != s.want {
			t.Errorf("at t0+%v: code %q, want %q (%v)", c.Now().Sub(t0), got, s.want, err)
		}
	}
}
