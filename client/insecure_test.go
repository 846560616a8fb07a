package client_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
)

// plainController is a plain-HTTP server standing in for a controller
// reached over http://: it counts the requests that reach it, which must
// stay 0, since every controller call carries a credential.
func plainController(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, `{"error":"plain http","code":"internal"}`, http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// A bearer token, a session certificate or an admin certificate is never
// sent to an http:// controller: the SDK refuses the URL before it dials.
func TestNoCredentialGoesToAPlainHTTPController(t *testing.T) {
	srv, hits := plainController(t)
	cfg := client.DefaultConfig()
	cfg.Controllers = []string{srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "not https") {
			t.Errorf("%s: %v, want a refusal of the http:// URL", what, err)
		}
		if n := hits.Load(); n != 0 {
			t.Fatalf("%s: %d requests reached the plain-http controller", what, n)
		}
	}

	_, err := client.Login(ctx, cfg, "secret-bearer-token")
	refused("Login", err)
	// One https controller first does not make a later http one acceptable.
	mixed := cfg
	mixed.Controllers = []string{"https://127.0.0.1:1", srv.URL}
	_, err = client.Login(ctx, mixed, "secret-bearer-token")
	refused("Login with an http controller in the list", err)
	if admin, err := client.NewAdmin(cfg, tls.Certificate{}); err == nil {
		_, err = admin.Revoke(ctx, client.Revocation{Identity: "alice"})
		admin.Close()
		refused("Admin.Revoke", err)
	} else {
		refused("NewAdmin", err)
	}

	// A session whose session.json names an http:// controller (edited on
	// disk) is not rotated or logged out there either.
	e := newEnv(t, time.Hour)
	s := e.login("alice")
	s.Controller = srv.URL
	_, err = client.RotateSession(ctx, e.cfg, s)
	refused("RotateSession preferring an http controller", err)
	refused("Logout preferring an http controller", client.Logout(ctx, e.cfg, s))

}
