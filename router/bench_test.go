package router

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/router/routertest"
)

// BenchmarkAdmission measures Decide with a million records in the store
// (half sessions, half certificates). Target: under 1 µs when the
// certificate is known.
//
//	go test ./router -run '^$' -bench Admission -benchtime 2000000x
func BenchmarkAdmission(b *testing.B) {
	const sessions = 500_000 // and as many certificates: 1M records
	store := crdt.NewStore()
	author := crdt.Author{Name: "ctrl-a", Incarnation: 1}
	now := crdt.MillisOf(time.Now())
	facts := make([]crdt.CertFacts, sessions)
	seq := uint64(0)
	for i := range sessions {
		var id crdt.SessionID
		var serial crdt.Serial
		binary.BigEndian.PutUint64(id[8:], uint64(i)+1)
		binary.BigEndian.PutUint64(serial[8:], uint64(i)+1)
		ident := fmt.Sprintf("user-%d", i%50_000)
		seq++
		sess := &crdt.SessionRecord{Header: crdt.Header{Author: author, Seq: seq, HLC: crdt.NewTimestamp(now-1000, 0)},
			ID: id, Identity: ident, Method: "oidc", Created: now - 1000, Expires: now + 3_600_000}
		seq++
		cert := &crdt.CertRecord{Header: crdt.Header{Author: author, Seq: seq, HLC: crdt.NewTimestamp(now-1000, 1)},
			Serial: serial, Session: id, Identity: ident, NotBefore: now - 60_000, NotAfter: now + 3_600_000}
		for _, r := range []crdt.Record{sess, cert} {
			if _, err := store.MergeVerified(r); err != nil {
				b.Fatal(err)
			}
		}
		facts[i] = crdt.CertFacts{Serial: serial, Session: id, Identity: ident, Issuer: "ctrl-a", NotBefore: now - 60_000, NotAfter: now + 3_600_000}
	}
	if n := store.Len(); n != 2*sessions {
		b.Fatalf("store holds %d records", n)
	}
	// A revoked session and an unknown certificate.
	revoked := facts[0] // even: "known" visits odd indexes only
	seq++
	store.MergeVerified(&crdt.RevocationRecord{Header: crdt.Header{Author: author, Seq: seq, HLC: crdt.NewTimestamp(now, 0)},
		Target: crdt.RevokeSession, Session: revoked.Session, At: now, Until: now + 3_600_000})
	unknown := facts[2]
	unknown.Serial[0] = 0xff
	runtime.GC() // the build's garbage must not be collected during the timing

	run := func(name string, mode Mode, want crdt.Verdict, pick func(i int) crdt.CertFacts) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if d := Decide(store, pick(i), now, mode); d.Verdict != want {
					b.Fatalf("verdict %v, want %v", d.Verdict, want)
				}
			}
		})
	}
	// The router decides on facts it has just read from the handshake,
	// hot in the cache: fresh copies, with the identity in a reused
	// buffer.
	var idBuf []byte
	fresh := func(f crdt.CertFacts, i int) crdt.CertFacts {
		idBuf = strconv.AppendInt(append(idBuf[:0], "user-"...), int64(i%50_000), 10)
		f.Identity = unsafe.String(unsafe.SliceData(idBuf), len(idBuf))
		return f
	}
	// "known": a working set of 4,096 clients reconnecting; "known_cold":
	// a stride over all 500,000, so that every record is a cache miss
	// (see memory_latency for what one costs on this machine).
	run("known", ModeStrict, crdt.Admit, func(i int) crdt.CertFacts {
		j := (i*7919)%4096*2 + 1
		return fresh(facts[j], j)
	})
	run("known_cold", ModeStrict, crdt.Admit, func(i int) crdt.CertFacts {
		j := (i*7919)%sessions | 1
		return fresh(facts[j], j)
	})
	run("unknown_strict", ModeStrict, crdt.UnknownCert, func(int) crdt.CertFacts { return unknown })
	run("unknown_verified", ModeVerified, crdt.Admit, func(int) crdt.CertFacts { return unknown })
	run("revoked", ModeStrict, crdt.SessionRevoked, func(int) crdt.CertFacts { return revoked })
	b.Run("memory_latency", benchMemoryLatency)
}

// benchMemoryLatency is one random access into 256 MiB (a dependent
// pointer chase), the cost of one cache and TLB miss on this machine.
func benchMemoryLatency(b *testing.B) {
	const n = 1 << 25
	next := make([]uint32, n)
	perm := rand.Perm(n)
	for i := range n {
		next[perm[i]] = uint32(perm[(i+1)%n])
	}
	p := uint32(0)
	for b.Loop() {
		p = next[p]
	}
	if p == n {
		b.Fatal("unreachable")
	}
}

// BenchmarkHandshake compares TLS 1.3 mTLS handshakes per second through
// the router (chain verification, facts, admission decision, registry,
// proxy) with plain crypto/tls servers requiring and verifying the same
// client certificate against the same root, in the same run: rounds
// alternate so that all see the same machine. plain_proxy also connects
// to the upstream and copies both ways, as the router does, so that
// ratio_proxy isolates the cost of admission; plain_echo answers itself.
// Each handshake is followed by a one-byte echo, so that the server has
// finished with the certificate. Target: ratio_proxy at least 0.9.
//
//	go test ./router -run '^$' -bench Handshake -benchtime 3000x
func BenchmarkHandshake(b *testing.B) {
	e := newTestEnv(b, nil)
	cc, recs := e.ctrlA.Login("bench", time.Hour)
	e.publish(recs)
	echoSrv := newPlainServer(b, e.pki, "")
	proxySrv := newPlainServer(b, e.pki, e.echo.Addr())
	clientCfg := &tls.Config{RootCAs: e.pki.RootPool(), ServerName: "localhost", MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cc.TLS(true)}}

	const workers = 4
	const rounds = 10 // short alternating rounds: this machine's speed drifts
	targets := []struct {
		name string
		addr string
		d    time.Duration
		n    int
	}{
		{name: "plain_echo", addr: echoSrv.addr()},
		{name: "plain_proxy", addr: proxySrv.addr()},
		{name: "router", addr: e.router.Addr().String()},
	}
	per := max(b.N/rounds, workers)
	for i := range targets { // warm up, uncounted
		if _, err := handshakes(targets[i].addr, clientCfg, workers, workers); err != nil {
			b.Fatalf("%s: %v", targets[i].name, err)
		}
	}
	for range rounds {
		for i := range targets {
			d, err := handshakes(targets[i].addr, clientCfg, per, workers)
			if err != nil {
				b.Fatalf("%s: %v", targets[i].name, err)
			}
			targets[i].d += d
			targets[i].n += per
		}
	}
	rate := func(i int) float64 { return float64(targets[i].n) / targets[i].d.Seconds() }
	b.ReportMetric(rate(0), "plain_echo_hs/s")
	b.ReportMetric(rate(1), "plain_proxy_hs/s")
	b.ReportMetric(rate(2), "router_hs/s")
	b.ReportMetric(rate(2)/rate(1), "ratio_proxy")
	b.ReportMetric(rate(2)/rate(0), "ratio_echo")
	b.ReportMetric(0, "ns/op")
}

// handshakes makes n connections with `workers` in parallel, each a full
// handshake and a one-byte echo, and returns the elapsed time.
func handshakes(addr string, cfg *tls.Config, n, workers int) (time.Duration, error) {
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			for next.Add(1) <= int64(n) {
				c, err := tls.Dial("tcp", addr, cfg)
				if err == nil {
					if _, err = c.Write([]byte{'x'}); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.Close()
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return time.Since(start), nil
}

// plainServer is a crypto/tls server with the router's certificate that
// requires and verifies client certificates against the root, and echoes
// or, given an upstream, proxies to it.
type plainServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newPlainServer(b testing.TB, p *routertest.PKI, upstream string) *plainServer {
	roots := x509.NewCertPool()
	roots.AddCert(p.Root.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
		Certificates: []tls.Certificate{p.RouterCert()}, SessionTicketsDisabled: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	s := &plainServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				if upstream == "" {
					io.Copy(c, c)
					return
				}
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					defer close(done)
					io.Copy(c, up)
					c.Close()
				}()
				io.Copy(up, c)
				up.Close()
				<-done
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *plainServer) addr() string { return s.ln.Addr().String() }

// needFiles raises the open-file limit to n, or skips b.
func needFiles(b *testing.B, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < n {
		lim.Cur = min(lim.Max, n)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); lim.Cur < n {
			b.Skipf("needs %d open files, ulimit -n is %d", n, lim.Cur)
		}
	}
}

// BenchmarkRevocationClose holds liveConns connections of one identity
// through the router, one session each, and measures the time from
// applying a revocation (the store is updated and subscribers told) until
// the router has closed the connections it covers, each client's socket
// having received its FIN: for a session revocation, its one connection
// (session_close_µs; target under 1 ms); for an identity revocation, every
// other connection (identity_close_ms; target under 50 ms). The
// *_client_seen figures run until the benchmark's reader goroutines have
// noticed, which measures the Go scheduler juggling 16,000 goroutines on
// this machine as much as the router. The setup (thousands of handshakes)
// runs with the timer on, so that the framework stops at one iteration;
// the figures are the custom metrics.
//
//	go test ./router -run '^$' -bench RevocationClose -benchtime 1x
func BenchmarkRevocationClose(b *testing.B) {
	const liveConns = 4000
	needFiles(b, 4*liveConns+500) // client, router, upstream and echo side of each
	e := newTestEnv(b, func(c *Config) { c.DrainTimeout = 0 })
	// A second router over the same mesh would double the files; instead
	// the hook is set on this one, which has not seen any revocation yet.
	var shutAt atomic.Int64
	shutDone := make(chan struct{}, 1)
	e.router.testAfterShut = func(int) {
		shutAt.Store(time.Now().UnixNano())
		select {
		case shutDone <- struct{}{}:
		default:
		}
	}
	awaitShut := func() time.Time {
		select {
		case <-shutDone:
		case <-time.After(10 * time.Second):
			b.Fatal("the router closed nothing")
		}
		return time.Unix(0, shutAt.Load())
	}
	roots := e.pki.RootPool()
	var sessionTotal, sessionShut, identityTotal, identityShut time.Duration
	for round := 0; round < b.N; round++ {
		ident := fmt.Sprintf("tenant-%d", round)
		certs := make([]*routertest.ClientCert, liveConns)
		var recs []crdt.Record
		for i := range certs {
			var r []crdt.Record
			certs[i], r = e.ctrlA.Login(ident, time.Hour)
			recs = append(recs, r...)
		}
		e.publish(recs)

		conns := make([]*tls.Conn, liveConns)
		closedAt := make([]atomic.Int64, liveConns) // unix ns when the client saw the close
		var closed sync.WaitGroup
		firstClosed := make(chan struct{}) // closed once connection 0 is
		ready := make(chan struct{}, liveConns)
		for i, cc := range certs {
			c, err := tls.Dial("tcp", e.router.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost",
				MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cc.TLS(true)}})
			if err != nil {
				fds, _ := os.ReadDir("/proc/self/fd")
				b.Fatalf("connection %d: %v (%d open files)", i, err, len(fds))
			}
			conns[i] = c
			closed.Add(1)
			go func() {
				defer closed.Done()
				buf := make([]byte, 1)
				c.Write([]byte{'x'})
				if _, err := io.ReadFull(c, buf); err == nil {
					ready <- struct{}{}
				}
				io.Copy(io.Discard, c) // until the router closes it
				closedAt[i].Store(time.Now().UnixNano())
				if i == 0 {
					close(firstClosed)
				}
			}()
		}
		for range liveConns {
			<-ready
		}
		if n := e.router.Active(); n != liveConns {
			b.Fatalf("%d live connections, want %d", n, liveConns)
		}
		// Signed before timing: the mesh verifies a record before it
		// applies it, and the figure starts at the apply.
		sessRev := e.ctrlB.RevokeSession(certs[0].Session)
		identRev := e.ctrlB.RevokeIdentity(ident)
		runtime.GC() // the setup's garbage is not the revocation's cost

		start := time.Now()
		must(b, e.mesh.PublishVerified(sessRev...))
		// Block, do not spin: a spinning goroutine would keep the
		// router's event loop off this CPU until the scheduler preempts
		// it. The reader stamps the time itself.
		select {
		case <-firstClosed:
		case <-time.After(10 * time.Second):
			b.Fatal("the revoked session's connection is still open")
		}
		sessionTotal += time.Unix(0, closedAt[0].Load()).Sub(start)
		sessionShut += awaitShut().Sub(start)
		if n := e.router.Active(); n < liveConns-1 {
			b.Fatalf("a session revocation closed %d connections", liveConns-n)
		}

		start = time.Now()
		must(b, e.mesh.PublishVerified(identRev...))
		closed.Wait()
		identityShut += awaitShut().Sub(start)
		var last int64
		for i := range closedAt[1:] {
			last = max(last, closedAt[i+1].Load())
		}
		identityTotal += time.Unix(0, last).Sub(start)
		for _, c := range conns {
			c.Close()
		}
		testutil.Eventually(b, 30*time.Second, "the router to forget them", func() bool { return e.router.Active() == 0 })
	}
	b.ReportMetric(float64(sessionShut.Microseconds())/float64(b.N), "session_close_µs")
	b.ReportMetric(float64(sessionTotal.Microseconds())/float64(b.N), "session_client_seen_µs")
	b.ReportMetric(float64(identityShut.Microseconds())/1000/float64(b.N), "identity_close_ms")
	b.ReportMetric(float64(identityTotal.Microseconds())/1000/float64(b.N), "identity_client_seen_ms")
	b.ReportMetric(0, "ns/op")
}
