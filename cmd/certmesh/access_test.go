package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// checkAccessCommands drives the access commands against the controller
// at apiAddr, whose PKI is in pkiDir.
func checkAccessCommands(t *testing.T, apiAddr, pkiDir string) {
	t.Helper()
	admin := []string{"--controller", "https://" + apiAddr, "--ca", filepath.Join(pkiDir, "ca.pem"),
		"--admin-cert", filepath.Join(pkiDir, "admin", "cert.pem"), "--admin-key", filepath.Join(pkiDir, "admin", "key.pem")}
	cli := func(args ...string) result {
		t.Helper()
		return runCLI(append(args, admin...)...)
	}
	ok := func(r result, want ...string) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("stdout %q lacks %q", r.stdout, w)
			}
		}
	}
	// The name first, then the flags, as the docs write them.
	ok(runCLI(append([]string{"service", "put", "echo", "--address", "127.0.0.1:7000", "--role", "web", "--role", "public"}, admin...)...),
		"service echo 127.0.0.1:7000 roles public,web")
	ok(cli("service", "put", "--address", "db:5432", "db"), "service db db:5432")
	ok(cli("service", "ls"), "echo", "db:5432")
	ok(cli("policy", "put", "web-ops", "--identities", "#ops,@alice", "--services", "#web"), "policy web-ops grants #ops,@alice to reach #web")
	ok(cli("policy", "ls"), "web-ops")
	ok(cli("identity", "roles", "bob", "--set", "ops,dev"), "identity bob roles dev,ops")
	ok(cli("identity", "roles", "bob"), "identity bob roles dev,ops")
	ok(cli("access", "bob"), "echo", "127.0.0.1:7000", "web-ops")
	ok(cli("policy", "rm", "web-ops"), "removed policy web-ops")
	if r := cli("access", "bob"); r.code != 0 || strings.Contains(r.stdout, "echo") {
		t.Errorf("access after the policy went: %v", r)
	}
	ok(cli("service", "rm", "db"), "removed service db")
	checkFailure(t, cli("service", "put", "Bad_Name", "--address", "h:1"), 1, "bad_request")
	checkFailure(t, cli("policy", "put", "p", "--identities", "alice", "--services", "#all"), 1, "bad_request")
	checkFailure(t, cli("service", "put", "x"), 2, "--address")
	checkFailure(t, cli("service", "rm"), 2, "service NAME")
}
