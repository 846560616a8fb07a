package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/issuer"
)

// mainEnv makes the test binary run certmesh's main instead of the tests,
// so that tests can start it as a process.
const mainEnv = "CERTMESH_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) != "" {
		os.Exit(run(append([]string{"certmesh"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(args ...string) result {
	var out, errb bytes.Buffer
	code := run(append([]string{"certmesh"}, args...), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// checkFailure checks the exit code and that stderr is one line holding
// every one of want.
func checkFailure(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%v, want exit %d", r, code)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "certmesh: ") {
		t.Errorf("stderr is not one line: %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"bogus"}, []string{`unknown command "bogus"`}},
		{[]string{"--bogus"}, []string{"bogus"}},
		{[]string{"pki", "bogus"}, []string{`unknown command "bogus"`}},
		{[]string{"pki", "init", "--controllers", "a"}, []string{"--dir"}},
		{[]string{"pki", "init", "--dir", dir}, []string{"--controllers"}},
		{[]string{"pki", "init", "--dir", dir, "--controllers", "A_1"}, []string{"--controllers"}},
		{[]string{"pki", "init", "--dir", dir, "--controllers", "a", "--routers", "a"}, []string{"--routers", "unique"}},
		{[]string{"pki", "init", "--dir", dir, "--controllers", "a", "--trust-domain", "Bad Domain"}, []string{"--trust-domain"}},
		{[]string{"pki", "init", "--dir", dir, "--controllers", "a", "--hosts", "not a host"}, []string{"--hosts"}},
		{[]string{"pki", "init", "--dir", dir, "--controllers", "a", "extra"}, []string{"extra"}},
		{[]string{"pki", "init", "--dir"}, []string{"dir"}},
		{[]string{"pki", "rotate-controller", "--dir", dir}, []string{"NAME"}},
		{[]string{"pki", "revoke-controller", "--dir", dir, "c1"}, []string{"--controller"}},
		{[]string{"controller", "--config", filepath.Join(dir, "missing.yaml")}, []string{"missing.yaml"}},
		{[]string{"controller", "--api.rate_limit", "lots"}, []string{"--api.rate_limit"}},
		{[]string{"controller", "--log-level", "loud", "--node.name", "c1"}, []string{"mesh.key_file"}}, // config first
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			checkFailure(t, runCLI(tc.args...), 2, tc.want...)
		})
	}
}

func TestPKIInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	r := runCLI("pki", "init", "--dir", dir, "--controllers", "c1,c2", "--routers", "r1", "--hosts", "edge.example.com,10.0.0.1")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, f := range []string{"ca.pem", "ca.key", "gossip.key", "c1/cert.pem", "c1/key.pem", "c2/cert.pem", "r1/key.pem", "admin/cert.pem", "admin/key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if strings.HasSuffix(f, ".key") || strings.HasSuffix(f, "key.pem") {
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v", f, st.Mode().Perm())
			}
		}
		if !strings.Contains(r.stdout, filepath.Join(dir, f)) {
			t.Errorf("stdout does not list %s", f)
		}
	}
	checkFailure(t, runCLI("pki", "init", "--dir", dir, "--controllers", "c1"), 1, filepath.Join(dir, "ca.pem"), "--force")
	if r := runCLI("pki", "init", "--dir", dir, "--controllers", "c1", "--force"); r.code != 0 {
		t.Error(r)
	}
	r = runCLI("pki", "rotate-controller", "--dir", dir, "c1")
	if r.code != 0 || !strings.Contains(r.stdout, "SIGHUP") {
		t.Error(r)
	}
	checkFailure(t, runCLI("pki", "rotate-controller", "--dir", dir, "c9"), 1, "c9")
}

func TestControllerHelpListsEverySetting(t *testing.T) {
	r := runCLI("controller", "--help")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, s := range config.Settings(config.DefaultController()) {
		if !strings.Contains(r.stdout, "--"+s.Path) || !strings.Contains(r.stdout, "$"+s.Env) {
			t.Errorf("help lacks %s / %s", s.Path, s.Env)
		}
	}
	for _, want := range []string{"(default: 1h)", "(default: 5m)", "(default: 24h)", "(default: 50)", "(default: 127.0.0.1:8443)", "--config"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// process is certmesh run as a child process.
type process struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
}

func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), out: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), mainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("process output:\n%s", p.out)
		}
	})
	return p
}

func (p *process) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("process still running after %v", d)
		return -1
	}
}

func TestControllerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	base := t.TempDir()
	pkiDir := filepath.Join(base, "pki")
	if r := runCLI("pki", "init", "--dir", pkiDir, "--controllers", "c1,c2"); r.code != 0 {
		t.Fatal(r)
	}
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer oidc.Close()
	apiAddr, mon := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfgDir := filepath.Join(base, "etc")
	os.MkdirAll(cfgDir, 0o755)
	cfgFile := filepath.Join(cfgDir, "c1.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
node: {name: c1, region: us-east}
mesh:
  bind: %s
  key_file: ../pki/gossip.key
  join_timeout: 200ms
pki: {ca: ../pki/ca.pem, cert: ../pki/c1/cert.pem, key: ../pki/c1/key.pem}
api: {listen: %s}
auth:
  oidc: [{issuer: %q, audience: certmesh}]
metrics: {listen: %s}
`, testutil.FreeAddr(t), "127.0.0.1:1", oidc.URL(), mon)), 0o600)

	// A flag beats the file; the data dir defaults to data/c1 beside it.
	p := start(t, "controller", "--config", cfgFile, "--api.listen", apiAddr)
	client := &http.Client{Timeout: 5 * time.Second}
	testutil.Eventually(t, 20*time.Second, "the controller to be ready", func() bool {
		resp, err := client.Get("http://" + mon + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if _, err := os.Stat(filepath.Join(cfgDir, "data", "c1", issuer.DBFile)); err != nil {
		t.Errorf("data dir: %v", err)
	}
	status := func() api.Status {
		resp, err := client.Get("http://" + mon + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st api.Status
		json.NewDecoder(resp.Body).Decode(&st)
		return st
	}

	// Log in.
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(pkiDir, "ca.pem"))
	roots.AppendCertsFromPEM(caPEM)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	tok, _ := oidc.Mint("alice", time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	body, _ := json.Marshal(map[string]string{"token": tok, "csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	var login *http.Response
	testutil.Eventually(t, 10*time.Second, "the OIDC issuer to be discovered", func() bool {
		login, err = tlsClient.Post("https://"+apiAddr+"/v1/sessions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer login.Body.Close()
		io.Copy(io.Discard, login.Body)
		return login.StatusCode != http.StatusServiceUnavailable
	})
	if login.StatusCode != http.StatusCreated {
		t.Fatalf("login: %s", login.Status)
	}

	// Metrics: the controller's, the mesh's and the process's, each once.
	resp, err := client.Get("http://" + mon + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := map[string]bool{}
	for _, line := range strings.Split(string(metricsText), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.LastIndexByte(line, ' ')]
		if seen[name] {
			t.Errorf("metric %s written twice", name)
		}
		seen[name] = true
	}
	for _, want := range []string{"certmesh_certs_issued_total", `certmesh_auth_failures_total{code="token_expired"}`, `certmesh_records{kind="session"}`, "go_goroutines"} {
		if !seen[want] {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Rotate the signing key, SIGHUP: a second signer record.
	if r := runCLI("pki", "rotate-controller", "--dir", pkiDir, "c1"); r.code != 0 {
		t.Fatal(r)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "the new signer record", func() bool { return status().Records["signer"] == 2 })

	// The root revokes c2 through c1.
	r := runCLI("pki", "revoke-controller", "--dir", pkiDir, "--controller", apiAddr, "c2")
	if r.code != 0 || !strings.Contains(r.stdout, "revoked controller c2") {
		t.Fatal(r)
	}
	if st := status(); st.Records["signer"] != 3 || st.Records["session"] != 1 {
		t.Errorf("status %+v", st)
	}
	checkFailure(t, runCLI("pki", "revoke-controller", "--dir", pkiDir, "--controller", "https://"+mon, "c2"), 1, mon)
	checkAccessCommands(t, apiAddr, pkiDir)

	// SIGTERM: a graceful exit 0.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM\n%s", code, p.out)
	}

	// A restart finds everything; a bad config exits 2 with one line.
	bad := filepath.Join(cfgDir, "bad.yaml")
	os.WriteFile(bad, []byte("node:\n  name: c1\n  nmae: x\n"), 0o600)
	q := start(t, "controller", "--config", bad)
	if code := q.wait(t, 10*time.Second); code != 2 {
		t.Errorf("bad config: exit %d", code)
	}
	if out := q.out.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "bad.yaml:3") || !strings.Contains(out, "node.nmae") {
		t.Errorf("bad config: output %q", out)
	}
	os.WriteFile(bad, []byte(fmt.Sprintf("node: {name: c1}\nmesh: {key_file: ../pki/gossip.key}\npki: {ca: ../pki/ca.pem, cert: ../pki/c2/cert.pem, key: ../pki/c2/key.pem}\nauth: {oidc: [{issuer: %q, audience: certmesh}]}\n", oidc.URL())), 0o600)
	q = start(t, "controller", "--config", bad)
	if code := q.wait(t, 10*time.Second); code != 2 || !strings.Contains(q.out.String(), "pki.cert") {
		t.Errorf("another controller's certificate: exit %d, %q", code, q.out)
	}
}
