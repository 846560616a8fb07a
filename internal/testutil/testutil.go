// Package testutil holds the helpers that tests of several packages share:
// a free loopback address for a node that listens on TCP and UDP at once
// (memberlist does), and polling a condition with a deadline, which is how
// certmesh's tests wait for something to happen (never a sleep sized to
// the expected delay).
//
// A test that needs meshes but not real sockets gives each one a transport
// from memberlist's own in-memory network (memberlist.MockNetwork, through
// mesh.Config.Transport) instead of a FreeAddr: issuer's
// TestTwoControllersOverMemberlist does.
package testutil

import (
	"net"
	"testing"
	"time"
)

// FreeAddr returns a 127.0.0.1 address whose port is free for both TCP and
// UDP right now, as memberlist binds both.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

// pollInterval is how often Eventually checks its condition: short enough
// that latency figures measured with it stay accurate to a few
// milliseconds, long enough not to busy a loaded machine.
const pollInterval = 2 * time.Millisecond

// Eventually polls cond until it holds, and fails the test if it does not
// within the given time. It returns how long the condition took.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
	return time.Since(start)
}
