package router

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/certmesh/certmesh/internal/testutil"
)

// attacker opens TCP connections to the router that never finish a TLS
// handshake, from chosen loopback addresses (127.0.0.0/8 is all local on
// Linux), and closes them all at the end of the test.
type attacker struct {
	t     *testing.T
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newAttacker(t *testing.T, addr string) *attacker {
	a := &attacker{t: t, addr: addr, stop: make(chan struct{})}
	t.Cleanup(func() {
		close(a.stop)
		a.mu.Lock()
		for _, c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

// open opens n connections from 127.0.0.<host> that send nothing.
func (a *attacker) open(host, n int) {
	a.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(host))}}
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", a.addr)
		if err != nil {
			a.t.Fatalf("attacker connection %d from 127.0.0.%d: %v", i, host, err)
		}
		a.mu.Lock()
		a.conns = append(a.conns, c)
		a.mu.Unlock()
	}
}

// trickle opens a connection from 127.0.0.<host> that sends the start of a
// ClientHello one byte every interval, and returns when the router closed
// it, how long after it opened.
func (a *attacker) trickle(host int, interval time.Duration) <-chan time.Duration {
	a.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(host))}}
	c, err := d.Dial("tcp", a.addr)
	if err != nil {
		a.t.Fatal(err)
	}
	a.mu.Lock()
	a.conns = append(a.conns, c)
	a.mu.Unlock()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write(hello[i%len(hello) : i%len(hello)+1]); err != nil {
				return
			}
		}
	}()
	go func() {
		defer a.wg.Done()
		io.Copy(io.Discard, c) // until the router closes it (or the test does)
		closed <- time.Since(start)
	}()
	return closed
}

// gauge reads a gauge or counter of the router's metrics set.
func gauge(m *metrics.Set, name string) int {
	var b strings.Builder
	m.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// More connections that never send a ClientHello than the old limit of
// handshakes in progress (1024), from 40 addresses, plus one address
// opening 200 and 20 connections trickling a ClientHello: a client from
// another address is still admitted, while they are held open. Before, the
// accept loop stopped at 1024 handshakes in progress and each idle one held
// its slot for the 10 s handshake timeout: the client timed out.
func TestIdleConnectionsDoNotFreezeTheListener(t *testing.T) {
	e := newTestEnv(t, nil)
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	a := newAttacker(t, e.router.Addr().String())
	const hosts, perHost = 40, 30
	for h := 0; h < hosts; h++ {
		a.open(2+h, perHost)
	}
	a.open(2+hosts, 200) // one greedy address: all but its newest 64 are shed
	for i := 0; i < 20; i++ {
		a.trickle(3+hosts, 200*time.Millisecond)
	}
	idle := hosts * perHost

	// The client dials at once, with the dial helper's patience (5 s):
	// the kernel queues it behind every attacker connection.
	mustRoundTrip(t, e.dial(cc.TLS(true)), "through the flood")
	m := e.router.opts.Metrics
	held := gauge(m, "certmesh_handshakes_pending")
	if held < idle {
		t.Errorf("%d pending handshakes at the router when the client got through, want at least the %d idle ones", held, idle)
	}
	if n := gauge(m, `certmesh_handshakes_shed_total{reason="source_limit"}`); n != 200-DefaultMaxPendingPerSource {
		t.Errorf("shed for their source: %d, want %d", n, 200-DefaultMaxPendingPerSource)
	}
	t.Logf("admitted while %d idle connections (%d addresses) and 20 trickling ones were held open; %d pending at the router",
		idle+200, hosts+1, held)
}

// A ClientHello sent one byte at a time is cut at the flight timeout,
// however steadily the bytes come: it is a deadline, not an idle timeout.
func TestATricklingClientHelloIsCutAtTheFlightTimeout(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.FlightTimeout, c.HandshakeTimeout = 300*time.Millisecond, 30*time.Second })
	a := newAttacker(t, e.router.Addr().String())
	closed := a.trickle(2, 20*time.Millisecond)
	select {
	case d := <-closed:
		t.Logf("trickling ClientHello cut after %v (flight timeout 300ms, handshake timeout 30s)", d)
	case <-time.After(10 * time.Second):
		t.Fatal("a trickling ClientHello was still open after 10s")
	}
}

// When the pool of unproven connections is full, the oldest goes, so a
// flood from many addresses cannot keep a client out either.
func TestAFullPoolShedsTheOldestUnprovenConnections(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxPending, c.MaxPendingPerSource = 100, 0 })
	cc, recs := e.ctrlA.Login("alice", time.Hour)
	e.publish(recs)
	a := newAttacker(t, e.router.Addr().String())
	for h := 0; h < 3; h++ {
		a.open(2+h, 100)
	}
	m := e.router.opts.Metrics
	testutil.Eventually(t, 5*time.Second, "200 shed", func() bool {
		return gauge(m, `certmesh_handshakes_shed_total{reason="pending_limit"}`) == 200
	})
	mustRoundTrip(t, e.dial(cc.TLS(true)), "through a full pool")
	if n := gauge(m, "certmesh_handshakes_pending"); n > 100 {
		t.Errorf("%d pending, more than MaxPending", n)
	}
}
