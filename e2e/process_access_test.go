package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
)

// httpService is a plain HTTP upstream that answers every request with its
// name, so that a test tells which service a request reached.
func httpService(t *testing.T, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "service %s\n", name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestProcessAccess: services, policies and identity roles over the OS
// process cluster. An admin defines them with the CLI at one controller;
// curl and openssl reach two services through one router by SNI, verifying
// the router's certificate under the service's name, and a client without
// a grant gets the access_denied alert; a policy removed at a controller
// closes a live connection at a router in another region, and a
// connection that another policy grants stays up.
func TestProcessAccess(t *testing.T) {
	c := startProcCluster(t)
	ctrlUS, ctrlEU := c.ctrls[0], c.ctrls[1]
	edgeUS, edgeAP := c.routers[0], c.routers[2]
	ca := filepath.Join(c.pkiDir, "ca.pem")
	admin := func(at *node, args ...string) string {
		t.Helper()
		return mustCLI(t, c.bin, append(args, "--controller", "https://"+at.api, "--ca", ca,
			"--admin-cert", filepath.Join(c.pkiDir, "admin", "cert.pem"), "--admin-key", filepath.Join(c.pkiDir, "admin", "key.pem"))...).stdout
	}
	clients := t.TempDir()
	login := func(identity string) (*client.Session, string) {
		t.Helper()
		tok, err := c.oidc.Mint(identity, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(clients, identity)
		mustCLI(t, c.bin, "login", "--controller", "https://"+ctrlUS.api, "--ca", ca, "--token", tok, "--out", dir)
		s, err := client.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s, dir
	}

	// Identities are namespaced (two auth entries): read them off the
	// sessions.
	alice, aliceDir := login("alice")
	bob, bobDir := login("bob")
	admin(ctrlUS, "service", "put", "echo", "--address", httpService(t, "echo"), "--role", "public")
	admin(ctrlUS, "service", "put", "web", "--address", httpService(t, "web"))
	admin(ctrlUS, "service", "put", "stream", "--address", echoServer(t), "--role", "public")
	admin(ctrlUS, "identity", "roles", alice.Identity, "--set", "ops")
	admin(ctrlUS, "policy", "put", "ops-all", "--identities", "#ops", "--services", "@echo,@web,@stream")
	admin(ctrlUS, "policy", "put", "bob-public", "--identities", "@"+bob.Identity, "--services", "#public")
	if out := admin(ctrlEU, "access", alice.Identity); !strings.Contains(out, "ops-all") || !strings.Contains(out, "web") {
		t.Errorf("certmesh access %s at %s:\n%s", alice.Identity, ctrlEU.name, out)
	}

	// curl, verifying the router's certificate under each service's name.
	_, port, _ := net.SplitHostPort(edgeUS.listen)
	curl := func(dir, service string) (string, error) {
		host := service + ".svc.certmesh"
		out, err := exec.Command("curl", "-sS", "--max-time", "5", "--resolve", host+":"+port+":127.0.0.1",
			"--cacert", ca, "--cert", filepath.Join(dir, client.CertFile), "--key", filepath.Join(dir, client.KeyFile),
			"https://"+host+":"+port+"/").CombinedOutput()
		return string(out), err
	}
	for _, svc := range []string{"echo", "web"} {
		waitFor(t, 10*time.Second, "curl to reach "+svc+" through "+edgeUS.name, func() error {
			out, err := curl(aliceDir, svc)
			if err != nil || out != "service "+svc+"\n" {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	}
	if out, err := curl(bobDir, "web"); err == nil || !strings.Contains(out, "access denied") {
		t.Errorf("curl as bob to web, which no policy grants him: %v %q, want the access denied alert", err, out)
	}
	if out, err := curl(aliceDir, "nope"); err == nil || !strings.Contains(out, "unrecognized name") {
		t.Errorf("curl to an unknown service: %v %q, want the unrecognized name alert", err, out)
	}
	// openssl: the chain verifies under web.svc.certmesh, then the alert.
	sc := exec.Command("openssl", "s_client", "-connect", edgeUS.listen, "-servername", "web.svc.certmesh",
		"-CAfile", ca, "-verify_return_error", "-verify_hostname", "web.svc.certmesh",
		"-cert", filepath.Join(bobDir, client.CertFile), "-key", filepath.Join(bobDir, client.KeyFile), "-ign_eof")
	sc.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
	out, _ := sc.CombinedOutput()
	if s := string(out); !strings.Contains(s, "Verify return code: 0 (ok)") || !strings.Contains(s, "access denied") {
		t.Errorf("openssl s_client as bob to web: want a verified router certificate and the access denied alert, got\n%s", s)
	}

	// Live connections through the router of ap-southeast; the policy
	// removed at eu-west closes alice's, bob's (bob-public) stays up.
	live := func(s *client.Session) *liveConn {
		t.Helper()
		var lc *liveConn
		waitFor(t, 10*time.Second, "a connection to stream through "+edgeAP.name, func() error {
			var err error
			lc, err = connect(c.roots, s, edgeAP.listen, "stream.svc.certmesh")
			return err
		})
		return lc
	}
	aliceConn, bobConn := live(alice), live(bob)
	defer aliceConn.Close()
	defer bobConn.Close()
	removing := time.Now()
	admin(ctrlEU, "policy", "rm", "ops-all")
	took, err := aliceConn.waitClosed(closeWithin)
	if err != nil {
		t.Fatalf("alice's connection through %s after the policy removal at %s: %v", edgeAP.name, ctrlEU.name, err)
	}
	t.Logf("policy removed at %s: alice's live connection through %s closed %v after `certmesh policy rm` started (%v after it returned)",
		ctrlEU.name, edgeAP.name, time.Since(removing).Round(time.Millisecond), took.Round(time.Millisecond))
	if err := bobConn.echo("still granted"); err != nil {
		t.Errorf("bob's connection, granted by another policy: %v", err)
	}
	waitFor(t, 5*time.Second, "alice refused at stream by every router", func() error {
		var errs []error
		for _, r := range c.routers {
			lc, err := connect(c.roots, alice, r.listen, "stream.svc.certmesh")
			if err == nil {
				lc.Close()
				errs = append(errs, fmt.Errorf("%s admitted alice to stream", r.name))
			} else if !client.IsAccessDenied(err) {
				errs = append(errs, fmt.Errorf("%s: %v", r.name, err))
			}
		}
		return errors.Join(errs...)
	})
	// A router configured with upstream only: no SNI still reaches it.
	lc, err := connect(c.roots, alice, edgeUS.listen, "")
	if err != nil {
		t.Fatalf("connect with no service named, to the upstream: %v", err)
	}
	lc.Close()
	for _, r := range c.routers {
		body, err := httpGet("http://" + r.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if have := metricNames(body); !have["certmesh_access_denied_total"] {
			t.Errorf("%s /metrics: no certmesh_access_denied_total", r.name)
		}
	}
}
