package main

import (
	"strings"
	"testing"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
)

// certmesh status shows a controller's identity providers and their
// health, and nothing of the kind for a router.
func TestStatusPrintsIssuerHealth(t *testing.T) {
	var b strings.Builder
	printStatus(&b, &client.Status{Node: "c1", Role: "controller", Issuers: []api.IssuerStatus{
		{Name: "sso", Issuer: "https://sso.example.com/", Kind: "oidc", State: "misconfigured",
			LastError: `issuer "https://sso.example.com/" is configured, but its discovery document says "https://sso.example.com"`},
		{Name: "corp", Issuer: "corp-ci", Kind: "jwt", State: "ready", Discovered: true, Keys: 2},
	}})
	out := b.String()
	for _, want := range []string{"ISSUER", "https://sso.example.com/  oidc  misconfigured", "corp-ci", "ready", `discovery document says`} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printStatus(&b, &client.Status{Node: "r1", Role: "router"})
	if strings.Contains(b.String(), "ISSUER") {
		t.Errorf("router status shows issuers:\n%s", b.String())
	}
}
