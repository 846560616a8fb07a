package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// A push relayed down a tree keeps its origin's SentAt. The clock offset
// estimate must sample only the member that sent the message, or a busy
// controller 3s behind would make one 3s ahead (6s apart, within the 10s
// max offset) believe itself more than half the max offset off, and refuse
// writes.
func TestClockOffsetSamplesTheSenderNotARelayedOrigin(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 7, regions3, 3, v)
	ahead := net.nodes["ctrl-us"]
	now := net.now
	for i := range 20 {
		// Relayed by a router whose clock agrees: origin's SentAt 6s back.
		ahead.Step(now, proven("r-us-0"), &Message{Type: MsgPush, SentAt: crdt.MillisOf(now.Add(-6 * time.Second)),
			Origin: "ctrl-ap", Batch: uint64(i + 1), Region: "us"})
		ahead.Step(now, proven("r-us-1"), &Message{Type: MsgIHave, SentAt: crdt.MillisOf(now.Add(-6 * time.Second)),
			Origin: "ctrl-ap", Batch: uint64(i + 100), Tree: 1, Region: "us"})
	}
	if off, ok := ahead.ClockOffset(); ok {
		t.Fatalf("offset %v estimated from relayed messages only", off)
	}
	ahead.Step(now, proven("r-us-0"), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now.Add(-3 * time.Second))})
	ahead.Step(now, proven("ctrl-ap"), &Message{Type: MsgPush, SentAt: crdt.MillisOf(now.Add(-6 * time.Second)),
		Origin: "ctrl-ap", Batch: 1000, Region: "us"}) // straight from its origin: a sample
	ahead.Step(now, proven("r-us-1"), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now.Add(-3 * time.Second))})
	if off, ok := ahead.ClockOffset(); !ok || off != 3*time.Second {
		t.Fatalf("offset %v %v, want 3s (the median of its senders' samples)", off, ok)
	}
}

// Clock samples come only from proven frames, about one a second at a
// node, so the estimate rests on the peers heard most recently: after a
// step of this node's clock, three fresh samples from three peers move it
// (before, a median over every peer among the last 32 samples waited for
// most of them to speak again: 8 to 14 s in TestControllerClockFarAhead).
func TestClockOffsetFollowsAStepWithinThreeSamples(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Name, cfg.Role, cfg.Region = "ctrl-us", RoleController, "us"
	c, err := NewCore(cfg, crdt.NewStore(), &testVerifier{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	hear := func(from string, skew time.Duration) {
		c.Step(now, proven(from), &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now.Add(skew)), Context: crdt.Context{}})
	}
	for i := range 20 {
		hear(fmt.Sprintf("r-us-%d", i%10), 0)
	}
	for i := range 3 {
		hear(fmt.Sprintf("r-us-%d", i), -40*time.Second) // this node's clock stepped 40s ahead
		if off, _ := c.ClockOffset(); i < 2 && off != 0 {
			t.Errorf("after %d fresh samples the offset is %v, want 0 still", i+1, off)
		}
	}
	if off, _ := c.ClockOffset(); off != 40*time.Second {
		t.Errorf("after three fresh samples the offset is %v, want 40s", off)
	}
}
