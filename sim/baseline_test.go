package sim

import (
	"testing"
	"time"
)

// TestGossipBaselineMatchesMemberlist checks the gossip baseline against
// real memberlist with LAN defaults and Serf-style re-broadcast: 50 nodes,
// no added latency, one broadcast at a time. Measured there: a node gets a
// broadcast at p50 ≈ 360ms and p99 ≈ 580ms, and receives about 8 copies.
func TestGossipBaselineMatchesMemberlist(t *testing.T) {
	top := mustTopology(t, `
name: memberlist-50
duration: 20s
regions: [{name: lan, controllers: 1, routers: 49}]
latency: {intra: 0s}
workload: {rate: 1/s, mix: {issue: 1, rotate: 0, revoke: 0}}
`)
	r, err := newRun(top, "gossip", newGossipStrategy, DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	r.runUntil(r.end)
	res := r.result()
	t.Logf("seed 1: sync delay p50 %.0fms p90 %.0fms p99 %.0fms max %.0fms over %d pairs",
		res.SyncDelayMs.P50, res.SyncDelayMs.P90, res.SyncDelayMs.P99, res.SyncDelayMs.Max, res.Stats.Pairs)
	if p50 := res.SyncDelayMs.P50; p50 < 200 || p50 > 600 {
		t.Errorf("p50 %.0fms, want about 360ms (in [200, 600])", p50)
	}
	if p99 := res.SyncDelayMs.P99; p99 < 350 || p99 > 1000 {
		t.Errorf("p99 %.0fms, want about 580ms (in [350, 1000])", p99)
	}
	var copies int64
	for _, n := range r.nodes {
		copies += n.(*gossipNode).copies
	}
	perNode := float64(copies) / float64(len(r.nodes)) / float64(res.Events)
	t.Logf("copies per node per broadcast: %.2f", perNode)
	if perNode < 6 || perNode > 10 {
		t.Errorf("%.2f copies per node, want about 8 (retransmit limit 4*ceil(log10(51)))", perNode)
	}
	if res.Undelivered != 0 || !res.Converged {
		t.Errorf("undelivered %d, converged %v", res.Undelivered, res.Converged)
	}
}

// TestGossipPacketBudget checks memberlist's budget: 1400 bytes less the
// compound header and encryption, 3 bytes of overhead per user message. A
// record larger than the budget is never sent and only anti-entropy
// delivers it.
func TestGossipPacketBudget(t *testing.T) {
	if gossipBudget != 1369 {
		t.Fatalf("budget %d, want 1400-2-29", gossipBudget)
	}
	top := mustTopology(t, `
duration: 1s
regions: [{name: lan, controllers: 1, routers: 9}]
workload: {rate: 50/s, mix: {issue: 1, rotate: 0, revoke: 0}}
`)
	for _, tc := range []struct {
		record     int
		maxPerPkt  int
		gossipOnly bool
	}{
		{250, 4, true}, // 290-byte messages: 4*(290+3) = 1172 fits, 5 do not
		{1300, 1, true},
		{1400, 0, false}, // 1440 > 1369: never gossiped
	} {
		cfg := DefaultConfig().withSeed(1)
		cfg.RecordBytes = tc.record
		cfg.MaxDrain = 40 * time.Second
		r, err := newRun(top, "gossip", newGossipStrategy, cfg)
		if err != nil {
			t.Fatal(err)
		}
		maxMsgs := 0
		for i, n := range r.nodes {
			r.nodes[i] = peekNode{n, func(m Message) {
				if m.Kind != gkGossip {
					return
				}
				maxMsgs = max(maxMsgs, len(m.Payload.(*gossipPacket).msgs))
				if m.Size > MaxDatagram {
					t.Errorf("record %d: %d-byte gossip packet", tc.record, m.Size)
				}
			}}
		}
		r.start()
		r.runUntil(never) // until the drain check stops it
		res := r.result()
		if tc.gossipOnly && maxMsgs != tc.maxPerPkt {
			t.Errorf("record %d: at most %d messages per packet, want %d", tc.record, maxMsgs, tc.maxPerPkt)
		}
		if !tc.gossipOnly && maxMsgs != 0 {
			t.Errorf("record %d: gossiped although larger than the budget", tc.record)
		}
		if res.Undelivered != 0 {
			t.Errorf("record %d: %d undelivered (anti-entropy must deliver)", tc.record, res.Undelivered)
		}
	}
}

// peekNode shows every message a node receives to peek.
type peekNode struct {
	Node
	peek func(Message)
}

func (p peekNode) Receive(now time.Duration, from NodeID, m Message) {
	p.peek(m)
	p.Node.Receive(now, from, m)
}

// TestRaftBaseline checks the quorum path by hand: leader in region a,
// followers in b (10ms) and c (30ms), one write at b.
func TestRaftBaseline(t *testing.T) {
	top := mustTopology(t, `
duration: 1s
regions:
  - {name: a, controllers: 1, routers: 1}
  - {name: b, controllers: 1, routers: 1}
  - {name: c, controllers: 1, routers: 1}
latency: {intra: 1ms, links: [[a, b, 10ms], [a, c, 30ms], [b, c, 35ms]]}
workload: {rate: 0/s}
`)
	r, err := newRun(top, "raft", newRaftStrategy, DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	r.noStop = true
	r.start()
	// A write reaches controller/b/0 (id 2) at 100ms.
	r.sched.push(event{at: 100 * time.Millisecond, kind: evCall, data: func() { r.inject(2, WriteIssue, -1) }})
	lines := traceLines(r)
	r.runUntil(time.Second)
	ws := r.writes[0]
	// Forward b->a 10ms (110), append a->b 10ms (120), ack b->a 10ms (130): committed
	// with a majority of 2; commit a->b 10ms: acked at 140ms.
	if ws.acked != 140*time.Millisecond {
		t.Errorf("acked at %v, want 140ms\n%s", ws.acked, joinLines(*lines))
	}
	for i := range r.nodes {
		if n := r.nodes[i].(*raftNode); !n.have.has(0) {
			t.Errorf("%s did not apply the write", r.cl.Nodes[i].Name)
		}
	}
	// Routers: a's at commit+1ms = 131ms, b's at 141ms, c's at 130+30+1 = 161ms;
	// from the ack at 140ms: -9ms, 1ms, 21ms (classes: writer region b times router region).
	for class, want := range map[int]int32{3: -9000, 4: 1000, 5: 21000} {
		if got := r.pairDelay[class]; len(got) != 1 || got[0] != want {
			t.Errorf("pair delay of class %d = %v µs, want %d", class, got, want)
		}
	}
	res := r.result()
	// Pairs from the ack (140ms): -9ms at a, 1ms at b, 21ms at c.
	if res.SyncDelayMs.Max != 21 || res.SyncDelayMs.P50 != 1 || res.IssueLatencyMs.P50 != 40 {
		t.Errorf("sync %+v issue %+v, want max 21ms, p50 1ms, issue 40ms", res.SyncDelayMs, res.IssueLatencyMs)
	}
}

// TestRaftPartitionedMinorityWaits checks that a write at a controller that
// cannot reach a majority waits until it can, while the majority elects a
// new leader and keeps writing.
func TestRaftPartitionedMinorityWaits(t *testing.T) {
	top := mustTopology(t, `
duration: 30s
regions:
  - {name: a, controllers: 1, routers: 2}
  - {name: b, controllers: 1, routers: 2}
  - {name: c, controllers: 1, routers: 2}
latency: {intra: 1ms, links: [[a, b, 10ms], [a, c, 30ms], [b, c, 35ms]]}
workload: {rate: 5/s}
membership: {detection: 1s}
faults: [{at: 10s, partition: [[a], [b, c]], for: 10s}]
`)
	res, err := Run(top, "raft", DefaultConfig().withSeed(2))
	if err != nil {
		t.Fatal(err)
	}
	if res.WritesUnavailable == 0 {
		t.Error("no write was unavailable, although region a's controller was cut off from the majority for 10s")
	}
	if res.Undelivered != 0 || !res.Converged {
		t.Errorf("undelivered %d, converged %v after the heal", res.Undelivered, res.Converged)
	}
	if res.IssueLatencyMs.P50 > 200 {
		t.Errorf("issue p50 %vms: the majority side should have kept writing", res.IssueLatencyMs.P50)
	}
}

// TestWriteBytes checks that the baselines carry certmesh's real record
// sizes: an issue is a session and a certificate record, a rotation or a
// revocation one record, each with its 64-byte signature.
func TestWriteBytes(t *testing.T) {
	c := newCluster(DefaultTopology(), 0)
	sizes := map[WriteKind]int{}
	for i, k := range []WriteKind{WriteIssue, WriteRotate, WriteRevoke} {
		sizes[k] = c.WriteBytes(&Write{ID: EventID(i), Kind: k, Session: 1234, Cert: 2345, Identity: 1234, Controller: 0})
	}
	t.Logf("encoded bytes: issue %d, rotate %d, revoke %d", sizes[WriteIssue], sizes[WriteRotate], sizes[WriteRevoke])
	if sizes[WriteIssue] < 250 || sizes[WriteIssue] > 450 || sizes[WriteRotate] < 150 || sizes[WriteRevoke] < 130 ||
		sizes[WriteIssue] <= sizes[WriteRotate] {
		t.Errorf("implausible sizes %v", sizes)
	}
	if c := newCluster(DefaultTopology(), 250); c.WriteBytes(&Write{Kind: WriteIssue}) != 250 {
		t.Error("a fixed RecordBytes must win")
	}
}
