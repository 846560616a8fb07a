package issuer

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
)

// Slow and oversized HTTP requests at the API: while hundreds of
// connections stall in the TLS handshake, in the headers or in the body,
// the controller stays healthy and serves its other clients, refuses
// oversized requests at once with JSON errors, and sheds the stalled
// connections after its read timeouts.
//
//	go test ./issuer/ -run TestSlowAndOversizedRequests -v

// loginWithin logs a new identity in and fails the test unless the login
// succeeded within bound; it returns how long it took.
func (e *env) loginWithin(t *testing.T, sub string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token(sub), "csr": csr})
	took := time.Since(start)
	if r.status != http.StatusCreated {
		t.Fatalf("login of %s during the attack: %d %s", sub, r.status, r.body)
	}
	if took > bound {
		t.Errorf("login of %s during the attack took %v, more than %v", sub, took, bound)
	}
	return took
}

func TestSlowAndOversizedRequests(t *testing.T) {
	e := newEnv(t)
	e.login("warm-up") // JWKS fetched, store open
	addr := e.c.APIAddr()
	const slow = 100 // connections per kind of stall
	tlsCfg := &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1"}

	var mu sync.Mutex
	var conns []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		keep(c)
		return c
	}
	// 1. TCP connections that never start the TLS handshake, and some that
	// send half a ClientHello.
	began := time.Now()
	for i := 0; i < slow; i++ {
		c := dial()
		if i%2 == 1 {
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a record header promising 512 bytes
		}
	}
	// 2. TLS connections that trickle their headers, and 3. ones that
	// promise a 60 KiB body and trickle it.
	var tlsConns []*tls.Conn
	for i := 0; i < 2*slow; i++ {
		c := tls.Client(dial(), tlsCfg)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		tlsConns = append(tlsConns, c)
		if i%2 == 0 {
			fmt.Fprintf(c, "POST /v1/sessions HTTP/1.1\r\nHost: controller\r\n")
		} else {
			fmt.Fprintf(c, "POST /v1/sessions HTTP/1.1\r\nHost: controller\r\nContent-Type: application/json\r\nContent-Length: 61440\r\n\r\n{\"token\":\"")
		}
	}
	stalled := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a byte every 200ms on every trickling connection
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for i, c := range tlsConns {
				c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
				if i%2 == 0 {
					c.Write([]byte("X"))
				} else {
					c.Write([]byte("a"))
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	t.Run("other clients are served and the node is healthy", func(t *testing.T) {
		var worst time.Duration
		for i := 0; i < 5; i++ {
			worst = max(worst, e.loginWithin(t, fmt.Sprintf("during-stall-%d", i), 2*time.Second))
		}
		resp, err := http.Get("http://" + e.c.MetricsAddr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz: %d", resp.StatusCode)
		}
		t.Logf("with %d stalled connections, the slowest of 5 logins took %v", 3*slow, worst)
	})

	t.Run("oversized requests are refused at once", func(t *testing.T) {
		client := e.client()
		// A body declared larger than the limit: refused before it is read.
		req, _ := http.NewRequest("POST", e.url+"/v1/sessions", strings.NewReader("{}"))
		req.ContentLength = 10 << 30
		req.Body = io.NopCloser(io.LimitReader(neverEnding('a'), 10<<30))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"body_too_large"`) {
			t.Errorf("a 10 GiB body: %d %s", resp.StatusCode, b)
		}
		t.Logf("a request declaring a 10 GiB body was refused in %v", time.Since(start).Round(time.Millisecond))
		// Headers over the 16 KiB limit.
		req, _ = http.NewRequest("POST", e.url+"/v1/sessions", strings.NewReader("{}"))
		req.Header.Set("X-Padding", strings.Repeat("p", 64<<10))
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("64 KiB of headers: %d", resp.StatusCode)
		}
		// Many maximal bodies at once.
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := 0; i < 32; i++ {
			wg.Go(func() {
				body := `{"token":"` + strings.Repeat("t", api.MaxBodyBytes-30) + `","csr":"x"}`
				req, _ := http.NewRequest("POST", e.url+"/v1/sessions", strings.NewReader(body))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusRequestEntityTooLarge {
					errs <- fmt.Errorf("a %d-byte body: %d", len(body), resp.StatusCode)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		e.loginWithin(t, "after-oversized", 2*time.Second)
	})

	t.Run("stalled connections are shed after the read timeouts", func(t *testing.T) {
		// ReadHeaderTimeout (5s) bounds the handshake and the headers,
		// ReadTimeout (30s) the body: trickling does not extend them.
		handshakeStalls := conns[:slow]
		waitClosed := func(c net.Conn, within time.Duration) bool {
			c.SetReadDeadline(time.Now().Add(within))
			_, err := io.Copy(io.Discard, bufio.NewReader(c))
			var ne net.Error
			return err == nil || !(errors.As(err, &ne) && ne.Timeout())
		}
		for i, c := range handshakeStalls {
			if !waitClosed(c, 10*time.Second) {
				t.Fatalf("handshake stall %d still open %v after it began", i, time.Since(began))
			}
		}
		t.Logf("%d handshake stalls shed %v after they began", slow, time.Since(began).Round(100*time.Millisecond))
		for i := 0; i < len(tlsConns); i += 2 {
			if !waitClosed(tlsConns[i], 10*time.Second) {
				t.Fatalf("header trickle %d still open %v after it began", i, time.Since(stalled))
			}
		}
		t.Logf("%d header trickles shed %v after they began", slow, time.Since(stalled).Round(100*time.Millisecond))
	})
}

// neverEnding is an endless reader of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
