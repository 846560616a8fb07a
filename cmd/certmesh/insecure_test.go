package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// The client commands never send a token or a certificate to a plain
// http:// URL: login, rotate and revoke refuse --controller, status refuses
// --url with the admin certificate, each with exit 2 and one line naming
// the flag, before anything is sent.
func TestClientCommandsRefuseHTTPWithCredentials(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"node":"x","role":"controller","region":"r","members":[],"version_vector":{},"records":{},"digest":"0"}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if r := runCLI("pki", "init", "--dir", pkiDir, "--controllers", "c1"); r.code != 0 {
		t.Fatal(r)
	}
	ca := filepath.Join(pkiDir, "ca.pem")
	adminCert, adminKey := filepath.Join(pkiDir, "admin", "cert.pem"), filepath.Join(pkiDir, "admin", "key.pem")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("secret-bearer-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		flag string
	}{
		{"login", []string{"login", "--controller", srv.URL, "--ca", ca, "--token", "secret-bearer-token", "--out", filepath.Join(dir, "out")}, "--controller"},
		{"login token file", []string{"login", "--controller", srv.URL, "--ca", ca, "--token-file", tokenFile, "--out", filepath.Join(dir, "out")}, "--controller"},
		{"login failover list", []string{"login", "--controller", "https://127.0.0.1:1," + srv.URL, "--ca", ca, "--token", "t", "--out", filepath.Join(dir, "out")}, "--controller"},
		{"rotate", []string{"rotate", "--controller", srv.URL, "--ca", ca, "--dir", filepath.Join(dir, "out")}, "--controller"},
		{"revoke", []string{"revoke", "--controller", srv.URL, "--ca", ca, "--admin-cert", adminCert, "--admin-key", adminKey, "--identity", "alice"}, "--controller"},
		{"status as admin", []string{"status", "--url", srv.URL, "--ca", ca, "--admin-cert", adminCert, "--admin-key", adminKey}, "--url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFailure(t, runCLI(tc.args...), 2, tc.flag, "https")
			if n := hits.Load(); n != 0 {
				t.Fatalf("%d requests reached the plain-http URL", n)
			}
		})
	}

	// A metrics listener is plain http by design and asked without
	// credentials: that still works.
	if r := runCLI("status", "--url", srv.URL); r.code != 0 {
		t.Fatalf("status of a plain-http metrics listener: %v", r)
	}
}
