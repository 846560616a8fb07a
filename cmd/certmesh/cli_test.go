package main

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certmesh/certmesh/api"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}} {
		r := runCLI(args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "certmesh version ") || !strings.Contains(r.stdout, "commit ") {
			t.Errorf("%v: %v", args, r)
		}
	}
}

func TestHelpCommand(t *testing.T) {
	r := runCLI("help")
	if r.code != 0 || !strings.Contains(r.stdout, "COMMANDS:") || !strings.Contains(r.stdout, "controller") {
		t.Fatalf("certmesh help: %v", r)
	}
	r = runCLI("help", "pki")
	if r.code != 0 || !strings.Contains(r.stdout, "rotate-controller") {
		t.Fatalf("certmesh help pki lists no pki command: %v", r)
	}
	r = runCLI("help", "login")
	if r.code != 0 || !strings.Contains(r.stdout, "--token-file") {
		t.Fatalf("certmesh help login: %v", r)
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if r := runCLI("pki", "init", "--dir", dir, "--controllers", "c1"); r.code != 0 {
		t.Fatal(r)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "c1", "cert.pem"))
	r := runCLI("pki", "rotate-controller", "c1", "--dir", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "SIGHUP") {
		t.Fatalf("pki rotate-controller NAME --dir DIR: %v", r)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "c1", "cert.pem")); string(after) == string(before) {
		t.Error("the certificate was not rotated")
	}
	// --dir=DIR too, and a second positional argument still counts as one.
	if r := runCLI("pki", "rotate-controller", "c1", "--dir="+dir); r.code != 0 {
		t.Error(r)
	}
	checkFailure(t, runCLI("pki", "rotate-controller", "c1", "--dir", dir, "c2"), 2, `unexpected argument "c2"`)
}

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"certmesh", "pki", "rotate-controller", "NAME", "--dir", "D"}, []string{"certmesh", "pki", "rotate-controller", "--dir", "D", "NAME"}},
		{[]string{"certmesh", "pki", "revoke-controller", "NAME", "--dir=D", "--controller", "U"}, []string{"certmesh", "pki", "revoke-controller", "--dir=D", "--controller", "U", "NAME"}},
		// A bool flag takes no value: the next word stays positional.
		{[]string{"certmesh", "pki", "init", "x", "--force", "y"}, []string{"certmesh", "pki", "init", "--force", "x", "y"}},
		// After --, everything is positional and stays in place.
		{[]string{"certmesh", "pki", "rotate-controller", "--", "-x", "--dir"}, []string{"certmesh", "pki", "rotate-controller", "--", "-x", "--dir"}},
		// Unknown commands and help are left alone.
		{[]string{"certmesh", "bogus", "--x", "y"}, []string{"certmesh", "bogus", "--x", "y"}},
		{[]string{"certmesh", "help", "pki"}, []string{"certmesh", "help", "pki"}},
		{[]string{"certmesh", "pki", "nope", "--dir", "D"}, []string{"certmesh", "pki", "nope", "--dir", "D"}},
	} {
		if got := flagsFirst(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSessionDirFlagIsDirWithOutAsOldName(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "missing-ca.pem")
	// login and rotate name the session directory --dir alike; login's
	// --out still works (the error is then about --ca, not the directory).
	checkFailure(t, runCLI("login", "--controller", "https://127.0.0.1:1", "--ca", ca, "--token", "t", "--dir", dir), 2, "--ca")
	checkFailure(t, runCLI("login", "--controller", "https://127.0.0.1:1", "--ca", ca, "--token", "t", "--out", dir), 2, "--ca")
	checkFailure(t, runCLI("login", "--controller", "https://127.0.0.1:1", "--ca", ca, "--token", "t", "--out", dir, "--dir", dir+"x"), 2, "--out", "--dir")
	checkFailure(t, runCLI("login", "--controller", "https://127.0.0.1:1", "--ca", ca, "--token", "t"), 2, "--dir: required")
	for _, cmd := range []string{"login", "rotate"} {
		r := runCLI(cmd, "--help")
		if !strings.Contains(r.stdout, "--dir DIR") || strings.Contains(r.stdout, "--out") {
			t.Errorf("%s --help should show --dir and hide --out:\n%s", cmd, r.stdout)
		}
	}
}

func TestStatusWithoutAdminCertSaysWhatIsMissing(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What a controller answers on its API without a client certificate.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: "the admin certificate is required (mTLS)", Code: api.CodeForbidden})
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI("status", "--url", srv.URL, "--ca", ca)
	checkFailure(t, r, 2, "401 Unauthorized", "the admin certificate is required", "--admin-cert", "metrics listener")
	if strings.Contains(r.stderr, "401 forbidden") {
		t.Errorf("stderr %q reads 401 forbidden", r.stderr)
	}
}

func TestMissingKeyFileIsBlamedOnPKIKey(t *testing.T) {
	dir := t.TempDir()
	if r := runCLI("pki", "init", "--dir", filepath.Join(dir, "pki"), "--controllers", "c1", "--routers", "r1"); r.code != 0 {
		t.Fatal(r)
	}
	for _, mode := range []string{"controller", "router"} {
		name := map[string]string{"controller": "c1", "router": "r1"}[mode]
		cfg := filepath.Join(dir, mode+".yaml")
		yaml := "node: {name: " + name + "}\nmesh: {bind: 127.0.0.1:0, key_file: pki/gossip.key}\n" +
			"pki: {ca: pki/ca.pem, cert: pki/" + name + "/cert.pem, key: pki/" + name + "/missing-key.pem}\nmetrics: {listen: \"\"}\n"
		if mode == "controller" {
			yaml += "api: {listen: 127.0.0.1:0}\nauth: {jwt: [{name: corp, issuer: corp, audience: certmesh, keys_file: pki/ca.pem}]}\n"
		} else {
			yaml += "listen: 127.0.0.1:0\nupstream: 127.0.0.1:9\n"
		}
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(mode, "--config", cfg)
		checkFailure(t, r, 2, "pki.key", "missing-key.pem")
		if strings.Contains(r.stderr, "pki.cert") {
			t.Errorf("%s: a missing key file is blamed on pki.cert: %s", mode, r.stderr)
		}
		if strings.Contains(r.stderr, "pki.key: pki:") {
			t.Errorf("%s: a repeated prefix: %s", mode, r.stderr)
		}
	}
}
