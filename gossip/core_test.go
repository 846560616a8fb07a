package gossip

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

var regions3 = []string{"ap", "eu", "us"}

// converged fails the test unless every live node holds want records and
// the same digest.
func (n *testNet) converged(want int) {
	n.t.Helper()
	var digest uint64
	first := true
	for _, name := range n.names() {
		if n.down[name] {
			continue
		}
		s := n.nodes[name].Store()
		if s.Len() != want {
			n.t.Fatalf("%s holds %d records, want %d", name, s.Len(), want)
		}
		if first {
			digest, first = s.Digest(), false
		} else if s.Digest() != digest {
			n.t.Fatalf("%s digest %x differs from %x", name, s.Digest(), digest)
		}
	}
}

func TestConvergesUnderLossDuplicationAndReordering(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testConverges(t, seed) })
	}
}

func testConverges(t *testing.T, seed uint64) {
	v := &testVerifier{}
	net := newTestNet(t, seed, regions3, 6, v) // 21 nodes
	net.loss, net.dup = 0.05, 0.05
	writers := map[string]*writer{}
	for _, r := range regions3 {
		writers[r] = newWriter(v, "ctrl-"+r)
	}
	total := 0
	for i := 0; i < 40; i++ {
		for _, r := range regions3 {
			c := net.nodes["ctrl-"+r]
			s, cert := writers[r].session(t, c, net.now, byte(i))
			if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
				t.Fatal(err)
			}
			total += 2
		}
		net.run(7 * time.Millisecond)
	}
	net.run(5 * time.Second) // a few anti-entropy rounds mop up
	net.converged(total)
}

func TestPushReachesEveryNodeOncePerTreeWithoutLoss(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 2, regions3, 6, v)
	w := newWriter(v, "ctrl-eu")
	c := net.nodes["ctrl-eu"]
	s, cert := w.session(t, c, net.now, 1)
	if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
		t.Fatal(err)
	}
	net.run(200 * time.Millisecond) // well before the first anti-entropy round could matter
	for _, name := range net.names() {
		st := net.nodes[name].Stats()
		if name == "ctrl-eu" {
			continue
		}
		if got := st.MessagesIn[MsgPush]; got != 2 {
			t.Errorf("%s received %d pushes, want 2 (one per tree)", name, got)
		}
		if st.MessagesOut[MsgRepairReq] != 0 {
			t.Errorf("%s asked for a repair with no loss", name)
		}
		if net.nodes[name].Store().Len() != 2 {
			t.Errorf("%s holds %d records, want 2", name, net.nodes[name].Store().Len())
		}
	}
}

func TestLazyTreeAnnouncesAndStillConverges(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 9, regions3, 6, v)
	for _, c := range net.nodes {
		c.cfg.EagerTrees = 1
	}
	net.loss = 0.05
	w := newWriter(v, "ctrl-us")
	c := net.nodes["ctrl-us"]
	for i := 0; i < 50; i++ {
		s, cert := w.session(t, c, net.now, byte(i))
		if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
			t.Fatal(err)
		}
		net.run(20 * time.Millisecond)
	}
	net.run(5 * time.Second)
	net.converged(100)
	var ihaves, pushes uint64
	for _, n := range net.nodes {
		ihaves += n.Stats().MessagesIn[MsgIHave]
		pushes += n.Stats().MessagesIn[MsgPush]
	}
	if ihaves == 0 || ihaves < pushes/2 {
		t.Fatalf("%d announcements for %d pushes: the second tree is not lazy", ihaves, pushes)
	}
}

// With a lazy tree, a region's tree roots pass each batch they get from
// its origin on to one another: a cross-region copy lost to the eager
// tree's root costs the region one intra-region hop, not a pull by every
// node after LazyDelay.
func TestLazyTreeRootsPassEachBatchOn(t *testing.T) {
	for _, lost := range []uint8{0, 1} { // the copy to the eager root, then to the lazy one
		t.Run(fmt.Sprint("tree ", lost, " copy lost"), func(t *testing.T) {
			v := &testVerifier{}
			net := newTestNetConfig(t, 1, regions3, 30, v, func(cfg *Config) { cfg.EagerTrees = 1 })
			net.drop = func(from, to string, m *Message) bool {
				return from == "ctrl-us" && net.region[to] == "eu" && m.Type == MsgPush && m.Tree == lost
			}
			w := newWriter(v, "ctrl-us")
			c := net.nodes["ctrl-us"]
			s, cert := w.session(t, c, net.now, 1)
			if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
				t.Fatal(err)
			}
			net.run(70 * time.Millisecond) // 40ms across, up to 50% jitter, then a few hops
			for name, n := range net.nodes {
				if net.region[name] != "eu" {
					continue
				}
				if got := n.Store().Len(); got != 2 {
					t.Errorf("%s holds %d records 70ms after the write, want 2", name, got)
				}
				if got := n.Stats().MessagesOut[MsgRepairReq]; got != 0 {
					t.Errorf("%s asked for %d repairs: the eager copy came too late or not at all", name, got)
				}
			}
		})
	}
}

// Both trees' copies of a batch are remembered: the table once hashed on
// bits that ignore the tree, so forwarding one tree forgot the other and a
// late duplicate of it was forwarded again.
func TestRecentSetKeepsBothTreesOfABatch(t *testing.T) {
	var s recentSet
	s.init(recentBatches)
	rng := rand.New(rand.NewPCG(1, 2))
	forgot := 0
	for range 1000 {
		b := rng.Uint64()
		s.add(keyOf(b, 0))
		s.add(keyOf(b, 1))
		if !s.has(keyOf(b, 0)) {
			forgot++
		}
	}
	if forgot > 5 { // about 1 expected: two random keys share one of 1,024 slots
		t.Errorf("forwarding tree 1 forgot tree 0 for %d of 1000 batches", forgot)
	}
}

func TestGapIsRepairedWithoutAntiEntropy(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testGapRepair(t, seed) })
	}
}

func testGapRepair(t *testing.T, seed uint64) {
	v := &testVerifier{}
	net := newTestNet(t, seed, regions3, 4, v)
	for _, c := range net.nodes {
		c.cfg.AntiEntropyInterval = time.Hour // only repair can close the gap
	}
	w := newWriter(v, "ctrl-us")
	c := net.nodes["ctrl-us"]
	// The first batch reaches nobody: every copy is lost.
	s1, c1 := w.session(t, c, net.now, 1)
	if err := c.Publish(net.now, []crdt.Record{s1, c1}); err != nil {
		t.Fatal(err)
	}
	c.Ready()
	s2, c2 := w.session(t, c, net.now, 2)
	if err := c.Publish(net.now, []crdt.Record{s2, c2}); err != nil {
		t.Fatal(err)
	}
	net.run(500 * time.Millisecond)
	net.converged(4)
	repairs := uint64(0)
	for _, n := range net.nodes {
		repairs += n.Stats().Repairs
	}
	if repairs == 0 {
		t.Fatal("gap closed without a repair request")
	}
}

func TestPullOnMissFindsTheRecordWithinOneRoundTrip(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 4, regions3, 3, v)
	w := newWriter(v, "ctrl-us")
	ctrl := net.nodes["ctrl-us"]
	s, cert := w.session(t, ctrl, net.now, 1)
	if err := ctrl.Publish(net.now, []crdt.Record{s, cert}); err != nil {
		t.Fatal(err)
	}
	ctrl.Ready() // the push is lost everywhere: only the issuer knows
	router := net.nodes["r-ap-0"]
	start := net.now
	router.Want(net.now, cert.Serial, "ctrl-us")
	var res []WantResult
	for len(res) == 0 && net.now.Sub(start) < time.Second {
		net.run(time.Millisecond)
		res = net.wants["r-ap-0"]
	}
	if len(res) != 1 || !res[0].Found {
		t.Fatalf("want result %+v, want found", res)
	}
	// One cross-region round trip is 80-120ms here.
	if took := net.now.Sub(start); took > 130*time.Millisecond {
		t.Fatalf("pull took %v, want about one round trip", took)
	}
	if v := router.Store().Admission(crdt.CertFacts{Serial: cert.Serial, Session: cert.Session,
		Identity: cert.Identity, Issuer: "ctrl-us", NotBefore: cert.NotBefore, NotAfter: cert.NotAfter},
		crdt.MillisOf(net.now), true); v != crdt.Admit {
		t.Fatalf("admission after pull: %v", v)
	}
}

func TestPullOfUnknownSerialIsSettledByTheIssuerAndCached(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 5, regions3, 3, v)
	router := net.nodes["r-eu-1"]
	unknown := crdt.Serial{9, 9, 9}
	router.Want(net.now, unknown, "ctrl-us")
	router.Want(net.now, unknown, "ctrl-us") // collapses into the first
	var res []WantResult
	for i := 0; i < 500 && len(res) == 0; i++ {
		net.run(time.Millisecond)
		res = net.wants["r-eu-1"]
	}
	if len(res) != 1 || res[0].Found || !res[0].Authoritative {
		t.Fatalf("results %+v, want one authoritative not-found", res)
	}
	sent := router.Stats().MessagesOut[MsgWantReq]
	router.Want(net.now, unknown, "ctrl-us")
	res = router.Ready().Wants
	if len(res) != 1 || !res[0].Authoritative {
		t.Fatalf("cached result %+v", res)
	}
	if router.Stats().MessagesOut[MsgWantReq] != sent {
		t.Fatal("negative cache did not stop a second pull")
	}
}

func TestForgedRecordsAreIgnoredByEveryone(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 6, regions3, 3, v)
	rogue := net.nodes["r-us-0"]
	// A router signs with its own key, once claiming a controller's name
	// and once its own.
	v.key("ctrl-us") // the genuine controller exists; the router lacks its key
	forger := &writer{author: crdt.Author{Name: "ctrl-us", Incarnation: 1}, signer: testSigner{[]byte("router key")}}
	s, cert := forger.session(t, rogue, net.now, 7)
	self := &writer{author: crdt.Author{Name: "r-us-0", Incarnation: 1}, signer: testSigner{[]byte("router key")}}
	s2, cert2 := self.session(t, rogue, net.now, 8)
	// It cannot Publish (that trusts its input): it sends raw pushes.
	for _, to := range net.names() {
		if to == "r-us-0" {
			continue
		}
		m := &Message{Type: MsgPush, Origin: "r-us-0", Batch: 1, Region: "elsewhere",
			Records: []crdt.Record{s, cert, s2, cert2}}
		net.nodes[to].Step(net.now, proven("r-us-0"), m)
	}
	net.run(2 * time.Minute) // past HeldTTL
	for _, name := range net.names() {
		if name == "r-us-0" {
			continue
		}
		n := net.nodes[name]
		if n.Store().Len() != 0 {
			t.Fatalf("%s merged %d forged records", name, n.Store().Len())
		}
		if n.Stats().Rejected["bad_signature"] != 2 {
			t.Errorf("%s rejected %v", name, n.Stats().Rejected)
		}
		if n.HeldCount() != 0 {
			t.Errorf("%s still holds %d records of an unknown signer", name, n.HeldCount())
		}
	}
}

func TestNodeCatchesUpAfterBeingDown(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 7, regions3, 3, v)
	w := newWriter(v, "ctrl-eu")
	c := net.nodes["ctrl-eu"]
	net.down["r-ap-2"] = true
	for i := 0; i < 300; i++ {
		s, cert := w.session(t, c, net.now, byte(i))
		if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
			t.Fatal(err)
		}
		net.run(time.Millisecond)
	}
	net.run(time.Second)
	if got := net.nodes["r-ap-2"].Store().Len(); got != 0 {
		t.Fatalf("down node got %d records", got)
	}
	net.down["r-ap-2"] = false
	net.run(10 * time.Second)
	net.converged(600)
}

// TestClockOffsetGivesEachPeerOneVote: a controller whose clock is fine
// hears from ten peers with the same clock and then gets a burst of
// messages from one peer 6s behind (an anti-entropy answer in chunks).
// Its estimate must stay near zero: were it a median over messages, the
// burst would push it past half the max offset and the controller would
// refuse writes (sim clock-skew, seeds 6 and 16, before the change).
func TestClockOffsetGivesEachPeerOneVote(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name, cfg.Role, cfg.Region = "ctrl-us", RoleController, "us"
	c, err := NewCore(cfg, crdt.NewStore(), &testVerifier{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	hear := func(from string, skew time.Duration) {
		c.Step(now, proven(from), &Message{Type: MsgRepairReq, SentAt: crdt.MillisOf(now.Add(skew)),
			Repair: crdt.Interval{Author: crdt.Author{Name: "ctrl-eu", Incarnation: 1}, From: 0, To: 1}})
		c.Ready()
	}
	if _, ok := c.ClockOffset(); ok {
		t.Fatal("an estimate before any message")
	}
	for i := range 10 {
		hear(fmt.Sprintf("r-us-%d", i), 0)
	}
	for range 25 {
		hear("ctrl-ap", -6*time.Second)
	}
	off, ok := c.ClockOffset()
	if !ok || off != 0 {
		t.Errorf("offset %v (ok %v) after a burst from one peer 6s behind, want 0", off, ok)
	}
	// Once most peers it hears from are behind, it is this node that is
	// ahead.
	for i := range 20 {
		hear(fmt.Sprintf("r-ap-%d", i), -6*time.Second)
	}
	if off, _ := c.ClockOffset(); off != 6*time.Second {
		t.Errorf("offset %v when most peers are 6s behind, want 6s", off)
	}
}

// TestReadyIsTheDriversToKeep checks the Ready contract that the outbox's
// chunked buffers must keep: what one Ready returned is not changed by
// later calls to the core, and appending to it does not reach what the
// core emits next, nor is overwritten by it.
func TestReadyIsTheDriversToKeep(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 1, regions3, 6, v)
	w := newWriter(v, "ctrl-eu")
	c := net.nodes["ctrl-eu"]
	c.Ready() // whatever setup left
	s1, cert1 := w.session(t, c, net.now, 1)
	if err := c.Publish(net.now, []crdt.Record{s1, cert1}); err != nil {
		t.Fatal(err)
	}
	first := c.Ready()
	if len(first.Messages) == 0 || len(first.Applied) != 2 {
		t.Fatalf("first Ready: %d messages, %d applied; want some and 2", len(first.Messages), len(first.Applied))
	}
	msgs := append([]Output(nil), first.Messages...)
	applied := append([]crdt.Record(nil), first.Applied...)
	grown := append(first.Messages, Output{To: "driver's own"})

	s2, cert2 := w.session(t, c, net.now, 2)
	if err := c.Publish(net.now, []crdt.Record{s2, cert2}); err != nil {
		t.Fatal(err)
	}
	second := c.Ready()
	if !slices.Equal(first.Messages, msgs) || !slices.Equal(first.Applied, applied) {
		t.Fatal("a later Publish changed what the first Ready returned")
	}
	if last := grown[len(grown)-1]; last.To != "driver's own" {
		t.Fatalf("the core overwrote what the driver appended to a Ready with %+v", last)
	}
	if len(second.Applied) != 2 || second.Applied[0] != crdt.Record(s2) || second.Applied[1] != crdt.Record(cert2) {
		t.Fatalf("second Ready applied %v, want the second session and cert", second.Applied)
	}
}
