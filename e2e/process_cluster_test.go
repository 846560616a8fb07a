//go:build unix

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
)

// The metric names the nodes promise (docs/deploy.md, "What to watch"), by the kind of node that must
// expose them.
var (
	meshMetricNames = []string{
		"certmesh_records", "certmesh_sync_delay_seconds_bucket", "certmesh_gossip_bytes_total",
		"certmesh_gossip_messages_total", "certmesh_members", "certmesh_rejected_records_total",
	}
	controllerMetricNames = []string{"certmesh_certs_issued_total", "certmesh_auth_failures_total"}
	routerMetricNames     = []string{"certmesh_admissions_total", "certmesh_pull_total", "certmesh_connections_active", "certmesh_connections_closed_total"}
)

// TestProcessCluster runs 3 controllers and 3 routers, in 3 regions, as
// separate certmesh processes on 127.0.0.1, and walks clients through them
// with the certmesh CLI.
func TestProcessCluster(t *testing.T) {
	began := time.Now()
	c := startProcCluster(t)
	ctrlUS, ctrlEU, ctrlAP := c.ctrls[0], c.ctrls[1], c.ctrls[2]
	edgeUS, edgeEU, edgeAP := c.routers[0], c.routers[1], c.routers[2]
	ca := filepath.Join(c.pkiDir, "ca.pem")
	admin := []string{"--admin-cert", filepath.Join(c.pkiDir, "admin", "cert.pem"), "--admin-key", filepath.Join(c.pkiDir, "admin", "key.pem")}
	url := func(ns ...*node) string {
		var us []string
		for _, n := range ns {
			us = append(us, "https://"+n.api)
		}
		return strings.Join(us, ",")
	}
	clients := t.TempDir()
	login := func(identity, token string, at ...*node) *client.Session {
		t.Helper()
		dir := filepath.Join(clients, identity)
		mustCLI(t, c.bin, "login", "--controller", url(at...), "--ca", ca, "--token", token, "--out", dir)
		s, err := client.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Written so far, checked against every node's record counts.
	want := map[string]int{"session": 0, "cert": 0, "revocation": 0, "signer": len(c.ctrls)}

	// Login at ctrl-us-east with an OIDC token, and an immediate connect
	// through the router of eu-west.
	tok, err := c.oidc.Mint("alice", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	alice := login("alice", tok, ctrlUS)
	want["session"]++
	want["cert"]++
	loggedIn := time.Now()
	conn, err := connect(c.roots, alice, edgeEU.listen, "")
	if err != nil {
		t.Fatalf("connect through %s right after the login at %s: %v", edgeEU.name, ctrlUS.name, err)
	}
	defer conn.Close()
	t.Logf("login at %s, connected through %s %v after the login returned", ctrlUS.name, edgeEU.name, time.Since(loggedIn).Round(time.Millisecond))

	// Rotation with the connection kept up: the new certificate connects
	// at once through ap-southeast.
	mustCLI(t, c.bin, "rotate", "--controller", url(ctrlEU), "--ca", ca, "--dir", filepath.Join(clients, "alice"))
	want["cert"]++
	rotated, err := client.LoadDir(filepath.Join(clients, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID != alice.ID || rotated.Serial == alice.Serial {
		t.Fatalf("rotation: session %s serial %s, want session %s and a serial other than %s", rotated.ID, rotated.Serial, alice.ID, alice.Serial)
	}
	if err := conn.echo("still up after the rotation"); err != nil {
		t.Fatalf("live connection after the rotation: %v", err)
	}
	conn2, err := connect(c.roots, rotated, edgeAP.listen, "")
	if err != nil {
		t.Fatalf("connect with the rotated certificate through %s: %v", edgeAP.name, err)
	}
	defer conn2.Close()

	// Revocation at ctrl-eu-west closes both live connections; every
	// router refuses both certificates from then on.
	revoking := time.Now()
	mustCLI(t, c.bin, append([]string{"revoke", "--controller", url(ctrlEU), "--ca", ca, "--session", alice.ID}, admin...)...)
	revoked := time.Since(revoking)
	want["revocation"]++
	for _, lc := range []struct {
		conn   *liveConn
		router *node
	}{{conn, edgeEU}, {conn2, edgeAP}} {
		if _, err := lc.conn.waitClosed(closeWithin); err != nil {
			t.Fatalf("live connection through %s after the revocation: %v", lc.router.name, err)
		}
		t.Logf("live connection through %s closed %v after `certmesh revoke` started (the command took %v)",
			lc.router.name, time.Since(revoking).Round(time.Millisecond), revoked.Round(time.Millisecond))
	}
	for _, r := range c.routers {
		for _, s := range []*client.Session{alice, rotated} {
			waitFor(t, 5*time.Second, "revoked certificate refused by "+r.name, func() error {
				return refused(c.roots, s, r.listen, "")
			})
		}
	}

	// A JWT signer's token works too (at ctrl-ap-southeast, from a file);
	// a bad token is refused with token_invalid and counted.
	tokFile := filepath.Join(clients, "bob.jwt")
	if err := os.WriteFile(tokFile, []byte(c.jwt.mint("bob")), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, c.bin, "login", "--controller", url(ctrlAP), "--ca", ca, "--token-file", tokFile, "--out", filepath.Join(clients, "bob"))
	want["session"]++
	want["cert"]++
	bad := runCLI(t, c.bin, "login", "--controller", url(ctrlAP), "--ca", ca, "--token", "not-a-token", "--out", filepath.Join(clients, "mallory"))
	if bad.code != 1 || !strings.Contains(bad.stderr, "token_invalid") {
		t.Errorf("login with a bad token: want exit 1 and token_invalid on stderr, got %v", bad)
	}
	c.waitConverged(t, want)

	// certmesh status, as a table and as JSON, of a controller and a
	// router.
	for _, n := range []*node{ctrlUS, edgeAP} {
		u := "http://" + n.metrics + "/v1/status"
		table := mustCLI(t, c.bin, "status", "--url", u).stdout
		for _, s := range append([]string{n.name, "session", "revocation"}, names(c.all())...) {
			if !strings.Contains(table, s) {
				t.Errorf("certmesh status --url %s: no %q in\n%s", u, s, table)
			}
		}
		var st client.Status
		js := mustCLI(t, c.bin, "status", "--url", u, "--json").stdout
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("certmesh status --json: %v\n%s", err, js)
		}
		if st.Node != n.name || st.Role != n.role || st.Region != n.region || len(st.Members) != 6 ||
			st.Records["session"] != want["session"] || len(st.VersionVector) != 3 || st.Digest == "" {
			t.Errorf("certmesh status --url %s --json: want node %s, role %s, region %s, 6 members, %d sessions, 3 authors and a digest; got\n%s",
				u, n.name, n.role, n.region, want["session"], js)
		}
		t.Logf("certmesh status --url %s:\n%s", u, table)
	}

	// Every promised metric, on every node of its kind.
	for _, n := range c.all() {
		body, err := httpGet("http://" + n.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		have := metricNames(body)
		wantNames := append([]string(nil), meshMetricNames...)
		if n.role == "controller" {
			wantNames = append(wantNames, controllerMetricNames...)
		} else {
			wantNames = append(wantNames, routerMetricNames...)
		}
		for _, m := range wantNames {
			if !have[m] {
				t.Errorf("%s /metrics: no %s", n.name, m)
			}
		}
	}

	// SIGKILL ctrl-ap-southeast: logins go on at the others, directly and
	// by failover from it.
	before, err := status(ctrlAP.metrics)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.procs[ctrlAP.name].kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	carol := login("carol", c.jwt.mint("carol"), ctrlUS)
	login("carol-failover", c.jwt.mint("carol-failover"), ctrlAP, ctrlEU)
	want["session"] += 2
	want["cert"] += 2
	mustCLI(t, c.bin, append([]string{"revoke", "--controller", url(ctrlUS), "--ca", ca, "--session", carol.ID}, admin...)...)
	want["revocation"]++
	waitFor(t, 5*time.Second, "with "+ctrlAP.name+" down, the revoked certificate refused by "+edgeUS.name, func() error {
		return refused(c.roots, carol, edgeUS.listen, "")
	})
	t.Logf("with %s killed: 2 logins and a revocation at the others in %v", ctrlAP.name, time.Since(killedAt).Round(time.Millisecond))

	// Restarted, it catches up: same digest as every other node, nothing
	// of its own lost, no new incarnation, seqs only grew.
	if err := c.procs[ctrlAP.name].start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	ready := c.waitReady(t, ctrlAP)
	caughtUp := c.waitConverged(t, want)
	t.Logf("%s restarted: ready after %v, same digest as every node after %v", ctrlAP.name, ready.Round(time.Millisecond), caughtUp.Round(time.Millisecond))
	after, err := status(ctrlAP.metrics)
	if err != nil {
		t.Fatal(err)
	}
	for author, seq := range before.VersionVector {
		if after.VersionVector[author] < seq {
			t.Errorf("%s after its restart: author %s at seq %d, was %d before", ctrlAP.name, author, after.VersionVector[author], seq)
		}
	}
	if len(after.VersionVector) != len(before.VersionVector) {
		t.Errorf("%s after its restart: authors %v, before %v (a restart with its data must keep its incarnation)", ctrlAP.name, sortedKeys(after.VersionVector), sortedKeys(before.VersionVector))
	}

	// Its next writes work and reach everyone.
	dave := login("dave", c.jwt.mint("dave"), ctrlAP)
	want["session"]++
	want["cert"]++
	c.waitConverged(t, want)
	for _, r := range []*node{edgeUS, edgeEU} {
		lc, err := connect(c.roots, dave, r.listen, "")
		if err != nil {
			t.Fatalf("login at the restarted %s, connect through %s: %v", ctrlAP.name, r.name, err)
		}
		lc.Close()
	}
	if dave.Controller != "https://"+ctrlAP.api {
		t.Errorf("dave's session came from %s, want the restarted %s", dave.Controller, ctrlAP.name)
	}
	c.checkDots(t)
	t.Logf("whole test: %v (restarted %s %v ago)", time.Since(began).Round(time.Millisecond), ctrlAP.name, time.Since(restarted).Round(time.Millisecond))
}

func names(ns []*node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.name)
	}
	return out
}

// waitConverged waits until every node holds the same digest and the
// record counts in want, and returns how long that took.
func (c *procCluster) waitConverged(t testing.TB, want map[string]int) time.Duration {
	t.Helper()
	return waitFor(t, convergeWithin, "every node converged", func() error {
		return converged(c.all(), want)
	})
}

// converged checks that nodes hold one digest and, if want is set, those
// record counts.
func converged(nodes []*node, want map[string]int) error {
	var errs []error
	digests := make(map[string][]string)
	for _, n := range nodes {
		st, err := status(n.metrics)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
			continue
		}
		digests[st.Digest] = append(digests[st.Digest], n.name)
		for k, v := range want {
			if st.Records[k] != v {
				errs = append(errs, fmt.Errorf("%s holds %d %s records, want %d", n.name, st.Records[k], k, v))
			}
		}
	}
	if len(digests) > 1 {
		errs = append(errs, fmt.Errorf("digests differ: %v", digests))
	}
	return errors.Join(errs...)
}

// checkDots checks on every node that the records held are exactly the
// dots written: the version vector's seqs add up to the record count, so
// no dot was used twice and none is missing.
func (c *procCluster) checkDots(t testing.TB) {
	t.Helper()
	if err := checkDots(c.all()); err != nil {
		t.Error(err)
	}
}

func checkDots(nodes []*node) error {
	var errs []error
	for _, n := range nodes {
		st, err := status(n.metrics)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var seqs uint64
		for _, s := range st.VersionVector {
			seqs += s
		}
		var recs int
		for _, r := range st.Records {
			recs += r
		}
		if seqs != uint64(recs) {
			errs = append(errs, fmt.Errorf("%s: version vector %v adds up to %d, but it holds %d records %v", n.name, st.VersionVector, seqs, recs, st.Records))
		}
	}
	return errors.Join(errs...)
}
