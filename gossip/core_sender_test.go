package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// A frame's sender name is whatever its sender wrote (issue 13, items 2 to
// 4). These tests send, at the protocol core, what any holder of the
// gossip key can: frames under made-up names or under a real member's
// name, proving nothing. Only a proven sender's word counts where the
// sender is trusted; what unproven frames carry still works when it
// verifies on its own.
//
//	go test ./gossip/ -run 'Forged|MadeUp|Proven' -v

// hostileMessages are frames a key holder sends, each with SentAt at.
func hostileMessages(at time.Time, ctrl crdt.Author) []*Message {
	sent := crdt.MillisOf(at)
	return []*Message{
		{Type: MsgSyncReq, SentAt: sent, Context: crdt.Context{}},
		{Type: MsgRepairReq, SentAt: sent, Repair: crdt.Interval{Author: ctrl, From: 0, To: 1}},
		{Type: MsgDelta, SentAt: sent, More: true, Context: crdt.Context{}},
		{Type: MsgWantReq, SentAt: sent, WantID: 1, Serial: crdt.Serial{9}},
		{Type: MsgWantResp, SentAt: sent, WantID: 1, Serial: crdt.Serial{9}, Authoritative: true},
		{Type: MsgPush, SentAt: sent, Origin: "ctrl-eu", Batch: 77, Region: "us"},
	}
}

// Item 2: about 40 made-up names sending frames an hour old moved a
// controller's clock estimate to an hour, and every write was refused.
func TestForgedSenderNamesDoNotMoveTheClock(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 21, regions3, 3, v)
	ctrl := net.nodes["ctrl-us"]
	fresh := net.nodes["ctrl-eu"] // has heard from nobody yet
	now := net.now
	// Three genuine peers whose clocks agree, proven.
	for _, p := range []string{"r-us-0", "r-us-1", "ctrl-ap"} {
		step(ctrl, now, proven(p), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: crdt.Context{}})
	}
	if off, ok := ctrl.ClockOffset(); !ok || off != 0 {
		t.Fatalf("offset %v %v from genuine peers, want 0", off, ok)
	}
	hourAgo := now.Add(-time.Hour)
	for i := range 40 {
		name := fmt.Sprintf("made-up-%d", i)
		for _, m := range hostileMessages(hourAgo, crdt.Author{Name: "ctrl-us", Incarnation: 1}) {
			step(ctrl, now, unproven(name), m)
			step(fresh, now, unproven(name), m)
		}
	}
	// The same under the names of real members and of the controller's
	// own peers.
	for _, name := range net.names() {
		for _, m := range hostileMessages(hourAgo, crdt.Author{Name: "ctrl-us", Incarnation: 1}) {
			step(ctrl, now, unproven(name), m)
			step(fresh, now, unproven(name), m)
		}
	}
	if off, ok := ctrl.ClockOffset(); !ok || off > time.Second || off < -time.Second {
		t.Errorf("after the forged frames, the controller's offset is %v (%v), want about 0", off, ok)
	}
	if off, ok := fresh.ClockOffset(); ok {
		t.Errorf("a controller that heard only forged frames estimates its offset at %v", off)
	}
}

// Item 3: a router took an authoritative "not found" from any frame that
// named the issuer as its sender, and cached it.
func TestForgedNotFoundDoesNotSettleAPull(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 22, regions3, 3, v)
	w := newWriter(v, "ctrl-us")
	ctrl := net.nodes["ctrl-us"]
	s, cert := w.session(t, ctrl, net.now, 1)
	if err := ctrl.Publish(net.now, []crdt.Record{s, cert}); err != nil {
		t.Fatal(err)
	}
	ctrl.Ready() // the push is lost everywhere
	router := net.nodes["r-ap-0"]
	router.Want(net.now, cert.Serial, "ctrl-us")
	id := router.pulls[cert.Serial].id // its requests stay queued for the network
	// Want ids are drawn at random: a node that was not asked cannot
	// guess the one in flight from a counter.
	other := net.nodes["r-eu-0"]
	var seq []uint64
	for i := range 3 {
		serial := crdt.Serial{0xee, byte(i)}
		other.Want(net.now, serial, "ctrl-us")
		seq = append(seq, other.pulls[serial].id)
	}
	other.Ready()
	if seq[1] == seq[0]+1 || seq[2] == seq[1]+1 || id < 1<<20 {
		t.Errorf("want ids %d, %v look sequential", id, seq)
	}
	// Whoever knows the id (the worst case) answers "never issued" in the
	// issuer's name without proving it, then as a controller that is not
	// the issuer, proven.
	forged := &Message{Type: MsgWantResp, SentAt: crdt.MillisOf(net.now), WantID: id, Serial: cert.Serial, Authoritative: true}
	step(router, net.now, unproven("ctrl-us"), forged)
	step(router, net.now, proven("ctrl-eu"), forged)
	step(router, net.now, Sender{Name: "ctrl-us", Proven: true, Role: RoleRouter}, forged) // a router certificate under the issuer's name
	if len(router.wants) != 0 || router.pulls[cert.Serial] == nil {
		t.Fatalf("a forged answer settled the pull: %+v", router.wants)
	}
	// The issuer's genuine answer is found; the client is admitted.
	start := net.now
	var res []WantResult
	for len(res) == 0 && net.now.Sub(start) < 2*time.Second {
		net.run(time.Millisecond)
		res = net.wants["r-ap-0"]
	}
	if len(res) != 1 || !res[0].Found || res[0].Serial != cert.Serial {
		t.Fatalf("pull after the forged answers: %+v, want found", res)
	}
	if router.Stats().Pulls["cached"] != 0 || len(router.negative) != 0 {
		t.Errorf("a forged answer was cached: %v", router.negative)
	}
}

// Item 4: every delta frame created per-peer state under the name it
// claimed; 200,000 made-up names added 200,000 entries, never removed.
func TestMadeUpSenderNamesGrowNoPeerState(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 23, regions3, 3, v)
	c := net.nodes["ctrl-us"]
	members := len(net.names()) - 1
	net.run(time.Second) // nodes tick first at the end of a run
	net.run(3 * time.Second)
	base := len(c.peers)
	if base == 0 {
		t.Fatal("no genuine peer state to start from")
	}
	now := net.now
	ctx := crdt.Context{{Author: crdt.Author{Name: "ctrl-nobody", Incarnation: 1}, Max: 5}}
	const names = 200_000
	answered := 0
	for i := range names {
		name := fmt.Sprintf("made-up-%d", i)
		// Every name sends a delta, and a sync request, a push-pull or
		// a delta that asks for more.
		step(c, now, unproven(name), &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now)})
		switch i % 3 {
		case 0:
			step(c, now, unproven(name), &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now), More: true, Context: ctx})
		case 1:
			step(c, now, unproven(name), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: ctx})
		case 2:
			peerState(c, now, unproven(name), ctx)
		}
		if i%1000 == 999 {
			for _, o := range c.Ready().Messages {
				if net.nodes[o.To] == nil {
					answered++
				}
			}
		}
	}
	if answered > 0 {
		t.Errorf("the core sent %d messages to made-up names", answered)
	}
	if len(c.peers) > members {
		t.Errorf("%d per-peer entries after %d made-up names, want at most the %d members", len(c.peers), names, members)
	}
	if len(c.exchanging) > MaxExchanging {
		t.Errorf("%d exchanges tracked, cap %d", len(c.exchanging), MaxExchanging)
	}
	for name := range c.exchanging {
		if net.nodes[name] == nil {
			t.Errorf("an exchange tracked under made-up name %q", name)
			break
		}
	}
	for name := range c.peers {
		if net.nodes[name] == nil {
			t.Errorf("per-peer state under made-up name %q", name)
			break
		}
	}
	t.Logf("%d per-peer entries, %d exchanges after %d made-up names (%d members)", len(c.peers), len(c.exchanging), names, members)
	// A member that goes takes its state with it.
	c.SetMember(Member{Name: "r-us-9", Role: RoleRouter, Region: "us"})
	step(c, now, proven("r-us-9"), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: crdt.Context{}})
	if _, ok := c.peers["r-us-9"]; !ok {
		t.Fatal("no state for a proven member's context")
	}
	c.RemoveMember("r-us-9")
	if _, ok := c.peers["r-us-9"]; ok {
		t.Error("a member that left keeps its state")
	}
}

// A made-up "the exchange is over" must not make a restarted node ready
// before it caught up: only a proven peer's exchange makes it Synced.
func TestForgedDeltaDoesNotMakeANodeSynced(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 24, regions3, 3, v)
	w := newWriter(v, "ctrl-us")
	ctrl := net.nodes["ctrl-us"]
	s, cert := w.session(t, ctrl, net.now, 1)
	if err := ctrl.Publish(net.now, []crdt.Record{s, cert}); err != nil {
		t.Fatal(err)
	}
	ctrl.Ready()
	cfg := DefaultConfig()
	cfg.Name, cfg.Role, cfg.Region = "r-us-new", RoleRouter, "us"
	fresh, err := NewCore(cfg, crdt.NewStore(), v, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range net.names() {
		nc := net.nodes[n].Config()
		fresh.SetMember(Member{Name: n, Role: nc.Role, Region: nc.Region})
	}
	fresh.SyncWith(net.now, "ctrl-us")
	fresh.Ready()
	// A key holder ends the exchange in ctrl-us's name, and claims a peer
	// that has nothing.
	step(fresh, net.now, unproven("ctrl-us"), &Message{Type: MsgDelta, SentAt: crdt.MillisOf(net.now)})
	step(fresh, net.now, unproven("r-us-0"), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(net.now), Context: crdt.Context{}})
	peerState(fresh, net.now, unproven("r-us-1"), crdt.Context{})
	if fresh.Synced() {
		t.Fatal("synced by forged frames, holding nothing")
	}
	// The genuine controller's context, proven: synced once it holds it.
	peerState(fresh, net.now, proven("ctrl-us"), ctrl.Store().Context())
	if fresh.Synced() {
		t.Fatal("synced before holding the peer's records")
	}
	step(fresh, net.now, unproven("ctrl-us"), &Message{Type: MsgDelta, SentAt: crdt.MillisOf(net.now),
		Records: []crdt.Record{s, cert}, Intervals: []crdt.Interval{{Author: w.author, From: 0, To: 2}}})
	if !fresh.Synced() {
		t.Error("not synced after receiving everything a proven peer holds")
	}
}

// What proven peers say still counts: their clock samples, the issuer's
// "never issued", and their contexts for readiness and lag.
func TestProvenPeersStillCount(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 25, regions3, 3, v)
	c := net.nodes["ctrl-us"]
	now := net.now
	for i, p := range []string{"r-us-0", "r-us-1", "r-us-2"} {
		step(c, now, proven(p), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now.Add(-time.Duration(i+6) * time.Second)), Context: crdt.Context{}})
	}
	if off, ok := c.ClockOffset(); !ok || off != 7*time.Second {
		t.Errorf("offset %v %v from three proven peers 6 to 8s behind, want 7s", off, ok)
	}
	if lag, ok := c.PeerLag("r-us-1"); !ok || lag != 0 {
		t.Errorf("lag of a proven peer %d %v", lag, ok)
	}
	router := net.nodes["r-ap-0"]
	serial := crdt.Serial{0xde, 0xad}
	router.Want(now, serial, "ctrl-us")
	var id uint64
	for _, o := range router.Ready().Messages {
		if o.Msg.Type == MsgWantReq && o.To == "ctrl-us" {
			id = o.Msg.WantID
		}
	}
	step(router, now, proven("ctrl-us"), &Message{Type: MsgWantResp, SentAt: crdt.MillisOf(now), WantID: id, Serial: serial, Authoritative: true})
	rd := router.Ready()
	if len(rd.Wants) != 1 || !rd.Wants[0].Authoritative || rd.Wants[0].Found {
		t.Fatalf("the issuer's proven answer: %+v, want authoritative not found", rd.Wants)
	}
	router.Want(now, serial, "ctrl-us")
	if rd := router.Ready(); len(rd.Wants) != 1 || !rd.Wants[0].Authoritative || router.Stats().Pulls["cached"] != 1 {
		t.Errorf("the issuer's answer was not cached: %+v", rd.Wants)
	}
}

// Anti-entropy turns to the peer synced least recently. A made-up "we
// just synced" under a member's name must not steer it: only exchanges
// this node started, or a proven peer started, count.
func TestForgedDeltasDoNotSteerAntiEntropy(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 26, regions3, 3, v)
	c := net.nodes["ctrl-us"]
	now := net.now
	for _, n := range []string{"r-us-0", "r-us-1", "r-us-2"} {
		step(c, now, unproven(n), &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now)})
		step(c, now, unproven(n), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: crdt.Context{}})
		peerState(c, now, unproven(n), crdt.Context{})
	}
	for n, p := range c.peers {
		if !p.lastSync.IsZero() {
			t.Errorf("a forged frame in %s's name marks it synced", n)
		}
	}
	step(c, now, proven("r-us-1"), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: crdt.Context{}})
	if p := c.peers["r-us-1"]; p == nil || !p.lastSync.Equal(now) {
		t.Error("a proven peer's sync request does not count as an exchange")
	}
}
