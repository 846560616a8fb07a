package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/auth"
)

// Two sources that both present sub=alice: an OIDC issuer and JWT signers
// A and B. Each alice is her own identity unless the operator maps sources
// together with one identity_namespace.
func TestIdentitiesAreNamespacedByTheirSource(t *testing.T) {
	c := newClock()
	iss := startIssuer(t, c)
	keysFile := filepath.Join(t.TempDir(), "signers.pem")
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := os.WriteFile(keysFile, append(pemPublicKey(t, keyA.Public(), nil), pemPublicKey(t, keyB.Public(), nil)...), 0o644); err != nil {
		t.Fatal(err)
	}
	jwtToken := func(key *ecdsa.PrivateKey, issuer, sub string) string {
		return signer{key, jwt.SigningMethodES256, ""}.sign(t, jwt.MapClaims{"iss": issuer, "aud": "certmesh", "sub": sub, "exp": c.Now().Add(time.Hour).Unix()})
	}
	oidcToken := func(sub string) string {
		return mustMint(t)(iss.MintClaims(map[string]any{"iss": iss.URL(), "aud": "certmesh", "sub": sub, "exp": c.Now().Add(time.Hour).Unix()}))
	}
	idOf := func(v *auth.Verifier, token string) string {
		t.Helper()
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != "alice" && id.Subject != "corp:alice" {
			t.Errorf("Subject %q: the claim value, unprefixed", id.Subject)
		}
		return id.ID
	}
	base := func() auth.Config {
		cfg := oidcConfig(iss.URL())
		cfg.JWT = []auth.JWTConfig{
			{Name: "signer-a", Issuer: "issuer-a", Audience: "certmesh", KeysFile: keysFile},
			{Name: "signer-b", Issuer: "issuer-b", Audience: "certmesh", KeysFile: keysFile},
		}
		return cfg
	}

	v := newVerifier(t, base(), testOptions(c))
	waitReady(t, v)
	oidcAlice, aAlice, bAlice := idOf(v, oidcToken("alice")), idOf(v, jwtToken(keyA, "issuer-a", "alice")), idOf(v, jwtToken(keyB, "issuer-b", "alice"))
	if oidcAlice != "127.0.0.1:alice" || aAlice != "signer-a:alice" || bAlice != "signer-b:alice" {
		t.Errorf("identities %q, %q, %q; want 127.0.0.1:alice, signer-a:alice, signer-b:alice", oidcAlice, aAlice, bAlice)
	}
	// A subject that spells another source's identity stays in its own.
	if id := idOf(v, oidcToken("corp:alice")); id != "127.0.0.1:corp:alice" {
		t.Errorf("OIDC sub corp:alice is %q", id)
	}

	// Mapped on purpose: the OIDC issuer and signer A share "staff".
	mapped := base()
	mapped.OIDC[0].IdentityNamespace = "staff"
	mapped.JWT[0].IdentityNamespace = "staff"
	v = newVerifier(t, mapped, testOptions(c))
	waitReady(t, v)
	if o, a, b := idOf(v, oidcToken("alice")), idOf(v, jwtToken(keyA, "issuer-a", "alice")), idOf(v, jwtToken(keyB, "issuer-b", "alice")); o != "staff:alice" || a != "staff:alice" || b != "signer-b:alice" {
		t.Errorf("mapped identities %q, %q, %q; want staff:alice twice and signer-b:alice", o, a, b)
	}
	if got := strings.Join(mapped.IdentityFormat(), "; "); !strings.Contains(got, "auth.jwt[0] (signer-a): staff:<sub>") || !strings.Contains(got, "auth.jwt[1] (signer-b): signer-b:<sub>") {
		t.Errorf("IdentityFormat: %s", got)
	}

	// A single entry keeps the claim value as the identity (docs/deploy.md), unless it asks for a namespace.
	single := oidcConfig(iss.URL())
	v = newVerifier(t, single, testOptions(c))
	waitReady(t, v)
	if id := idOf(v, oidcToken("alice")); id != "alice" {
		t.Errorf("single entry: %q, want alice", id)
	}
	single.OIDC[0].IdentityNamespace = "idp"
	v = newVerifier(t, single, testOptions(c))
	waitReady(t, v)
	if id := idOf(v, oidcToken("alice")); id != "idp:alice" {
		t.Errorf("single entry with a namespace: %q, want idp:alice", id)
	}
}
