//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/client"
)

// The cluster every test runs: one controller and one router in each of
// three regions.
var regions = []string{"us-east", "eu-west", "ap-southeast"}

func controllerName(region string) string { return "ctrl-" + region }
func routerName(region string) string     { return "edge-" + region + "-1" }

// JWT signer settings shared by the generated configs, the static ones in
// docker/config and docker/devtoken.
const (
	jwtIssuer   = "dev-signer"
	jwtAudience = "certmesh"
)

// Bounds of the waits (generous: CI runs the e2e tests beside the others on
// two cores).
const (
	readyWithin    = 45 * time.Second // a cluster from start to every node ready and seeing every other
	convergeWithin = 45 * time.Second // every node holding the same state after a change or a heal
	closeWithin    = 10 * time.Second // a live connection closed after its revocation
	cliTimeout     = 60 * time.Second // one CLI command
	pollEvery      = 25 * time.Millisecond
)

var (
	moduleRoot string // the repository, where go build runs
	buildDir   string // the binaries built for this run; removed by TestMain
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	moduleRoot = root
	if buildDir, err = os.MkdirTemp("", "certmesh-e2e-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeImages()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// build is one `go build` of a main package, done once per test binary.
type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package path -> *build

// goBuild builds the main package pkg (a path relative to the repository,
// like ./cmd/certmesh) into a static binary (CGO_ENABLED=0), once per run.
func goBuild(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		start := time.Now()
		b.path = filepath.Join(buildDir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.path, pkg)
		cmd.Dir = moduleRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			return
		}
		t.Logf("built %s in %v", pkg, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// certmeshBinary is the static certmesh binary under test:
// $CERTMESH_E2E_BINARY, or ./cmd/certmesh built for this run.
func certmeshBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CERTMESH_E2E_BINARY"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	return goBuild(t, "./cmd/certmesh")
}

// cliResult is what one certmesh command printed and how it exited.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("certmesh %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs the certmesh binary with args and returns what it printed.
func runCLI(t testing.TB, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("certmesh %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustCLI runs a certmesh command that must succeed.
func mustCLI(t testing.TB, bin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, bin, args...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// pkiInit runs `certmesh pki init` for the cluster's nodes into dir.
func pkiInit(t testing.TB, bin, dir string, hosts ...string) {
	t.Helper()
	var ctrls, routers []string
	for _, r := range regions {
		ctrls = append(ctrls, controllerName(r))
		routers = append(routers, routerName(r))
	}
	args := []string{"pki", "init", "--dir", dir, "--controllers", strings.Join(ctrls, ","), "--routers", strings.Join(routers, ",")}
	if len(hosts) > 0 {
		args = append(args, "--hosts", strings.Join(hosts, ","))
	}
	mustCLI(t, bin, args...)
}

// waitFor polls cond every pollEvery until it returns nil, and fails the
// test with cond's last error when within has passed. It returns how long
// it waited.
func waitFor(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	d, err := poll(within, cond)
	if err != nil {
		t.Fatalf("%s: not within %v: %v", what, within, err)
	}
	return d
}

// poll is waitFor without the test: it returns cond's last error on
// timeout.
func poll(within time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return time.Since(start), err
		}
		<-tick.C
	}
}

// httpGet fetches url with a short timeout and returns the body of a 200.
func httpGet(url string) ([]byte, error) {
	hc := http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// status fetches a node's /v1/status from its metrics listener.
func status(metricsAddr string) (*client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return client.FetchStatus(ctx, &http.Client{Timeout: 3 * time.Second}, "http://"+metricsAddr)
}

// aliveMembers counts the members a status shows alive.
func aliveMembers(st *client.Status) int {
	n := 0
	for _, m := range st.Members {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// metricNames returns the metric names in a Prometheus text exposition.
func metricNames(body []byte) map[string]bool {
	names := make(map[string]bool)
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// jwtSigner is an external JWT signer (docs/deploy.md, auth.jwt) whose
// public key the controllers read from a keys_file. Its files are those of
// docker/devtoken: a PKCS #8 private key, and the public key with a kid
// header, the first 8 bytes of the SHA-256 of its DER in hex.
type jwtSigner struct {
	key *ecdsa.PrivateKey
	kid string
}

// newJWTSigner makes a signing key and writes its public key, with its
// kid, to keysFile.
func newJWTSigner(t testing.TB, keysFile string) *jwtSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, der := signerOf(t, key)
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": s.kid}, Bytes: der})
	if err := os.MkdirAll(filepath.Dir(keysFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keysFile, block, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// loadJWTSigner reads the private key docker/devtoken wrote.
func loadJWTSigner(t testing.TB, keyFile string) *jwtSigner {
	t.Helper()
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T, want an ECDSA key", keyFile, k)
	}
	s, _ := signerOf(t, key)
	return s
}

func signerOf(t testing.TB, key *ecdsa.PrivateKey) (*jwtSigner, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return &jwtSigner{key: key, kid: hex.EncodeToString(sum[:8])}, der
}

// mint returns a token for subject, valid for ten minutes.
func (s *jwtSigner) mint(subject string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": subject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.key)
	if err != nil {
		panic(err) // an ECDSA P-256 key always signs
	}
	return out
}

// clientConfig is an SDK config that trusts the cluster's root and talks
// to the given controllers, with timeouts short enough for a test that
// cuts nodes off.
func clientConfig(roots *x509.CertPool, controllers ...string) client.Config {
	cfg := client.DefaultConfig()
	for _, c := range controllers {
		cfg.Controllers = append(cfg.Controllers, "https://"+c)
	}
	cfg.RootCAs = roots
	cfg.HTTPTimeout = 3 * time.Second
	cfg.DialTimeout = 3 * time.Second
	return cfg
}

func loadRoots(t testing.TB, caFile string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", caFile)
	}
	return pool
}

func loadAdmin(t testing.TB, pkiDir string) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin", "cert.pem"), filepath.Join(pkiDir, "admin", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// liveConn is a client connection through a router to the echo upstream.
type liveConn struct {
	*tls.Conn
	r *bufio.Reader
}

// connect dials routerAddr with sess's certificate (serverName is the name
// the router's certificate is checked against; empty for the address's
// host) and makes one echo round trip: a refusal shows there
// (client.IsRefused).
func connect(roots *x509.CertPool, sess *client.Session, routerAddr, serverName string) (*liveConn, error) {
	cert := sess.TLSCertificate()
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(routerAddr)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: &tls.Config{
		RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", routerAddr)
	if err != nil {
		return nil, err
	}
	lc := &liveConn{Conn: c.(*tls.Conn), r: bufio.NewReader(c)}
	if err := lc.echo("hello " + sess.Serial); err != nil {
		c.Close()
		return nil, err
	}
	return lc, nil
}

// echo sends msg and expects it back from the echo upstream.
func (c *liveConn) echo(msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if got := strings.TrimSuffix(line, "\n"); got != msg {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// waitClosed waits until the router closes the connection and returns how
// long that took.
func (c *liveConn) waitClosed(within time.Duration) (time.Duration, error) {
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	for {
		if _, err := c.r.ReadByte(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return time.Since(start), fmt.Errorf("connection still open after %v", within)
			}
			return time.Since(start), nil
		}
	}
}

// refused reports whether connecting with sess through routerAddr is
// refused by the router (as opposed to admitted, or failing otherwise).
func refused(roots *x509.CertPool, sess *client.Session, routerAddr, serverName string) error {
	c, err := connect(roots, sess, routerAddr, serverName)
	if err == nil {
		c.Close()
		return fmt.Errorf("serial %s admitted by %s", sess.Serial, routerAddr)
	}
	if !client.IsRefused(err) {
		return fmt.Errorf("serial %s at %s: not a refusal: %v", sess.Serial, routerAddr, err)
	}
	return nil
}

// echoServer is the plain TCP upstream behind the routers of the process
// cluster: it sends back every byte it reads.
func echoServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := make(map[net.Conn]bool)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// sessionInfo is one entry of the admin GET /v1/sessions?identity= answer.
type sessionInfo struct {
	SessionID    string `json:"session_id"`
	Identity     string `json:"identity"`
	Status       string `json:"status"`
	Certificates []struct {
		Serial string `json:"serial"`
		Status string `json:"status"`
	} `json:"certificates"`
}

// adminHTTP is an HTTPS client presenting the admin certificate.
func adminHTTP(roots *x509.CertPool, admin tls.Certificate) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots, Certificates: []tls.Certificate{admin}, MinVersion: tls.VersionTLS12,
		}},
	}
}

// listSessions asks a controller (host:port of its API) for identity's
// sessions.
func listSessions(hc *http.Client, api, identity string) ([]sessionInfo, error) {
	resp, err := hc.Get("https://" + api + "/v1/sessions?identity=" + identity)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/sessions at %s: %s: %s", api, resp.Status, bytes.TrimSpace(body))
	}
	var out struct {
		Sessions []sessionInfo `json:"sessions"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// tailFile returns the last n bytes of a file, from a line start.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(fi.Size()-n, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return err.Error()
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
		return "[...]\n" + string(buf)
	}
	return string(buf)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
