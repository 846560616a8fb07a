package sim

import (
	"testing"
	"time"
)

// TestReconnectPolicies replays issue 19's case, a link cut from 15s to
// 45s, under each policy.
func TestReconnectPolicies(t *testing.T) {
	s := time.Second
	cut, heal := 15*s, 45*s
	for _, tc := range []struct {
		kind     string
		sent     time.Duration
		want     time.Duration
		redialed bool
	}{
		// One TCP connection: 200ms doubling from 15s: ..., 40.4s, 66s.
		{ReconnectTCP, cut, 66 * s, false},
		// hashicorp: retransmits until the 10s deadline (25s), dials at
		// 25.01s (+1, +3, +7s) until 35.01s, again at 35.02s until 45.02s,
		// then after a 20ms backoff at 45.04s.
		{ReconnectHashicorp, cut, 45*s + 40*time.Millisecond, true},
		{ReconnectHashicorp, 44 * s, 45*s + 40*time.Millisecond, true},
		// etcd: the stream is closed after 5s of silence (20s) and
		// redialed every 100ms: at 45s.
		{ReconnectEtcd, cut, 45 * s, true},
	} {
		got, redialed := defaultReconnect(tc.kind).through(tc.sent, cut, heal)
		if got != tc.want || redialed != tc.redialed {
			t.Errorf("%s, sent at %v: through at %v (redialed %v), want %v (%v)", tc.kind, tc.sent, got, redialed, tc.want, tc.redialed)
		}
	}
	// A short cut heals while the connection still retransmits.
	if got, redialed := defaultReconnect(ReconnectHashicorp).through(cut, cut, cut+time.Second); got != cut+1400*time.Millisecond || redialed {
		t.Errorf("hashicorp, 1s cut: %v, %v; want 16.4s on the same connection", got, redialed)
	}
	if got, _ := defaultReconnect(ReconnectHashicorp).through(cut, cut, never); got != never {
		t.Errorf("a cut that never heals: %v", got)
	}
}

func TestHashicorpBackoff(t *testing.T) {
	p := defaultReconnect(ReconnectHashicorp)
	ms := time.Millisecond
	for failures, want := range map[int]time.Duration{1: 10 * ms, 2: 10 * ms, 3: 20 * ms, 4: 40 * ms, 12: 10240 * ms, 40: 10240 * ms} {
		if got := p.backoff(failures); got != want {
			t.Errorf("backoff(%d) = %v, want %v", failures, got, want)
		}
	}
}

// TestRaftCatchUpFollowsReconnect: seven regions, the leader's cut off
// from 15s to 45s. Transfers blocked on its links get through after the
// heal as the reconnect policy says: seconds later with one TCP
// connection (1.7s here), within a few hundred ms with hashicorp's or etcd's redials.
func TestRaftCatchUpFollowsReconnect(t *testing.T) {
	top := mustTopology(t, `
name: leader-cut
duration: 50s
regions:
  - {name: us-east, controllers: 1, routers: 3, location: {lat: 38.9, lon: -77.0}}
  - {name: us-west, controllers: 1, routers: 3, location: {lat: 45.6, lon: -121.2}}
  - {name: sa-east, controllers: 1, routers: 3, location: {lat: -23.5, lon: -46.6}}
  - {name: eu-west, controllers: 1, routers: 3, location: {lat: 53.3, lon: -6.3}}
  - {name: eu-central, controllers: 1, routers: 3, location: {lat: 50.1, lon: 8.7}}
  - {name: ap-southeast, controllers: 1, routers: 3, location: {lat: 1.35, lon: 103.8}}
  - {name: ap-northeast, controllers: 1, routers: 3, location: {lat: 35.7, lon: 139.7}}
loss: 1%
workload: {rate: 20/s}
faults:
  - {at: 15s, partition: [[us-east], [us-west, sa-east, eu-west, eu-central, ap-southeast, ap-northeast]], for: 30s}
`)
	catchUp := map[string]float64{}
	for _, kind := range []string{ReconnectTCP, ReconnectHashicorp, ReconnectEtcd} {
		cfg := DefaultConfig().withSeed(1)
		cfg.Params = DefaultParams()
		cfg.Params.Raft.Reconnect = defaultReconnect(kind)
		res, err := Run(top, "raft", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Undelivered != 0 || !res.Converged {
			t.Errorf("%s: undelivered %d, converged %v", kind, res.Undelivered, res.Converged)
		}
		catchUp[kind] = res.CatchUpMs.Max
	}
	if catchUp[ReconnectTCP] < 1500 || catchUp[ReconnectHashicorp] > 1000 || catchUp[ReconnectEtcd] > 1000 {
		t.Errorf("catch-up max by policy %v: want over 1.5s for tcp, under 1s for hashicorp and etcd", catchUp)
	}
}
