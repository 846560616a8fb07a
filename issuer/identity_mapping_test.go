package issuer

import (
	"net/http"
	"testing"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
)

// An operator who knows that two sources name the same people maps them
// together on purpose: the same identity_namespace on both entries. Then
// sub=alice from either is one identity, and revoking it revokes both.
func TestAuthSourcesMappedTogetherShareIdentities(t *testing.T) {
	corp := newJWTSigner(t)
	e := newEnv(t, func(c *config.Controller) {
		c.Auth.OIDC[0].IdentityNamespace = "staff"
		j := corp.config()
		j.IdentityNamespace = "staff"
		c.Auth.JWT = []auth.JWTConfig{j}
	})
	oidcAlice := e.login("alice")
	corpAlice := e.loginWith(corp.token(t, "alice"))
	if oidcAlice.Identity != "staff:alice" || corpAlice.Identity != "staff:alice" {
		t.Fatalf("identities %q and %q, want staff:alice for both", oidcAlice.Identity, corpAlice.Identity)
	}
	// The admin can list them under the one name.
	r := do(t, e.client(e.admin), "GET", e.url+"/v1/sessions?identity=staff:alice", nil)
	var list struct {
		Sessions []api.SessionInfo `json:"sessions"`
	}
	mustJSON(t, r.body, &list)
	if r.status != http.StatusOK || len(list.Sessions) != 2 {
		t.Fatalf("sessions of staff:alice: %d %s", r.status, r.body)
	}
	if r := e.revoke(api.RevocationRequest{Identity: "staff:alice"}); r.status != http.StatusAccepted {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	for _, s := range []*session{oidcAlice, corpAlice} {
		if v := e.verdict(s); v != crdt.IdentityRevoked {
			t.Errorf("%s's session %s after the revocation: %v", s.Identity, s.SessionID, v)
		}
	}
}

// With a single auth entry, identities are the claim values, as they were
// before namespaces (docs/deploy.md).
func TestSingleAuthEntryKeepsClaimValueAsIdentity(t *testing.T) {
	e := newEnv(t)
	if s := e.login("alice"); s.Identity != "alice" {
		t.Fatalf("identity %q, want alice", s.Identity)
	}
}
