package router

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router/routertest"
)

// Go's TLS 1.3 server calls VerifyConnection before it checks the client's
// CertificateVerify. A copy of a certificate without its key must cost the
// control plane nothing: no pull, no decision, no line or metric in the
// owner's name. The holders of the keys are judged as before.
func TestACertificateWithoutItsKeyCostsNothing(t *testing.T) {
	e := newTestEnv(t, nil)
	alice, recs := e.ctrlA.Login("alice", time.Hour)
	must(t, e.source.Publish(recs...)) // the controllers know; a pull would find it
	bob, brecs := e.ctrlA.Login("bob", time.Hour)
	e.publish(brecs)
	e.publish(e.ctrlB.RevokeSession(bob.Session))

	thiefKey, err := pki.GenerateKey(nil)
	must(t, err)
	for _, cc := range []*routertest.ClientCert{alice, bob} {
		copied := cc.TLS(true)
		copied.PrivateKey, copied.Leaf = thiefKey, nil
		if err := roundTrip(e.dial(copied), "hello"); err == nil {
			t.Fatalf("%s's certificate without its key got through", cc.Identity)
		}
	}
	m := e.router.opts.Metrics
	testutil.Eventually(t, 5*time.Second, "the router to be done with both", func() bool { return admissions(m) == 2 })
	if n := m.GetOrCreateCounter(`certmesh_admissions_total{result="handshake_failed"}`).Get(); n != 2 {
		t.Errorf("handshake_failed = %d, want 2", n)
	}
	if n := e.mesh.Wants(); n != 0 {
		t.Errorf("%d pulls for a certificate whose key was never shown", n)
	}
	for _, series := range []string{`certmesh_admissions_total{result="admitted"}`, `certmesh_admissions_total{result="unknown_cert"}`,
		`certmesh_admissions_total{result="session_revoked"}`, `certmesh_pull_total{result="found"}`,
		`certmesh_pull_total{result="timeout"}`} {
		if n := m.GetOrCreateCounter(series).Get(); n != 0 {
			t.Errorf("%s = %d", series, n)
		}
	}
	logs := e.logs.String()
	for _, owner := range []string{"alice", "bob", alice.Serial.String(), bob.Session.String()} {
		if strings.Contains(logs, owner) {
			t.Errorf("the router logged %q for a copy of a certificate:\n%s", owner, logs)
		}
	}

	// The holders of the keys: alice admitted after a pull, bob refused.
	mustRoundTrip(t, e.dial(alice.TLS(true)), "alice herself")
	if n := e.mesh.Wants(); n != 1 {
		t.Errorf("pulls = %d after alice connected, want 1", n)
	}
	expectRefused(t, e.dial(bob.TLS(true)))
	if n := m.GetOrCreateCounter(`certmesh_admissions_total{result="session_revoked"}`).Get(); n != 1 {
		t.Errorf("session_revoked = %d, want 1", n)
	}
}

// A refusal made after the handshake is a TLS alert (certificate_revoked here) under each
// TLS 1.3 cipher suite, as one made inside it was; read here by a client
// this project did not write.
func TestRefusalAlertUnderEveryCipherSuite(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	e := newTestEnv(t, nil)
	bob, recs := e.ctrlA.Login("bob", time.Hour)
	e.publish(recs)
	e.publish(e.ctrlA.RevokeSession(bob.Session))
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, data, 0o600))
		return p
	}
	k, err := pki.EncodeKeyPEM(bob.Key)
	must(t, err)
	ca, cert, key := write("ca.pem", pki.EncodeCertsPEM(e.pki.Root.Cert)), write("cert.pem", pki.EncodeCertsPEM(bob.Chain...)), write("key.pem", k)
	for _, suite := range []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", e.router.Addr().String(), "-tls1_3", "-ciphersuites", suite,
			"-quiet", "-CAfile", ca, "-cert", cert, "-key", key, "-servername", "localhost")
		cmd.Stdin = strings.NewReader("hello\n")
		out, _ := cmd.CombinedOutput()
		cancel()
		if strings.Contains(string(out), "hello") || !strings.Contains(string(out), "alert certificate revoked") {
			t.Errorf("%s, a revoked certificate: want a certificate_revoked alert, got:\n%s", suite, out)
		}
	}
	if n := e.router.opts.Metrics.GetOrCreateCounter(`certmesh_admissions_total{result="session_revoked"}`).Get(); n != 3 {
		t.Errorf("session_revoked = %d, want 3", n)
	}
}

// admissions is the sum of certmesh_admissions_total over its results.
func admissions(m *metrics.Set) int {
	var b strings.Builder
	m.WritePrometheus(&b)
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "certmesh_admissions_total{") {
			v, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			n += v
		}
	}
	return n
}
