package gossip

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Hostile input at the protocol core, in virtual time: messages any holder
// of the gossip key can send. Each must cost the receiver work bounded by
// its own state, never by the numbers the message claims.

func TestRepairRequestForAHugeIntervalIsBounded(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 11, []string{"us"}, 2, v)
	w := newWriter(v, "ctrl-us")
	c := net.nodes["ctrl-us"]
	for i := 0; i < 3; i++ {
		s, cert := w.session(t, c, net.now, byte(i))
		if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
			t.Fatal(err)
		}
	}
	net.run(time.Second)
	c.Ready()
	for _, iv := range []crdt.Interval{
		{Author: w.author, From: 0, To: 1<<64 - 1},                                    // everything, and far beyond
		{Author: w.author, From: 2, To: 1 << 62},                                      // from the middle
		{Author: crdt.Author{Name: "nobody", Incarnation: 1}, From: 0, To: 1<<64 - 1}, // an author nobody knows
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Step(net.now, proven("r-us-0"), &Message{Type: MsgRepairReq, SentAt: crdt.MillisOf(net.now), Repair: iv})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("a repair request for %v (%d, %d] is still being answered after 10s", iv.Author, iv.From, iv.To)
		}
		rd := c.Ready()
		if len(rd.Messages) != 1 || rd.Messages[0].Msg.Type != MsgDelta {
			t.Fatalf("answer to (%d, %d]: %+v", iv.From, iv.To, rd.Messages)
		}
		d := rd.Messages[0].Msg
		if iv.Author == w.author {
			if want := 6 - int(iv.From); len(d.Records) != want {
				t.Errorf("(%d, %d]: %d records, want %d", iv.From, iv.To, len(d.Records), want)
			}
			if len(d.Intervals) != 1 || d.Intervals[0].To != 6 {
				t.Errorf("(%d, %d]: intervals %+v, want up to 6", iv.From, iv.To, d.Intervals)
			}
		} else if len(d.Records) != 0 || len(d.Intervals) != 0 {
			t.Errorf("unknown author: %+v", d)
		}
	}
}

func TestIHaveOfDotsAlreadyHeldIsCheap(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 12, []string{"us"}, 1, v)
	w := newWriter(v, "ctrl-us")
	c := net.nodes["r-us-0"]
	const held = MaxRecordsPerMsg
	for i := 0; i < held/2; i++ {
		s, cert := w.session(t, c, net.now, byte(i))
		c.store.MergeVerified(s)
		c.store.MergeVerified(cert)
	}
	// The most intervals a message may carry, each announcing every dot
	// the node already holds.
	ivs := make([]crdt.Interval, MaxIntervalsPerMsg)
	for i := range ivs {
		ivs[i] = crdt.Interval{Author: w.author, From: 0, To: held}
	}
	m := &Message{Type: MsgIHave, SentAt: crdt.MillisOf(net.now), Origin: "ctrl-us", Batch: 1, Region: "us", Intervals: ivs}
	start := time.Now()
	c.Step(net.now, proven("ctrl-us"), m)
	took := time.Since(start)
	t.Logf("an IHave of %d intervals of %d held dots took %v", len(ivs), held, took)
	if took > 200*time.Millisecond {
		t.Errorf("an IHave of dots already held took %v", took)
	}
}

// A controller whose clock ran ahead: its signer record is held until
// local time catches up, and the records waiting for that signer must
// merge with it, not wait out HeldTTL and anti-entropy.
func TestRecordsWaitingForAClockHeldSignerMergeWithIt(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 13, []string{"us"}, 1, v)
	r := net.nodes["r-us-0"]
	w := newWriter(v, "ctrl-us")
	ahead := crdt.NewClock(0)
	future := net.now.Add(crdt.DefaultMaxOffset + 5*time.Second)
	signer := &crdt.SignerRecord{Controller: "ctrl-us", KeyID: [32]byte{1}, Cert: []byte("der"), NotAfter: crdt.MillisOf(future.Add(time.Hour))}
	signer.Header = crdt.Header{Author: w.author, Seq: 1, HLC: ahead.Now(future)}
	if err := crdt.Sign(signer, w.signer); err != nil {
		t.Fatal(err)
	}
	w.seq = 1
	s, cert := w.session(t, net.nodes["ctrl-us"], future, 1)
	delete(v.keys, "ctrl-us") // nobody knows the author yet: held for a signer
	r.Step(net.now, proven("ctrl-us"), &Message{Type: MsgPush, Origin: "ctrl-us", Batch: 1, Region: "us", Records: []crdt.Record{s, cert}})
	v.key("ctrl-us") // the signer record will vouch for it
	r.Step(net.now, proven("ctrl-us"), &Message{Type: MsgPush, Origin: "ctrl-us", Batch: 2, Region: "us", Records: []crdt.Record{signer}})
	if r.HeldCount() != 3 || r.Store().Len() != 0 {
		t.Fatalf("held %d, merged %d, want 3 held", r.HeldCount(), r.Store().Len())
	}
	for i := 0; i < 60 && r.HeldCount() > 0; i++ {
		net.now = net.now.Add(time.Second)
		r.Tick(net.now)
	}
	if r.HeldCount() != 0 || r.Store().Len() != 3 {
		t.Fatalf("after time caught up: held %d, merged %d, want all 3 merged", r.HeldCount(), r.Store().Len())
	}
	if got, want := net.now.Sub(epoch), future.Sub(epoch); got < want || got > want+time.Second {
		t.Errorf("merged %v later, want as soon as local time reaches the signer's timestamp (%v)", got, want)
	}
}
