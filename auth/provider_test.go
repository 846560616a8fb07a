package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/internal/testutil"
)

// corpJWKS is the config of JWT signer corp, whose keys srv serves.
func corpJWKS(srv *jwksServer) auth.Config {
	return auth.Config{JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", JWKSURL: srv.URL}}}
}

// corpToken is a token of signer corp for subject x, valid an hour from now.
func corpToken(t *testing.T, key *ecdsa.PrivateKey, kid string, now time.Time) string {
	return signer{key, jwt.SigningMethodES256, kid}.sign(t, jwt.MapClaims{"iss": "corp-signer", "aud": "certmesh", "sub": "x", "exp": now.Add(time.Hour).Unix()})
}

// A token naming a key the verifier lacks, while the provider is down, is
// 503 every time: never 401 in between because an earlier fetch once
// succeeded and the refetch window is still open. A client takes 401 as
// final.
func TestUnknownKeyWhileProviderIsDownIsAlways503(t *testing.T) {
	c := newClock()
	srv := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add("k1", k1)
	opts := testOptions(c)
	opts.JWKSRefreshInterval = 10 * time.Second
	v := newVerifier(t, corpJWKS(srv), opts)
	if _, err := v.Verify(context.Background(), corpToken(t, k1, "k1", c.Now())); err != nil {
		t.Fatal(err)
	}

	srv.down.Store(true)
	srv.add("k2", k2)
	fresh := corpToken(t, k2, "k2", c.Now())
	// The first try fetches (past the window) and fails; the next ones
	// fall inside the window of that failed fetch, then past it again.
	for i, advance := range []time.Duration{10 * time.Second, 0, time.Second, 5 * time.Second, 10 * time.Second, 0} {
		c.Add(advance)
		if _, err := v.Verify(context.Background(), fresh); codeOf(t, err) != auth.CodeIssuerUnavailable {
			t.Errorf("attempt %d at t0+%v, provider down: %v, want issuer_unavailable every time", i, c.Now().Sub(t0), err)
		}
	}
	srv.down.Store(false)
	c.Add(10 * time.Second)
	if _, err := v.Verify(context.Background(), fresh); err != nil {
		t.Errorf("provider back: %v", err)
	}
}

// A key the provider withdrew is refused once the cached set is older than
// its max-age (clamped to [KeyRefreshMin, KeyRefreshMax]), without a token
// naming an unknown key to trigger a fetch, and with no sleep: the
// verifier's clock is the test's.
func TestWithdrawnKeyIsRefusedWithinTheRefreshBound(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cacheControl string
		bound        time.Duration // refused after this, trusted before
	}{
		{"max-age honoured", "public, max-age=300", 5 * time.Minute},
		{"no max-age: the upper bound", "", auth.DefaultKeyRefreshMax},
		{"max-age too long: the upper bound", "max-age=86400", auth.DefaultKeyRefreshMax},
		{"max-age too short: the lower bound", "max-age=2", auth.DefaultKeyRefreshMin},
		{"no-store: the lower bound", "no-store", auth.DefaultKeyRefreshMin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			srv := newJWKSServer(t)
			srv.setCacheControl(tc.cacheControl)
			k0, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			srv.add("k0", k0) // stays: a set with no key is a failed fetch
			srv.add("k1", k1)
			v := newVerifier(t, corpJWKS(srv), testOptions(c))
			tok := func() string {
				return corpToken(t, k1, "k1", c.Now())
			}
			if _, err := v.Verify(context.Background(), tok()); err != nil {
				t.Fatal(err)
			}
			srv.withdraw("k1")
			c.Add(tc.bound - time.Second)
			if _, err := v.Verify(context.Background(), tok()); err != nil {
				t.Errorf("withdrawn key before the bound (%v): %v; the cached set is still fresh", tc.bound, err)
			}
			c.Add(time.Second)
			if _, err := v.Verify(context.Background(), tok()); codeOf(t, err) != auth.CodeTokenInvalid {
				t.Errorf("withdrawn key at the bound (%v): %v, want token_invalid", tc.bound, err)
			}
		})
	}
}

// A failed periodic refresh keeps the cached keys (the provider's outage
// does not refuse what it signed) and shows in Health.
func TestFailedRefreshKeepsCachedKeysAndShowsInHealth(t *testing.T) {
	c := newClock()
	srv := newJWKSServer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add("k1", k1)
	v := newVerifier(t, corpJWKS(srv), testOptions(c))
	if h := v.Health()[0]; h.State != auth.StateDiscovering {
		t.Errorf("before first use: state %q, want %q", h.State, auth.StateDiscovering)
	}
	tok := func() string {
		return corpToken(t, k1, "k1", c.Now())
	}
	if _, err := v.Verify(context.Background(), tok()); err != nil {
		t.Fatal(err)
	}
	h := v.Health()[0]
	if h.State != auth.StateReady || h.Keys != 1 || !h.LastKeyRefresh.Equal(t0) || h.LastError != "" {
		t.Errorf("after a fetch: %+v, want ready, 1 key, refreshed at t0", h)
	}
	srv.down.Store(true)
	c.Add(auth.DefaultKeyRefreshMax)
	if _, err := v.Verify(context.Background(), tok()); err != nil {
		t.Errorf("stale set, provider down: %v, want the cached key to be trusted", err)
	}
	h = v.Health()[0]
	if h.State != auth.StateDegraded || !strings.Contains(h.LastError, "502") || !h.LastKeyRefresh.Equal(t0) {
		t.Errorf("after a failed refresh: %+v, want degraded with the 502, last refresh t0", h)
	}
}

// An issuer whose discovery document names another issuer string (here a
// trailing slash) is misconfigured: the error names both strings, the
// state says so, and it is not counted as merely unreachable.
func TestIssuerMismatchIsDetectedAtDiscovery(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	configured := iss.URL() + "/"
	v := newVerifier(t, oidcConfig(configured), testOptions(c))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitAttempted(ctx); err != nil {
		t.Fatal(err)
	}
	err := v.Misconfigured()
	if err == nil {
		t.Fatal("Misconfigured() = nil for an issuer mismatch")
	}
	for _, want := range []string{`"` + configured + `"`, `"` + iss.URL() + `"`, "trailing slash"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if h := v.Health()[0]; h.State != auth.StateMisconfigured || h.Discovered {
		t.Errorf("health %+v, want misconfigured, not discovered", h)
	}
	// A token with the configured iss gets the reason, not "cannot be reached".
	tok := mustMint(t)(iss.MintClaims(map[string]any{"iss": configured, "aud": "certmesh", "sub": "a", "exp": t0.Add(time.Hour).Unix()}))
	_, verr := v.Verify(context.Background(), tok)
	if codeOf(t, verr) != auth.CodeIssuerUnavailable || !strings.Contains(verr.Error(), "misconfigured") {
		t.Errorf("token of a misconfigured issuer: %v, want issuer_unavailable saying misconfigured", verr)
	}
}

// An issuer behind a private CA: without ca_file the error says that TLS
// verification failed (not that it cannot be reached); with ca_file its
// tokens verify, with the system roots left alone.
func TestPrivateCAIssuerWithCAFile(t *testing.T) {
	c := newClock()
	var iss atomic.Pointer[devoidc.Issuer]
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.Load().ServeHTTP(w, r) }))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	i, err := devoidc.New(devoidc.Config{Issuer: ts.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	iss.Store(i)
	tok := mustMint(t)(i.Mint("alice", time.Hour))

	opts := testOptions(c)
	opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	v := newVerifier(t, oidcConfig(ts.URL), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.WaitAttempted(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	if codeOf(t, err) != auth.CodeIssuerUnavailable || !strings.Contains(err.Error(), "TLS verification") || strings.Contains(err.Error(), "cannot be reached") {
		t.Errorf("untrusted CA: %v, want issuer_unavailable saying TLS verification failed", err)
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := oidcConfig(ts.URL)
	cfg.OIDC[0].CAFile = caFile
	v = newVerifier(t, cfg, opts)
	waitReady(t, v)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("with ca_file: %v", err)
	}

	cfg.OIDC[0].CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := auth.New(context.Background(), cfg, opts); err == nil || !strings.Contains(err.Error(), "auth.oidc[0]: ca_file") {
		t.Errorf("missing ca_file: New error %v, want one naming auth.oidc[0]: ca_file", err)
	}
}

// Tokens that are not ID tokens, and ID tokens without the identity claim,
// get a message that says so.
func TestWrongKindOfTokenIsNamed(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)
	exp := t0.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name, token, want string
	}{
		{"opaque access token", "ya29.a0AfH6SMBx3opaque", "opaque OAuth access token"},
		{"Cognito access token", mustMint(t)(iss.MintClaims(map[string]any{"iss": iss.URL(), "aud": "certmesh", "sub": "a", "exp": exp, "token_use": "access"})), "access token (token_use access)"},
		{"Keycloak access token", mustMint(t)(iss.MintClaims(map[string]any{"iss": iss.URL(), "aud": "certmesh", "sub": "a", "exp": exp, "typ": "Bearer", "scope": "openid"})), "not an OpenID Connect ID token"},
		{"access token for an API (Azure, Okta, Auth0)", mustMint(t)(iss.MintClaims(map[string]any{"iss": iss.URL(), "aud": "api://orders", "sub": "a", "exp": exp, "scp": "orders.read"})), "looks like an OAuth access token"},
		{"no sub", mustMint(t)(iss.MintClaims(map[string]any{"iss": iss.URL(), "aud": "certmesh", "exp": exp, "email": "a@x"})), `the ID token has no claim "sub" (identity_claim); it has aud, email, exp, iss`},
	} {
		_, err := v.Verify(context.Background(), tc.token)
		if code := codeOf(t, err); (code != auth.CodeTokenInvalid && code != auth.CodeAudienceMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want token_invalid saying %q", tc.name, err, tc.want)
		}
	}

	cfg := oidcConfig(iss.URL())
	cfg.OIDC[0].IdentityClaim = "email"
	v = newVerifier(t, cfg, testOptions(c))
	waitReady(t, v)
	_, err := v.Verify(context.Background(), mustMint(t)(iss.Mint("alice", time.Hour)))
	if codeOf(t, err) != auth.CodeTokenInvalid || !strings.Contains(err.Error(), `no claim "email"`) || !strings.Contains(err.Error(), "scope such as email") {
		t.Errorf("identity_claim email missing: %v", err)
	}
}

// A controller that sees no logins still refreshes its key sets when they go
// stale: its health stays current and withdrawn keys leave the cache.
func TestKeySetsAreRefreshedWithoutLogins(t *testing.T) {
	srv := newJWKSServer(t)
	k0, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add("k0", k0)
	srv.add("k1", k1)
	v := newVerifier(t, corpJWKS(srv), auth.Options{KeyRefreshMin: 20 * time.Millisecond, KeyRefreshMax: 20 * time.Millisecond})
	tok := corpToken(t, k1, "k1", time.Now())
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	srv.withdraw("k1")
	testutil.Eventually(t, 10*time.Second, "the withdrawn key to leave the cache with no login", func() bool { return v.Health()[0].Keys == 1 })
}

// A token signed by a key the provider does not publish (withdrawn, or
// another deployment's) is refused with a message that names the key, which
// the client sees: "token signature or format is invalid" left the operator
// to decode the token to find out which key it was.
func TestUnknownKeyIsNamed(t *testing.T) {
	c := newClock()
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	iss := startIssuer(t, c)
	v := newVerifier(t, oidcConfig(iss.URL()), testOptions(c))
	waitReady(t, v)
	oidcToken := signES256(t, stranger, "rotated-out-1", jwt.MapClaims{"iss": iss.URL(), "aud": "certmesh", "sub": "a", "exp": t0.Add(time.Hour).Unix()})
	checkUnknownKey(t, v, oidcToken, `no key of issuer `+iss.URL()+` fits the token (kid "rotated-out-1", alg ES256)`)

	srv := newJWKSServer(t)
	k0, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add("k0", k0)
	v = newVerifier(t, corpJWKS(srv), testOptions(c))
	checkUnknownKey(t, v, corpToken(t, stranger, "k9", c.Now()), `no key of JWT signer corp fits the token (kid "k9", alg ES256)`)
	long := strings.Repeat("x", 200) + "\n"
	checkUnknownKey(t, v, corpToken(t, stranger, long, c.Now()), `(kid "`+strings.Repeat("x", 64)+`...", alg ES256)`)

	// A known kid with a signature that does not verify is not an unknown key.
	_, err := v.Verify(context.Background(), corpToken(t, stranger, "k0", c.Now()))
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Code != auth.CodeTokenInvalid || strings.Contains(ae.Msg, "fits the token") {
		t.Errorf("stranger's key under a published kid: %v, want token_invalid without an unknown-key message", err)
	}
}

func checkUnknownKey(t *testing.T, v *auth.Verifier, token, want string) {
	t.Helper()
	_, err := v.Verify(context.Background(), token)
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Code != auth.CodeTokenInvalid || !strings.Contains(ae.Msg, want) {
		t.Errorf("token of an unpublished key: %v, want token_invalid whose message says %q", err, want)
	}
}
