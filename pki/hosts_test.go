package pki_test

import (
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/pki"
)

func TestRouterHosts(t *testing.T) {
	routers := []string{"edge-1", "edge-2"}
	for _, tt := range []struct {
		name    string
		routers []string
		entries []string
		want    map[string][]string
		err     string
	}{
		{"per router", routers, []string{"edge-1=10.0.0.5", "edge-1=a.example.net", "edge-2=[::5]"},
			map[string][]string{"edge-1": {"10.0.0.5", "a.example.net"}, "edge-2": {"::5"}}, ""},
		{"named after the router", routers, []string{"edge-1.example.net", "edge-2.eu.example.net", "edge-2"},
			map[string][]string{"edge-1": {"edge-1.example.net"}, "edge-2": {"edge-2.eu.example.net", "edge-2"}}, ""},
		{"shared on purpose", routers, []string{"*=lb.example.net"},
			map[string][]string{"edge-1": {"lb.example.net"}, "edge-2": {"lb.example.net"}}, ""},
		{"loopback", routers, []string{"127.0.0.2", "localhost"},
			map[string][]string{"edge-1": {"127.0.0.2", "localhost"}, "edge-2": {"127.0.0.2", "localhost"}}, ""},
		{"one router takes the old form", []string{"edge-1"}, []string{"lb.example.net", "10.1.2.3"},
			map[string][]string{"edge-1": {"lb.example.net", "10.1.2.3"}}, ""},
		{"ambiguous name", routers, []string{"lb.example.net"}, nil, "(edge-1,edge-2); write edge-1=lb.example.net to put it on edge-1's certificate only, or *=lb.example.net"},
		{"ambiguous address", routers, []string{"10.0.0.5"}, nil, "names none of the 2 routers"},
		{"unknown router", routers, []string{"edge-9=h.example.net"}, nil, `"edge-9" is not one of the routers given`},
		{"no host", routers, []string{"edge-1="}, nil, "no host"},
		{"bad host", routers, []string{"edge-1=bad host"}, nil, "neither an IP address nor a DNS name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.RouterHosts(tt.routers, tt.entries)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// One router's key must not pose as another router: each certificate that
// pki init and pki add write carries only its own hosts. The first init is
// the old form, from docs/deploy.md, which put every host on every router.
func TestInitAndAddGiveEachRouterOnlyItsOwnHosts(t *testing.T) {
	dir := t.TempDir()
	_, err := pki.Init(dir, pki.InitOptions{Controllers: []string{"c1"}, Routers: []string{"edge-1", "edge-2"}, Now: t0,
		Hosts: []string{"edge-1.example.net", "edge-2.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(mustLoad(t, dir, "").Cert)
	answers := func(router, host string) bool {
		kp := mustLoad(t, dir, router)
		_, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: t0,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err == nil
	}
	check := func(routers []string, host, owner string) {
		t.Helper()
		var got []string
		for _, r := range routers {
			if answers(r, host) {
				got = append(got, r)
			}
		}
		if diff := cmp.Diff([]string{owner}, got); diff != "" {
			t.Errorf("routers whose certificate answers for %s (-want +got):\n%s", host, diff)
		}
	}
	check([]string{"edge-1", "edge-2"}, "edge-1.example.net", "edge-1")
	check([]string{"edge-1", "edge-2"}, "edge-2.example.net", "edge-2")

	// The per-router form, and a shared name said so.
	if _, err := pki.Add(dir, pki.AddOptions{Routers: []string{"edge-3", "edge-4"}, Now: t0,
		Hosts: []string{"edge-3=10.0.0.3", "edge-3=edge-3.example.net", "edge-4.example.net", "*=lb.example.net"}}); err != nil {
		t.Fatal(err)
	}
	all := []string{"edge-1", "edge-2", "edge-3", "edge-4"}
	check(all, "10.0.0.3", "edge-3")
	check(all, "edge-3.example.net", "edge-3")
	check(all, "edge-4.example.net", "edge-4")
	for _, r := range []string{"edge-3", "edge-4"} {
		if !answers(r, "lb.example.net") || !answers(r, "localhost") {
			t.Errorf("%s does not answer for the shared name or localhost", r)
		}
	}

	// An ambiguous host is refused before anything is written.
	other := t.TempDir()
	_, err = pki.Init(other, pki.InitOptions{Controllers: []string{"c1"}, Routers: []string{"edge-1", "edge-2"}, Now: t0,
		Hosts: []string{"shared.example.net"}})
	if err == nil || !strings.Contains(err.Error(), "pki: init: hosts:") {
		t.Fatalf("ambiguous host: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(other, "*")); len(m) != 0 {
		t.Errorf("a refused init wrote %v", m)
	}
}
