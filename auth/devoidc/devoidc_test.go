package devoidc_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/auth/devoidc"
)

func TestIssuerUnderAPathServesDiscoveryAndRotatingKeys(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss, err := devoidc.New(devoidc.Config{Issuer: "http://127.0.0.1:5556/dex", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) int {
		rec := httptest.NewRecorder()
		iss.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return rec.Code
	}

	var disco map[string]any
	if code := get("/dex/.well-known/openid-configuration", &disco); code != http.StatusOK {
		t.Fatalf("discovery: HTTP %d", code)
	}
	if disco["issuer"] != "http://127.0.0.1:5556/dex" || disco["jwks_uri"] != "http://127.0.0.1:5556/dex/keys" {
		t.Errorf("discovery = %v", disco)
	}
	if code := get("/.well-known/openid-configuration", &disco); code != http.StatusNotFound {
		t.Errorf("discovery outside the issuer path: HTTP %d, want 404", code)
	}

	kids := func() []string {
		var set struct{ Keys []struct{ Kid string } }
		get("/dex/keys", &set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid)
		}
		return out
	}
	first := kids()
	kid2, err := iss.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(first, kid2), kids()); len(first) != 1 || diff != "" {
		t.Errorf("JWKS after Rotate (-want +got):\n%s", diff)
	}

	tok, err := iss.Mint("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	want := jwt.MapClaims{"iss": "http://127.0.0.1:5556/dex", "aud": "certmesh", "sub": "alice", "iat": float64(now.Unix()), "exp": float64(now.Add(time.Hour).Unix())}
	if diff := cmp.Diff(want, parsed.Claims); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if parsed.Header["kid"] != kid2 || parsed.Header["alg"] != "ES256" {
		t.Errorf("header = %v, want ES256 with kid %s", parsed.Header, kid2)
	}
}

func TestNewRefusesABadIssuerURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:5556", "ftp://x", "http://x/?q=1"} {
		if _, err := devoidc.New(devoidc.Config{Issuer: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}
