package pki_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// HardenTLS gives any config the same floor, whatever it held before: a
// server built from a permissive config refuses a TLS 1.2 client (CBC or
// AEAD) and serves a TLS 1.3 one.
func TestHardenTLSAllowsOnlyTLS13(t *testing.T) {
	p := newTestPKI(t)
	now := time.Now()
	cert, err := pki.IssueServer(p.ctrl["ctrl-a"], []string{"localhost"}, time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	server := pki.HardenTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
	})
	if server.MinVersion != tls.VersionTLS13 || server.MaxVersion != 0 || server.CipherSuites != nil {
		t.Fatalf("hardened config: min %x max %x suites %v", server.MinVersion, server.MaxVersion, server.CipherSuites)
	}
	shake := func(client *tls.Config) (tls.ConnectionState, error) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		a.SetDeadline(time.Now().Add(5 * time.Second))
		b.SetDeadline(time.Now().Add(5 * time.Second))
		done := make(chan error, 1)
		go func() {
			s := tls.Server(b, server)
			err := s.Handshake()
			b.Close() // unblocks a client left waiting on a refused handshake
			done <- err
		}()
		c := tls.Client(a, client)
		err := c.Handshake()
		a.Close()
		<-done
		return c.ConnectionState(), err
	}
	base := func() *tls.Config { return &tls.Config{RootCAs: p.rootsPool, ServerName: "localhost"} }
	cbc := base()
	cbc.MaxVersion, cbc.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	if st, err := shake(cbc); err == nil {
		t.Errorf("TLS 1.2 CBC-SHA1 client admitted: %s", tls.CipherSuiteName(st.CipherSuite))
	}
	gcm := base()
	gcm.MaxVersion, gcm.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if st, err := shake(gcm); err == nil {
		t.Errorf("TLS 1.2 AEAD client admitted: %s", tls.CipherSuiteName(st.CipherSuite))
	}
	st, err := shake(base())
	if err != nil || st.Version != tls.VersionTLS13 {
		t.Fatalf("TLS 1.3 client: version %x, %v", st.Version, err)
	}
}
