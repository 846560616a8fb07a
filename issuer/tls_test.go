package issuer

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// handshake dials the API with cfg and returns the negotiated state.
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// The API speaks TLS 1.3 only (pki.HardenTLS): a client that forces TLS
// 1.2 is refused, with a CBC-SHA1 suite (what the API accepted before) and
// even with an AEAD one.
func TestAPIRefusesTLS12AndCBCSuites(t *testing.T) {
	e := newEnv(t)
	addr := e.c.APIAddr()
	for _, tc := range []struct {
		name   string
		suites []uint16
	}{
		{"TLS 1.2 CBC-SHA1", []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		}},
		{"TLS 1.2 AEAD", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := handshake(t, addr, &tls.Config{RootCAs: e.roots, MaxVersion: tls.VersionTLS12, CipherSuites: tc.suites})
			if err == nil {
				t.Fatalf("handshake succeeded: version %x, suite %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}
	st, err := handshake(t, addr, &tls.Config{RootCAs: e.roots})
	if err != nil {
		t.Fatalf("TLS 1.3 handshake: %v", err)
	}
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated version %x, want TLS 1.3", st.Version)
	}
	// And a login still works over it.
	e.login("alice")
}

// The same with a real OpenSSL client: -tls1_2 with a CBC-SHA1 suite is
// refused, -tls1_3 verifies the server against ca.pem and connects.
func TestAPIRefusesTLS12WithOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed; the check with openssl s_client is skipped")
	}
	e := newEnv(t)
	ca := filepath.Join(e.pkiDir, pki.CACertFile)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"s_client", "-connect", e.c.APIAddr(), "-CAfile", ca, "-verify_return_error"}, args...)...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// @SECLEVEL=0 so that it is the server, not the local OpenSSL policy,
	// that refuses the suite.
	out, err := run("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
	if err == nil && !strings.Contains(out, "Cipher is (NONE)") {
		t.Fatalf("openssl s_client -tls1_2 with CBC-SHA1 suites connected:\n%s", out)
	}
	out, err = run("-tls1_3")
	if err != nil || !strings.Contains(out, "TLSv1.3") || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Fatalf("openssl s_client -tls1_3: %v\n%s", err, out)
	}
}
