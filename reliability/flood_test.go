package reliability

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/internal/testutil"
)

// TestFloodAtAController floods one controller from loopback, without the
// gossip key: garbage UDP datagrams and garbage TCP streams at its gossip
// port, hundreds of idle connections on the gossip port and the API (the
// slowloris pattern). Meanwhile a client logs in at that very controller
// every 200 ms. The controller stays healthy and ready, every login
// succeeds within 2 s and reaches every router, and no node sees any
// member fail. The attacker runs in the same process, so it also takes CPU
// from the cluster: the figures are a lower bound.
//
//	go test -race ./reliability/ -run TestFloodAtAController -v
func TestFloodAtAController(t *testing.T) {
	const (
		floodFor = 3 * time.Second
		idle     = 200 // idle connections on each port
		bound    = 2 * time.Second
	)
	c := startCluster(t)
	target := c.Controllers[0]
	gossipAddr, apiAddr := target.Mesh.Addr(), target.APIAddr()
	c.mustLogin(target, "warm-up")
	watch := watchMembers(c.meshes(), len(c.meshes()))

	var udpSent, tcpSent, idleOpen atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var idleMu sync.Mutex
	var idleConns []net.Conn
	defer func() {
		idleMu.Lock()
		for _, cn := range idleConns {
			cn.Close()
		}
		idleMu.Unlock()
	}()
	wg.Go(func() { // garbage datagrams
		conn, err := net.Dial("udp", gossipAddr)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf := make([]byte, 1400)
		rand.Read(buf)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := 1 + mrand.IntN(len(buf))
			buf[mrand.IntN(n)]++ // vary the content cheaply
			if _, err := conn.Write(buf[:n]); err == nil {
				udpSent.Add(1)
			}
		}
	})
	wg.Go(func() { // garbage streams
		buf := make([]byte, 4096)
		rand.Read(buf)
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := net.DialTimeout("tcp", gossipAddr, time.Second)
			if err != nil {
				continue
			}
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			conn.Write(buf)
			conn.Close()
			tcpSent.Add(1)
		}
	})
	wg.Go(func() { // idle connections on both ports
		for i := 0; i < idle; i++ {
			for _, addr := range []string{gossipAddr, apiAddr} {
				conn, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					continue
				}
				idleMu.Lock()
				idleConns = append(idleConns, conn)
				idleMu.Unlock()
				idleOpen.Add(1)
			}
		}
	})

	// The controller's own clients, during the flood.
	start := time.Now()
	var latencies []time.Duration
	var serials []string
	var failures []string
	healthy := func(path string) bool {
		hc := &http.Client{Timeout: bound}
		resp, err := hc.Get("http://" + target.MetricsAddr() + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for i := 0; time.Since(start) < floodFor; i++ {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := c.login(ctx, target, fmt.Sprintf("flood-%d", i))
		cancel()
		took := time.Since(t0)
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("login %d: %v", i, err))
		case took > bound:
			failures = append(failures, fmt.Sprintf("login %d took %v", i, took))
		}
		if err == nil {
			latencies = append(latencies, took)
			serials = append(serials, s.Serial)
		}
		for _, p := range []string{"/healthz", "/readyz"} {
			if !healthy(p) {
				failures = append(failures, fmt.Sprintf("%s failed during the flood", p))
			}
		}
		time.Sleep(200 * time.Millisecond) // the client's own pace
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	for _, f := range failures {
		t.Error(f)
	}
	replicated := time.Now()
	for _, m := range c.routerMeshes() {
		for _, s := range serials {
			testutil.Eventually(t, 10*time.Second, fmt.Sprintf("login %s reaches %s", s, m.Name()), func() bool { return hasCert(m, s) })
		}
	}
	p50, worst := durations(latencies)
	t.Logf("flood of %v: %d garbage datagrams (%.0f/s), %d garbage streams, %d idle connections",
		elapsed.Round(100*time.Millisecond), udpSent.Load(), float64(udpSent.Load())/elapsed.Seconds(), tcpSent.Load(), idleOpen.Load())
	t.Logf("%d logins at the flooded controller, %d failed: p50 %v, max %v; all on every router %v after the flood",
		len(latencies), len(failures), p50.Round(100*time.Microsecond), worst.Round(100*time.Microsecond), time.Since(replicated).Round(time.Millisecond))
	if lost := watch.done(); len(lost) > 0 {
		t.Errorf("members lost during the flood:\n%s", strings.Join(lost, "\n"))
	}
}
