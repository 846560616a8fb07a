package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/bench"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
)

// A short run against the in-process dev cluster measures every step and
// prints JSON that parses, with every histogram filled.
func TestBenchAgainstTheDevCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := devcluster.Start(ctx, devcluster.Options{RoutersPerRegion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	token, err := cl.OIDC.Mint("bench", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var ctrls, routers []string
	for _, c := range cl.Controllers {
		ctrls = append(ctrls, "https://"+c.APIAddr())
	}
	for _, r := range cl.Routers {
		routers = append(routers, r.Addr().String())
	}
	admin := filepath.Join(cl.PKIDir, pki.DefaultAdmin)
	res := runCLI("bench", "--controller", strings.Join(ctrls, ","), "--router", strings.Join(routers, ","),
		"--ca", filepath.Join(cl.PKIDir, pki.CACertFile), "--token", token,
		"--admin-cert", filepath.Join(admin, pki.CertFile), "--admin-key", filepath.Join(admin, pki.KeyFile),
		"--clients", "2", "--duration", "1s", "--json")
	if res.code != 0 {
		t.Fatalf("bench: %v", res)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("--json does not parse: %v\n%s", err, res.stdout)
	}
	if rep.Logins == 0 || rep.Revocation != "admin" {
		t.Fatalf("logins %d, revocation %q: %s", rep.Logins, rep.Revocation, res.stdout)
	}
	for _, m := range bench.Measures {
		s := rep.LatencyMS[m.Key]
		if s.Count == 0 || s.Max <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
			t.Errorf("%s: %+v, want a filled histogram", m.Key, s)
		}
	}
	for _, r := range routers {
		if s := rep.FirstAdmissionByRouterMS[r]; s.Count == 0 {
			t.Errorf("no first admission at %s", r)
		}
	}
	// A loaded machine may fail a step now and then (the report counts
	// it); a cluster that fails most of them is broken.
	for step, e := range rep.Errors {
		if e.Count*2 > rep.Logins {
			t.Errorf("%s failed %d times in %d lives, first: %s", step, e.Count, rep.Logins, e.First)
		} else {
			t.Logf("%s failed %d times in %d lives, first: %s", step, e.Count, rep.Logins, e.First)
		}
	}
}

// Bad flags exit 2 with one line naming the flag, before anything is sent.
func TestBenchUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.InitOptions{Controllers: []string{"ctrl-a"}, Routers: []string{"edge-a-1"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, pki.CACertFile)
	ok := []string{"bench", "--controller", "https://127.0.0.1:1", "--router", "127.0.0.1:2", "--ca", ca, "--token", "t"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"bench"}, []string{"--controller", "required"}},
		{[]string{"bench", "--controller", "http://127.0.0.1:1", "--router", "127.0.0.1:2", "--ca", ca, "--token", "t"}, []string{"--controller"}},
		{[]string{"bench", "--controller", "https://127.0.0.1:1", "--ca", ca, "--token", "t"}, []string{"--router", "required"}},
		{[]string{"bench", "--controller", "https://127.0.0.1:1", "--router", "nohostport", "--ca", ca, "--token", "t"}, []string{"--router", "nohostport"}},
		{[]string{"bench", "--controller", "https://127.0.0.1:1", "--router", "127.0.0.1:2", "--ca", ca}, []string{"--token"}},
		{[]string{"bench", "--controller", "https://127.0.0.1:1", "--router", "127.0.0.1:2,127.0.0.1:2", "--ca", ca, "--token", "t"}, []string{"--router", "twice"}},
		{append(ok, "--clients", "0"), []string{"--clients", "0"}},
		{append(ok, "--rate", "-1"), []string{"--rate"}},
		{append(ok, "--duration", "0s"), []string{"--duration"}},
		{append(ok, "--duration", "soon"), []string{"duration", "soon"}},
		{append(ok, "--probe", ""), []string{"--probe", "empty"}},
		{append(ok, "--probe", `\q`), []string{"--probe", "escape"}},
		{append(ok, "--admin-cert", ca), []string{"--admin-cert", "--admin-key"}},
		{append(ok, "--retry-interval", "0s"), []string{"--retry-interval"}},
		{append(ok, "extra"), []string{"extra"}},
	} {
		checkFailure(t, runCLI(tc.args...), 2, tc.want...)
	}
}

// Not one login: exit 1, the report still printed, the error naming the
// controller.
func TestBenchWithNoControllerExits1(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.InitOptions{Controllers: []string{"ctrl-a"}, Routers: []string{"edge-a-1"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	res := runCLI("bench", "--controller", "https://"+addr, "--router", "127.0.0.1:2", "--ca", filepath.Join(dir, pki.CACertFile),
		"--token", "t", "--clients", "1", "--duration", "5s", "--timeout", "1s")
	checkFailure(t, res, 1, "no login succeeded", addr)
	if !strings.Contains(res.stdout, "errors login") {
		t.Errorf("the report does not show the login errors: %s", res.stdout)
	}
}
