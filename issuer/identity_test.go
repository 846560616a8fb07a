package issuer

import (
	"net/http"
	"testing"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
)

// loginWith logs in with a raw token.
func (e *env) loginWith(token string) *session {
	e.t.Helper()
	key, csr := newCSR(e.t)
	r := do(e.t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": token, "csr": csr})
	if r.status != http.StatusCreated {
		e.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return e.session(r, key)
}

// A controller trusting an OIDC issuer and a JWT signer: sub=alice from
// each is a different person. Revoking the OIDC alice (by the identity her
// login answered) leaves the JWT signer's alice admitted, and the other
// way round.
func TestIdentitiesOfDifferentAuthSourcesDoNotCollide(t *testing.T) {
	corp := newJWTSigner(t) // auth.jwt entry "corp"
	e := newEnv(t, func(c *config.Controller) { c.Auth.JWT = []auth.JWTConfig{corp.config()} })
	oidcAlice := e.login("alice")
	corpAlice := e.loginWith(corp.token(t, "alice"))
	if oidcAlice.Identity == corpAlice.Identity {
		t.Errorf("OIDC alice and the JWT signer's alice are both identity %q", oidcAlice.Identity)
	}
	if corpAlice.Identity != "corp:alice" {
		t.Errorf("the JWT signer's alice is %q, want corp:alice", corpAlice.Identity)
	}
	if r := e.revoke(api.RevocationRequest{Identity: oidcAlice.Identity}); r.status != http.StatusAccepted {
		t.Fatalf("revoke %s: %d %s", oidcAlice.Identity, r.status, r.body)
	}
	if v := e.verdict(oidcAlice); v != crdt.IdentityRevoked {
		t.Errorf("OIDC alice after her revocation: %v", v)
	}
	if v := e.verdict(corpAlice); v != crdt.Admit {
		t.Errorf("the JWT signer's alice after OIDC alice's revocation: %v, want admitted", v)
	}
	// Nor does an identity spelled with the other source's prefix reach
	// across: the OIDC subject "corp:alice" is not corp's alice.
	spoof := e.login("corp:alice")
	if spoof.Identity == corpAlice.Identity {
		t.Fatalf("OIDC sub %q is identity %q, the JWT signer's alice", "corp:alice", spoof.Identity)
	}
}
