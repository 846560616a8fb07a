package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/auth"
)

// roles_claim: a string is one role, a list of strings several, absent
// none; anything else refuses the token.
func TestRolesClaim(t *testing.T) {
	c := newClock()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keysFile := filepath.Join(t.TempDir(), "corp.pem")
	if err := os.WriteFile(keysFile, pemPublicKey(t, key.Public(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh", KeysFile: keysFile, RolesClaim: "groups"}}}
	v := newVerifier(t, cfg, testOptions(c))
	s := signer{key, jwt.SigningMethodES256, ""}
	token := func(groups any) string {
		m := jwt.MapClaims{"iss": "corp-signer", "aud": "certmesh", "sub": "svc", "exp": c.Now().Add(time.Hour).Unix()}
		if groups != nil {
			m["groups"] = groups
		}
		return s.sign(t, m)
	}
	for _, tt := range []struct {
		name   string
		groups any
		want   []string
		code   auth.Code
	}{
		{"absent", nil, nil, ""},
		{"one string", "ops", []string{"ops"}, ""},
		{"a list", []string{"ops", "dev"}, []string{"ops", "dev"}, ""},
		{"a number", 7, nil, auth.CodeTokenInvalid},
		{"a list with a number", []any{"ops", 7}, nil, auth.CodeTokenInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), token(tt.groups))
			if got := codeOf(t, err); got != tt.code {
				t.Fatalf("code %q, want %q (%v)", got, tt.code, err)
			}
			if !slices.Equal(id.Roles, tt.want) {
				t.Fatalf("roles %q, want %q", id.Roles, tt.want)
			}
		})
	}
}
