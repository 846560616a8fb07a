//go:build unix

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
)

// TestDockerCluster runs docker/compose.yml's three-region cluster, each
// node a container FROM scratch with its own address on a private bridge
// network, and walks a client through it from the host: login, connect
// through a router in another container, rotation, revocation closing the
// live connection.
func TestDockerCluster(t *testing.T) {
	began := time.Now()
	d := startDockerCluster(t)
	ctrlUS, ctrlEU, ctrlAP := d.ctrls[0], d.ctrls[1], d.ctrls[2]
	edgeEU := d.routers[1]
	ca := filepath.Join(d.pkiDir, "ca.pem")
	dir := filepath.Join(t.TempDir(), "alice")

	// Login at ctrl-us-east with a token from docker/devtoken, and connect
	// at once through the router of eu-west, another container.
	mustCLI(t, d.bin, "login", "--controller", "https://"+ctrlUS.api, "--ca", ca, "--token", d.token(t, "alice"), "--out", dir)
	alice, err := client.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	loggedIn := time.Now()
	conn, err := connect(d.roots, alice, edgeEU.listen, edgeEU.name)
	if err != nil {
		t.Fatalf("connect through %s (%s) right after the login at %s: %v", edgeEU.name, edgeEU.listen, ctrlUS.name, err)
	}
	defer conn.Close()
	t.Logf("login at %s, connected through %s %v after the login returned", ctrlUS.name, edgeEU.name, time.Since(loggedIn).Round(time.Millisecond))

	// Rotation at ctrl-eu-west; the connection stays up.
	mustCLI(t, d.bin, "rotate", "--controller", "https://"+ctrlEU.api, "--ca", ca, "--dir", dir)
	rotated, err := client.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.echo("still up after the rotation"); err != nil {
		t.Fatalf("live connection after the rotation: %v", err)
	}

	// Access: service echo (the echo container) granted to alice by a
	// policy set at ctrl-us-east; a connection naming it by SNI through
	// eu-west's router is closed when ctrl-ap-southeast removes the policy,
	// while the connection to the router's upstream stays up.
	adminFlags := []string{"--ca", ca, "--admin-cert", filepath.Join(d.pkiDir, "admin", "cert.pem"),
		"--admin-key", filepath.Join(d.pkiDir, "admin", "key.pem")}
	mustCLI(t, d.bin, append([]string{"service", "put", "echo", "--address", d.net + ".30:7000", "--controller", "https://" + ctrlUS.api}, adminFlags...)...)
	mustCLI(t, d.bin, append([]string{"policy", "put", "alice-echo", "--identities", "@" + alice.Identity, "--services", "@echo",
		"--controller", "https://" + ctrlUS.api}, adminFlags...)...)
	var byName *liveConn
	waitFor(t, 10*time.Second, "a connection to service echo through "+edgeEU.name, func() error {
		var err error
		byName, err = connect(d.roots, rotated, edgeEU.listen, "echo.svc.certmesh")
		return err
	})
	defer byName.Close()
	removing := time.Now()
	mustCLI(t, d.bin, append([]string{"policy", "rm", "alice-echo", "--controller", "https://" + ctrlAP.api}, adminFlags...)...)
	if _, err := byName.waitClosed(closeWithin); err != nil {
		t.Fatalf("connection to echo through %s after the policy removal at %s: %v", edgeEU.name, ctrlAP.name, err)
	}
	t.Logf("connection to service echo through %s closed %v after `certmesh policy rm` at %s started", edgeEU.name,
		time.Since(removing).Round(time.Millisecond), ctrlAP.name)
	if err := conn.echo("the upstream connection is not the policy's"); err != nil {
		t.Fatalf("live connection to the upstream after the policy removal: %v", err)
	}

	// Revocation at ctrl-ap-southeast closes it; every router refuses both
	// certificates.
	revoking := time.Now()
	mustCLI(t, d.bin, "revoke", "--controller", "https://"+ctrlAP.api, "--ca", ca,
		"--admin-cert", filepath.Join(d.pkiDir, "admin", "cert.pem"), "--admin-key", filepath.Join(d.pkiDir, "admin", "key.pem"),
		"--session", alice.ID)
	if _, err := conn.waitClosed(closeWithin); err != nil {
		t.Fatalf("live connection through %s after the revocation at %s: %v", edgeEU.name, ctrlAP.name, err)
	}
	t.Logf("live connection through %s closed %v after `certmesh revoke` at %s started", edgeEU.name, time.Since(revoking).Round(time.Millisecond), ctrlAP.name)
	for _, r := range d.routers {
		for _, s := range []*client.Session{alice, rotated} {
			waitFor(t, 5*time.Second, "revoked certificate refused by "+r.name, func() error {
				return refused(d.roots, s, r.listen, r.name)
			})
		}
	}

	// Every container holds the same state; certmesh status reads it.
	want := map[string]int{"session": 1, "cert": 2, "revocation": 1, "signer": 3, "service": 1, "policy": 2}
	waitFor(t, convergeWithin, "every container converged", func() error { return converged(d.all(), want) })
	table := mustCLI(t, d.bin, "status", "--url", "http://"+edgeEU.metrics).stdout
	for _, n := range d.all() {
		if !strings.Contains(table, n.name) {
			t.Errorf("certmesh status of %s: no member %s in\n%s", edgeEU.name, n.name, table)
		}
	}
	if err := checkDots(d.all()); err != nil {
		t.Error(err)
	}
	t.Logf("whole test, images and teardown aside: %v", time.Since(began).Round(time.Millisecond))
}
