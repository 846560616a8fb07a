package issuer

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
)

func bindToToken(c *config.Controller) { c.Session.BindToToken = true }

func (e *env) tokenFor(sub string, ttl time.Duration) (string, time.Time) {
	e.t.Helper()
	tok, err := e.oidc.Mint(sub, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, time.Unix(time.Now().Add(ttl).Unix(), 0)
}

func (e *env) loginToken(tok string) (*session, response) {
	e.t.Helper()
	key, csr := newCSR(e.t)
	r := do(e.t, e.client(), "POST", e.url+api.PathSessions, map[string]string{"token": tok, "csr": csr})
	if r.status != http.StatusCreated {
		return nil, r
	}
	return e.session(r, key), r
}

func parseRFC3339(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// Without session.bind_to_token (the default) a session lasts
// session.max_lifetime, whatever its token's expiry.
func TestSessionOutlivesItsTokenByDefault(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.tokenFor("alice", 20*time.Second)
	s, r := e.loginToken(tok)
	if s == nil {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if end := parseRFC3339(t, s.SessionExpiresAt); end.Before(time.Now().Add(config.DefaultMaxLifetime - time.Minute)) {
		t.Errorf("session ends at %v, want max_lifetime (%v) from now", end, config.DefaultMaxLifetime)
	}
}

// With session.bind_to_token the session ends with its token, unless the
// client presents a fresh token for the same identity, which extends the
// same session (id, certificate) to the new token's expiry.
func TestBoundSessionEndsWithItsTokenUnlessRefreshed(t *testing.T) {
	e := newEnv(t, bindToToken)
	tok, exp := e.tokenFor("alice", time.Minute)
	s, r := e.loginToken(tok)
	if s == nil {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	if end := parseRFC3339(t, s.SessionExpiresAt); !end.Equal(exp) {
		t.Errorf("bound session ends at %v, want the token's expiry %v", end, exp)
	}
	if certEnd := parseRFC3339(t, s.ExpiresAt); !certEnd.After(exp) {
		t.Errorf("certificate ends at %v, not after the token (%v): a fresh token could not keep it", certEnd, exp)
	}
	sid, err := crdt.ParseSessionID(s.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	f := facts(t, s.leaf, "c1")
	live := func(at time.Time) crdt.Verdict {
		var v crdt.Verdict
		e.mesh.View(func(st *crdt.Store) { v = st.Live(f, crdt.MillisOf(at)) })
		return v
	}
	if v := live(exp); v != crdt.SessionExpired {
		t.Errorf("at the token's expiry: %v, want session_expired", v)
	}

	refresh := func(tok string) response {
		return do(t, e.client(s.cert), "POST", e.url+api.PathSessionToken, api.TokenRequest{Token: tok})
	}
	fresh, freshExp := e.tokenFor("alice", 10*time.Minute)
	r = refresh(fresh)
	var tr api.TokenResponse
	mustJSON(t, r.body, &tr)
	if r.status != http.StatusOK || tr.SessionID != s.SessionID || !parseRFC3339(t, tr.SessionExpiresAt).Equal(freshExp) {
		t.Fatalf("refresh: %d %s, want 200 with session %s ending at %v", r.status, r.body, s.SessionID, freshExp)
	}
	var end crdt.Millis
	e.mesh.View(func(st *crdt.Store) { end, _ = st.SessionExpires(sid) })
	if !end.Time().Equal(freshExp) {
		t.Errorf("replicated session end %v, want %v", end.Time(), freshExp)
	}
	if v := live(exp); v != crdt.Admit {
		t.Errorf("at the first token's expiry, after a refresh: %v, want admitted", v)
	}
	if v := live(freshExp); v != crdt.SessionExpired {
		t.Errorf("at the fresh token's expiry: %v, want session_expired", v)
	}

	// A shorter token changes nothing; another identity's is refused.
	short, _ := e.tokenFor("alice", 2*time.Minute)
	r = refresh(short)
	mustJSON(t, r.body, &tr)
	if r.status != http.StatusOK || !parseRFC3339(t, tr.SessionExpiresAt).Equal(freshExp) {
		t.Errorf("shorter token: %d %s, want 200 and the end unchanged (%v)", r.status, r.body, freshExp)
	}
	bob, _ := e.tokenFor("bob", 10*time.Minute)
	if r := refresh(bob); r.status != http.StatusForbidden || !strings.Contains(string(r.body), `bob`) {
		t.Errorf("bob's token for alice's session: %d %s, want 403 naming bob", r.status, r.body)
	}
	if r := do(t, e.client(), "POST", e.url+api.PathSessionToken, api.TokenRequest{Token: fresh}); r.status != http.StatusUnauthorized {
		t.Errorf("no certificate: %d %s, want 401", r.status, r.body)
	}

	// Another controller cannot write the session's records: it says so
	// with a 503, which sends the client on to the next controller.
	e2 := newEnvOf(t, e.pkiDir, "c2", e.oidc, bindToToken)
	r = do(t, e2.client(s.cert), "POST", e2.url+api.PathSessionToken, api.TokenRequest{Token: fresh})
	if r.status != http.StatusServiceUnavailable || r.code() != api.CodeUnavailable || !strings.Contains(string(r.body), "created by another controller") {
		t.Errorf("refresh at another controller: %d %s, want 503 unavailable", r.status, r.body)
	}

	// A token about to expire cannot open a bound session.
	dying, _ := e.tokenFor("carol", 2*time.Second)
	if _, r := e.loginToken(dying); r.status != http.StatusUnauthorized || r.code() != api.CodeTokenExpired {
		t.Errorf("login with a token 2s from expiry: %d %s, want 401 token_expired", r.status, r.body)
	}
}
