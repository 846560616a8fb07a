package issuer

// Tests against an OpenID provider that nobody here wrote:
// github.com/oauth2-proxy/mockoidc, a small provider with the
// authorization-code and refresh-token flows, RS256 keys published at its
// jwks_uri, and Cache-Control: no-store on every answer. Its key pair can be
// replaced (a rotation that also withdraws the old key: its JWKS lists the
// current key only). What the controller sees of it goes through its real
// HTTP endpoints.

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/testutil"
)

// realIdP is a mockoidc provider whose state the test changes between
// requests (mu orders those changes with its handlers), and which can be
// taken down (connections dropped).
type realIdP struct {
	m    *mockoidc.MockOIDC
	mu   sync.Mutex
	down atomic.Bool
	conf oauth2.Config
}

func startRealIdP(t *testing.T) *realIdP {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.AccessTTL = time.Hour
	p := &realIdP{m: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p.down.Load() {
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close() // as if the provider were unreachable
						return
					}
				}
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(l, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	p.conf = oauth2.Config{
		ClientID:     m.ClientID,
		ClientSecret: m.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: m.AuthorizationEndpoint(), TokenURL: m.TokenEndpoint(), AuthStyle: oauth2.AuthStyleInParams},
		// Never fetched: the test reads the code from the redirect.
		RedirectURL: "http://127.0.0.1:1/callback",
		Scopes:      []string{"openid", "email"},
	}
	return p
}

// login runs the authorization-code flow for user, as a browser and an
// application would, and returns the provider's token response.
func (p *realIdP) login(t *testing.T, user string) *oauth2.Token {
	t.Helper()
	p.m.QueueUser(&mockoidc.MockUser{Subject: user, Email: user + "@example.com", EmailVerified: true})
	browser := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(p.conf.AuthCodeURL("state-1", oauth2.SetAuthURLParam("nonce", "nonce-1")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "state-1" {
		t.Fatalf("authorize: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	tok, err := p.conf.Exchange(context.Background(), loc.Query().Get("code"))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	return tok
}

// refresh uses the refresh token of tok for a new token response.
func (p *realIdP) refresh(t *testing.T, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	stale := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
	next, err := p.conf.TokenSource(context.Background(), stale).Token()
	if err != nil {
		t.Fatalf("refresh grant: %v", err)
	}
	return next
}

func idToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		t.Fatal("token response without id_token")
	}
	return id
}

// rotate gives the provider a new key pair: tokens are signed with it from
// now on, and its JWKS lists it alone (the old key is withdrawn).
func (p *realIdP) rotate(t *testing.T) {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.m.Keypair = kp
	p.mu.Unlock()
}

func (p *realIdP) fastForward(d time.Duration) {
	p.mu.Lock()
	p.m.FastForward(d)
	p.mu.Unlock()
}

// settableClock is the verifier's clock in these tests.
type settableClock struct {
	mu sync.Mutex
	d  time.Duration // ahead of the wall clock
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *settableClock) Add(d time.Duration) {
	c.mu.Lock()
	c.d += d
	c.mu.Unlock()
}

func TestRealOpenIDProvider(t *testing.T) {
	idp := startRealIdP(t)
	clk := &settableClock{}
	e := newEnvWith(t, newPKI(t), "c1", nil, Options{Auth: auth.Options{Now: clk.Now}}, func(c *config.Controller) {
		c.Auth.OIDC = []auth.OIDCConfig{{Issuer: idp.m.Issuer(), Audience: idp.m.ClientID}}
		c.Session.BindToToken = true
	})
	login := func(id string) (*session, response) {
		t.Helper()
		return e.loginToken(id)
	}

	// Login with the ID token of an authorization-code flow; the session
	// is bound to it.
	first := idp.login(t, "alice")
	s, r := login(idToken(t, first))
	if s == nil || s.Identity != "alice" {
		t.Fatalf("login with the provider's ID token: %d %s", r.status, r.body)
	}
	firstEnd := parseRFC3339(t, s.SessionExpiresAt)

	// The refresh grant gives a fresh ID token, which extends the session
	// (what the SDK's refresh hook does: Client.RefreshToken).
	idp.fastForward(time.Minute)
	clk.Add(time.Minute)
	second := idp.refresh(t, first)
	r = do(t, e.client(s.cert), "POST", e.url+api.PathSessionToken, api.TokenRequest{Token: idToken(t, second)})
	var tr api.TokenResponse
	mustJSON(t, r.body, &tr)
	if r.status != http.StatusOK || tr.SessionID != s.SessionID || !parseRFC3339(t, tr.SessionExpiresAt).After(firstEnd) {
		t.Fatalf("fresh ID token from the refresh grant: %d %s, want the session (%s) extended past %v", r.status, r.body, s.SessionID, firstEnd)
	}

	// Key rotation at the provider withdraws the old key: a token it
	// signed is still accepted while the cached key set is fresh, and
	// refused once it is older than its max-age (no-store: the 1m lower
	// bound), on the verifier's clock, with no sleep.
	oldKey := idToken(t, second)
	idp.rotate(t)
	if _, r := login(oldKey); r.status != http.StatusCreated {
		t.Fatalf("old key right after the rotation: %d %s, want 201 from the fresh cache", r.status, r.body)
	}
	clk.Add(auth.DefaultKeyRefreshMin)
	if _, r := login(oldKey); r.status != http.StatusUnauthorized || r.code() != api.CodeTokenInvalid {
		t.Fatalf("withdrawn key after the refresh bound: %d %s, want 401 token_invalid", r.status, r.body)
	}
	// A token of the new key logs in.
	third := idToken(t, idp.login(t, "bob"))
	if s, r := login(third); s == nil || s.Identity != "bob" {
		t.Fatalf("new key: %d %s", r.status, r.body)
	}

	// Provider outage during a reload: the working verifier stays.
	idp.down.Store(true)
	before := e.c.tokens.Load()
	if err := e.c.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, r := login(third); r.status != http.StatusCreated {
		t.Fatalf("login after a reload during the outage: %d %s", r.status, r.body)
	}
	st := e.c.Status()
	if len(st.Issuers) != 1 || st.Issuers[0].State != auth.StateReady {
		t.Errorf("status during the outage (keys cached, fresh): %+v", st.Issuers)
	}
	idp.down.Store(false)
	testutil.Eventually(t, 10*time.Second, "the reloaded verifier to take over", func() bool { return e.c.tokens.Load() != before })
	if _, r := login(third); r.status != http.StatusCreated {
		t.Fatalf("login after the outage: %d %s", r.status, r.body)
	}

	// An identity claim the ID token lacks (no phone scope asked for):
	// the refusal names the claim and the way to get it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := auth.New(ctx, auth.Config{OIDC: []auth.OIDCConfig{{Issuer: idp.m.Issuer(), Audience: idp.m.ClientID, IdentityClaim: "phone_number"}}}, auth.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, third); err == nil || !strings.Contains(err.Error(), `the ID token has no claim "phone_number"`) || !strings.Contains(err.Error(), "scope") {
		t.Errorf("identity_claim the ID token lacks: %v", err)
	}
}
