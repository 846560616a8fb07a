package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/testutil"
)

func TestClientCommandUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"router", "--config", filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml"}},
		{[]string{"router", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"login", "--controller", "https://127.0.0.1:1", "--ca", filepath.Join(dir, "ca.pem"), "--token", "t"}, []string{"--dir"}},
		{[]string{"login", "--controller", "https://127.0.0.1:1", "--ca", filepath.Join(dir, "ca.pem"), "--token", "t", "--out", dir}, []string{"--ca"}},
		{[]string{"login", "--ca", "x", "--token", "t", "--out", dir}, []string{"--controller"}},
		{[]string{"rotate", "--controller", "https://127.0.0.1:1", "--ca", "x"}, []string{"--dir"}},
		{[]string{"revoke", "--controller", "https://127.0.0.1:1", "--ca", "x", "--session", "00", "--identity", "a"}, []string{"--session"}},
		{[]string{"revoke", "--controller", "https://127.0.0.1:1", "--ca", "x"}, []string{"exactly one"}},
		{[]string{"revoke", "--controller", "https://127.0.0.1:1", "--ca", "x", "--serial", "zz"}, []string{"--serial"}},
		{[]string{"status"}, []string{"--url"}},
		{[]string{"status", "--url", "https://127.0.0.1:1"}, []string{"--ca"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			checkFailure(t, runCLI(tc.args...), 2, tc.want...)
		})
	}
}

// cluster is two controller processes, a router process and an HTTP
// upstream, all on loopback, over a PKI made by `certmesh pki init`.
type cluster struct {
	t        *testing.T
	base     string
	pki      string
	oidc     *devoidc.Server
	apis     map[string]string // controller name → API URL
	mons     map[string]string // node name → metrics host:port
	meshes   map[string]string // node name → mesh host:port
	procs    map[string]*process
	router   string // client listener
	upstream *httptest.Server
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	base := t.TempDir()
	c := &cluster{t: t, base: base, pki: filepath.Join(base, "pki"), apis: map[string]string{}, mons: map[string]string{},
		meshes: map[string]string{}, procs: map[string]*process{}}
	if r := runCLI("pki", "init", "--dir", c.pki, "--controllers", "c1,c2", "--routers", "r1"); r.code != 0 {
		t.Fatal(r)
	}
	var err error
	if c.oidc, err = devoidc.Start("127.0.0.1:0", devoidc.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.oidc.Close() })
	c.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from upstream %s\n", r.URL.Path)
	}))
	t.Cleanup(c.upstream.Close)
	for _, n := range []string{"c1", "c2", "r1"} {
		c.meshes[n], c.mons[n] = testutil.FreeAddr(t), testutil.FreeAddr(t)
	}
	c.router = testutil.FreeAddr(t)
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	for _, n := range []string{"c1", "c2"} {
		api := testutil.FreeAddr(t)
		c.apis[n] = "https://" + api
		c.write(n, fmt.Sprintf(`
node: {name: %s, region: %s}
mesh: {bind: %s, join: [%s, %s], key_file: ../pki/gossip.key, join_timeout: 300ms}
pki: {ca: ../pki/ca.pem, cert: ../pki/%s/cert.pem, key: ../pki/%s/key.pem}
api: {listen: %s}
auth:
  oidc: [{issuer: %q, audience: certmesh}]
metrics: {listen: %s}
`, n, map[string]string{"c1": "us-east", "c2": "eu-west"}[n], c.meshes[n], c.meshes["c1"], c.meshes["c2"], n, n, api, c.oidc.URL(), c.mons[n]))
	}
	c.write("r1", fmt.Sprintf(`
node: {name: r1, region: eu-west}
mesh: {bind: %s, join: [%s, %s], key_file: ../pki/gossip.key, join_timeout: 300ms}
pki: {ca: ../pki/ca.pem, cert: ../pki/r1/cert.pem, key: ../pki/r1/key.pem}
listen: %s
upstream: %s
admission: {mode: strict, pull_timeout: 2s}
metrics: {listen: %s}
`, c.meshes["r1"], c.meshes["c1"], c.meshes["c2"], c.router, strings.TrimPrefix(c.upstream.URL, "http://"), c.mons["r1"]))
	return c
}

func (c *cluster) write(name, yaml string) {
	if err := os.WriteFile(filepath.Join(c.base, "etc", name+".yaml"), []byte(yaml), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// run starts node name ("controller" or "router" mode) and waits until
// it is ready.
func (c *cluster) run(mode, name string) *process {
	c.t.Helper()
	p := start(c.t, mode, "--config", filepath.Join(c.base, "etc", name+".yaml"))
	c.procs[name] = p
	hc := &http.Client{Timeout: 2 * time.Second}
	testutil.Eventually(c.t, 30*time.Second, name+" to be ready", func() bool {
		select {
		case <-p.exited:
			c.t.Fatalf("%s exited: %s", name, p.out)
		default:
		}
		resp, err := hc.Get("http://" + c.mons[name] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (c *cluster) stop(name string) {
	c.t.Helper()
	p := c.procs[name]
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(c.t, 40*time.Second); code != 0 {
		c.t.Fatalf("%s: exit %d after SIGTERM\n%s", name, code, p.out)
	}
}

func (c *cluster) file(parts ...string) string {
	return filepath.Join(append([]string{c.pki}, parts...)...)
}

// login runs `certmesh login` at controller ctrl into dir.
func (c *cluster) login(ctrl, identity, dir string) {
	c.t.Helper()
	tok, err := c.oidc.Mint(identity, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	var r result
	testutil.Eventually(c.t, 15*time.Second, "a login", func() bool {
		r = runCLI("login", "--controller", c.apis[ctrl], "--ca", c.file("ca.pem"), "--token", tok, "--out", dir)
		return r.code == 0 || !strings.Contains(r.stderr, "issuer_unavailable")
	})
	if r.code != 0 || !strings.Contains(r.stdout, "session ") {
		c.t.Fatalf("login: %v", r)
	}
}

// dial connects to the router with the files in dir, the way a client
// holding them would.
func (c *cluster) dial(dir string) (*tls.Conn, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		c.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	roots.AppendCertsFromPEM(caPEM)
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", c.router,
		&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
}

// get makes an HTTP/1.1 request over conn and returns the status line.
func get(conn net.Conn, path string) (string, error) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: upstream\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.Status + " " + strings.TrimSpace(string(body)), nil
}

func TestRouterProcessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := newCluster(t)
	c.run("controller", "c1")
	c.run("controller", "c2")
	c.run("router", "r1")

	// Log in at c1 and connect at once through the router.
	alice := filepath.Join(c.base, "alice")
	c.login("c1", "alice", alice)
	if fi, err := os.Stat(filepath.Join(alice, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi, err)
	}
	live, err := c.dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if got, err := get(live, "/first"); err != nil || !strings.Contains(got, "200 OK hello from upstream /first") {
		t.Fatalf("through the router right after login: %q, %v", got, err)
	}

	// Interop: clients no one here wrote.
	t.Run("openssl", func(t *testing.T) { opensslThroughRouter(t, c, alice) })
	t.Run("curl", func(t *testing.T) { curlThroughRouter(t, c, alice, true) })

	// Rotation at c2: the live connection stays, the new cert works.
	sess := readSession(t, alice)
	r := runCLI("rotate", "--controller", c.apis["c2"], "--ca", c.file("ca.pem"), "--dir", alice)
	if r.code != 0 {
		t.Fatal(r)
	}
	if rotated := readSession(t, alice); rotated.SessionID != sess.SessionID || rotated.Serial == sess.Serial {
		t.Fatalf("after rotate: %+v, before %+v", rotated, sess)
	}
	if got, err := get(live, "/after-rotation"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("live connection after rotation: %q, %v", got, err)
	}

	// A fresh token for the session: c2 did not create it and says so
	// (503), c1 answers. The session is not bound to its token here
	// (session.bind_to_token is off), so its end stays.
	fresh, err := c.oidc.Mint("alice", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := readSession(t, alice)
	r = runCLI("refresh", "--controller", c.apis["c2"]+","+c.apis["c1"], "--ca", c.file("ca.pem"), "--dir", alice, "--token", fresh)
	if r.code != 0 || !strings.Contains(r.stdout, "session_expires "+before.SessionExpiresAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("refresh: %v, want the unchanged end %s", r, before.SessionExpiresAt)
	}
	if after := readSession(t, alice); after.SessionID != before.SessionID || after.Serial != before.Serial {
		t.Fatalf("after refresh: %+v, before %+v", after, before)
	}
	second, err := c.dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if got, err := get(second, "/new-cert"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("new certificate: %q, %v", got, err)
	}

	// Status of the router, as a table and as JSON.
	r = runCLI("status", "--url", "http://"+c.mons["r1"])
	if r.code != 0 || !strings.Contains(r.stdout, "MEMBER") || !strings.Contains(r.stdout, "c1") || !strings.Contains(r.stdout, "r1") {
		t.Fatalf("status: %v", r)
	}
	r = runCLI("status", "--url", "http://"+c.mons["r1"], "--json")
	var st client.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Role != "router" || st.Records["session"] != 1 {
		t.Fatalf("status --json: %v (%v)", r, err)
	}
	// A controller's API status with the admin certificate.
	r = runCLI("status", "--url", c.apis["c1"], "--ca", c.file("ca.pem"), "--admin-cert", c.file("admin", "cert.pem"), "--admin-key", c.file("admin", "key.pem"))
	if r.code != 0 || !strings.Contains(r.stdout, "role controller") {
		t.Fatalf("status of a controller: %v", r)
	}

	// A second client, to check the revocation closes only what it covers.
	bob := filepath.Join(c.base, "bob")
	c.login("c2", "bob", bob)
	bobConn, err := c.dial(bob)
	if err != nil {
		t.Fatal(err)
	}
	defer bobConn.Close()
	if _, err := get(bobConn, "/bob"); err != nil {
		t.Fatal(err)
	}

	// Revoke alice's session at c2 (she logged in at c1): both live
	// connections close, new ones are refused.
	r = runCLI("revoke", "--controller", c.apis["c2"], "--ca", c.file("ca.pem"), "--admin-cert", c.file("admin", "cert.pem"),
		"--admin-key", c.file("admin", "key.pem"), "--session", sess.SessionID)
	if r.code != 0 || !strings.Contains(r.stdout, "revoked session "+sess.SessionID) {
		t.Fatal(r)
	}
	for _, conn := range []*tls.Conn{live, second} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("a revoked connection got data")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a revoked live connection is still open 5s after the revocation")
		}
	}
	refused, err := c.dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(refused, "/"); err == nil || !strings.Contains(err.Error(), "revoked certificate") {
		t.Fatalf("revoked certificate: %q, %v", got, err)
	}
	refused.Close()
	t.Run("curl refused", func(t *testing.T) { curlThroughRouter(t, c, alice, false) })
	if got, err := get(bobConn, "/bob-again"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("bob after alice's revocation: %q, %v", got, err)
	}

	// Metrics: the router's, the mesh's and the process's, each once.
	resp, err := http.Get("http://" + c.mons["r1"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.LastIndexByte(line, ' ')]
		if seen[name] {
			t.Errorf("metric %s written twice", name)
		}
		seen[name] = true
	}
	for _, want := range []string{`certmesh_admissions_total{result="admitted"}`, `certmesh_admissions_total{result="session_revoked"}`,
		"certmesh_connections_active", `certmesh_connections_closed_total{reason="session_revoked"}`, `certmesh_pull_total{result="found"}`,
		`certmesh_records{kind="session"}`, "go_goroutines"} {
		if !seen[want] {
			t.Errorf("router metrics lack %s", want)
		}
	}

	// SIGHUP reloads the key files and the router keeps serving.
	// (The log line is checked once the process has exited.)
	r1 := c.procs["r1"]
	r1.cmd.Process.Signal(syscall.SIGHUP)
	if got, err := get(bobConn, "/after-sighup"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("after SIGHUP: %q, %v", got, err)
	}

	// Restart the router while no controller is reachable: it admits bob
	// from its snapshot at once and still refuses alice.
	bobConn.Close()
	c.stop("r1")
	if !strings.Contains(r1.out.String(), "key files reloaded") {
		t.Errorf("no reload after SIGHUP:\n%s", r1.out)
	}
	c.stop("c1")
	c.stop("c2")
	c.run("router", "r1")
	bob2, err := c.dial(bob)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	if got, err := get(bob2, "/after-restart"); err != nil || !strings.Contains(got, "200 OK") {
		t.Fatalf("bob after a restart without controllers: %q, %v", got, err)
	}
	refused, err = c.dial(alice)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	if _, err := get(refused, "/"); err == nil || !strings.Contains(err.Error(), "revoked certificate") {
		t.Fatalf("alice after a restart without controllers: %v", err)
	}
	c.stop("r1")
}

type sessionFile struct {
	SessionID        string    `json:"session_id"`
	Serial           string    `json:"serial"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
}

func readSession(t *testing.T, dir string) sessionFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "session.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s sessionFile
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// opensslThroughRouter sends an HTTP request through the router with
// openssl s_client, with the chain (-cert_chain, which repeats the leaf) and
// with the leaf alone (the router knows the intermediate from the
// controllers' signer records).
func opensslThroughRouter(t *testing.T, c *cluster, dir string) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed; the interop check with openssl s_client is skipped")
	}
	for _, chain := range []bool{true, false} {
		args := []string{"s_client", "-connect", c.router, "-tls1_3", "-quiet", "-verify_return_error",
			"-CAfile", filepath.Join(dir, "ca.pem"), "-cert", filepath.Join(dir, "cert.pem"), "-key", filepath.Join(dir, "key.pem")}
		if chain {
			args = append(args, "-cert_chain", filepath.Join(dir, "cert.pem"))
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader("GET /openssl HTTP/1.0\r\nHost: upstream\r\n\r\n")
		done := make(chan struct{})
		timer := time.AfterFunc(20*time.Second, func() {
			select {
			case <-done:
			default:
				cmd.Process.Kill()
			}
		})
		out, err := cmd.CombinedOutput()
		close(done)
		timer.Stop()
		if err != nil || !strings.Contains(string(out), "hello from upstream /openssl") {
			t.Errorf("openssl s_client (chain %v): %v\n%s", chain, err, out)
		}
	}
}

// curlThroughRouter makes an HTTPS request with curl through the router,
// expecting it to work or to be refused.
func curlThroughRouter(t *testing.T, c *cluster, dir string, admitted bool) {
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed; the interop check with curl is skipped")
	}
	_, port, _ := net.SplitHostPort(c.router)
	cmd := exec.Command(bin, "-sS", "--max-time", "20", "--tlsv1.3", "--cacert", filepath.Join(dir, "ca.pem"),
		"--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem"),
		"https://localhost:"+port+"/curl")
	out, err := cmd.CombinedOutput()
	switch {
	case admitted && (err != nil || !strings.Contains(string(out), "hello from upstream /curl")):
		t.Errorf("curl: %v\n%s", err, out)
	case !admitted && err == nil:
		t.Errorf("curl with a revoked certificate got through:\n%s", out)
	}
}

// A router must serve under its own certificate: a controller's
// intermediate, another router's leaf or a leaf of another root under its
// name stops it at start, exit 2, with one line naming the file.
func TestRouterRefusesACertificateThatIsNotItsOwn(t *testing.T) {
	base := t.TempDir()
	dir, other := filepath.Join(base, "pki"), filepath.Join(base, "other")
	if r := runCLI("pki", "init", "--dir", dir, "--controllers", "c1", "--routers", "r1,r2"); r.code != 0 {
		t.Fatal(r)
	}
	if r := runCLI("pki", "init", "--dir", other, "--controllers", "c1", "--routers", "r1"); r.code != 0 {
		t.Fatal(r)
	}
	for _, tc := range []struct{ name, certDir, want string }{
		{"a controller's intermediate", filepath.Join(dir, "c1"), "spiffe://certmesh/controller/c1, not of router r1"},
		{"another router's certificate", filepath.Join(dir, "r2"), "spiffe://certmesh/router/r2, not of router r1"},
		{"its name from another root", filepath.Join(other, "r1"), "does not chain to the root CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(base, "r1.yaml")
			yaml := fmt.Sprintf("node: {name: r1}\nmesh: {bind: %s, key_file: %s}\npki: {ca: %s, cert: %s, key: %s}\nlisten: %s\nupstream: 127.0.0.1:9\nmetrics: {listen: \"\"}\n",
				testutil.FreeAddr(t), filepath.Join(dir, "gossip.key"), filepath.Join(dir, "ca.pem"), filepath.Join(tc.certDir, "cert.pem"),
				filepath.Join(tc.certDir, "key.pem"), testutil.FreeAddr(t))
			if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			p := start(t, "router", "--config", cfg)
			if code := p.wait(t, 10*time.Second); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			out := p.out.String()
			for _, want := range []string{"pki.cert", filepath.Join(tc.certDir, "cert.pem"), tc.want} {
				if strings.Count(out, "\n") != 1 || !strings.Contains(out, want) {
					t.Errorf("output %q is not one line holding %q", out, want)
				}
			}
		})
	}
}

// pki init puts each --hosts entry on its own router only; a host that
// names no router, given with several, is a usage error that says what to
// write, and nothing is written.
func TestPKIInitHostsArePerRouter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	checkFailure(t, runCLI("pki", "init", "--dir", dir, "--controllers", "c1", "--routers", "r1,r2", "--hosts", "lb.example.net"),
		2, "--hosts", "r1=lb.example.net", "*=lb.example.net")
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused pki init wrote files")
	}
	if r := runCLI("pki", "init", "--dir", dir, "--controllers", "c1", "--routers", "r1,r2", "--hosts", "r1=10.0.0.1,r2.example.net"); r.code != 0 {
		t.Fatal(r)
	}
	for router, want := range map[string]string{"r1": "10.0.0.1", "r2": "r2.example.net"} {
		certs, err := os.ReadFile(filepath.Join(dir, router, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
		pool.AppendCertsFromPEM(ca)
		cert, err := tls.X509KeyPair(certs, mustRead(t, filepath.Join(dir, router, "key.pem")))
		if err != nil {
			t.Fatal(err)
		}
		for _, host := range []string{"10.0.0.1", "r2.example.net"} {
			_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool})
			if (err == nil) != (host == want) {
				t.Errorf("%s answers for %s: %v, want %v", router, host, err == nil, host == want)
			}
		}
	}
	checkFailure(t, runCLI("pki", "add", "--dir", dir, "--routers", "r3", "--hosts", "r9=h.example.net"), 2, "--hosts", `"r9" is not one of the routers given`)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A second router started with a member's name (its files copied to
// another host) stops with exit 2 and says why; the first keeps serving.
func TestSecondRouterWithATakenNameStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := newCluster(t)
	c.run("controller", "c1")
	c.run("router", "r1")
	c.write("r1-copy", fmt.Sprintf(`
node: {name: r1, region: eu-west, data_dir: ../data/r1-copy}
mesh: {bind: %s, join: [%s], key_file: ../pki/gossip.key, join_timeout: 300ms}
pki: {ca: ../pki/ca.pem, cert: ../pki/r1/cert.pem, key: ../pki/r1/key.pem}
listen: %s
upstream: 127.0.0.1:9
metrics: {listen: %s}
`, testutil.FreeAddr(t), c.meshes["c1"], testutil.FreeAddr(t), testutil.FreeAddr(t)))
	p := start(t, "router", "--config", filepath.Join(c.base, "etc", "r1-copy.yaml"))
	if code := p.wait(t, 20*time.Second); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out := p.out.String(); !strings.Contains(out, "certmesh: node.name: gossip: another live member of the mesh is named r1 (it answers at "+c.meshes["r1"]+")") {
		t.Errorf("output lacks the reason:\n%s", out)
	}
	resp, err := http.Get("http://" + c.mons["r1"] + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the first r1 after the second stopped: %v %v", resp, err)
	}
	resp.Body.Close()
	c.stop("r1")
}

func TestRouterHelpListsEverySetting(t *testing.T) {
	r := runCLI("router", "--help")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, s := range config.Settings(config.DefaultRouter()) {
		if !strings.Contains(r.stdout, "--"+s.Path) || !strings.Contains(r.stdout, "$"+s.Env) {
			t.Errorf("help lacks %s / %s", s.Path, s.Env)
		}
	}
	for _, want := range []string{"--handshake.flight_timeout", "(default: 5s)", "--handshake.max_pending value", "(default: 4096)",
		"--handshake.max_pending_per_source", "(default: 64)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
