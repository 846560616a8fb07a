package gossip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// BenchmarkHold measures how long a driver holds its lock for one
// received message, in CPU, free of the scheduling noise of a loaded
// machine that gossip/mesh's admission benchmarks carry. delta: a delta
// of 1,300 records (as catch-up brings them) stepped at once (whole-us),
// and in slices of 256 records as gossip/mesh steps it (slice-us, the
// longest of Begin, each Ingest and Finish, averaged over runs). sync: a
// router whose store has 30,000 gaps answers a sync request, asking back
// with its causal context: step-us with the core encoding what it sends,
// later-us with EncodeLater (gossip/mesh), whose driver encodes after its
// lock.
//
//	go test -run '^$' -bench Hold -benchtime 20x ./gossip/
func BenchmarkHold(b *testing.B) {
	b.Run("delta", func(b *testing.B) {
		const per, slice = 1_300, 256
		v := &testVerifier{}
		w := newWriter(v, "ctrl-us")
		clock := crdt.NewClock(0)
		recs := make([]crdt.Record, 0, per)
		for i := range per / 2 {
			s, c := sessionPair(w, clock, i)
			recs = append(recs, s, c)
		}
		var whole, slices time.Duration
		for range b.N {
			c := holdCore(b, v, false)
			start := time.Now()
			c.Step(epoch, proven("ctrl-us"), &Message{Type: MsgDelta, Records: recs})
			whole += time.Since(start)
			c = holdCore(b, v, false)
			var longest time.Duration
			start = time.Now()
			s := c.Begin(epoch, proven("ctrl-us"), &Message{Type: MsgDelta, Records: recs})
			for s.Ingest(slice) > 0 {
				longest = max(longest, time.Since(start))
				start = time.Now()
			}
			s.Finish()
			slices += max(longest, time.Since(start))
		}
		b.ReportMetric(float64(whole.Microseconds())/float64(b.N), "whole-us")
		b.ReportMetric(float64(slices.Microseconds())/float64(b.N), "slice-us")
	})
	b.Run("sync", func(b *testing.B) {
		const gaps = 30_000
		v := &testVerifier{}
		w := newWriter(v, "ctrl-us")
		clock := crdt.NewClock(0)
		var recs []crdt.Record
		for i := range gaps {
			s, _ := sessionPair(w, clock, i) // the certificate records are the gaps
			recs = append(recs, s)
		}
		var step, later time.Duration
		for range b.N {
			for _, encodeLater := range []bool{false, true} {
				c := holdCore(b, v, encodeLater)
				for _, r := range recs {
					if _, err := c.Store().MergeVerified(r); err != nil {
						b.Fatal(err)
					}
				}
				c.Ready()
				start := time.Now()
				// The peer has every record: the router asks back.
				theirs := crdt.Context{{Author: w.author, Max: w.seq}}
				c.Step(epoch, proven("r-us-1"), &Message{Type: MsgSyncReq, Context: theirs})
				d := time.Since(start)
				if rd := c.Ready(); len(rd.Messages) == 0 || rd.Messages[0].Msg.Context == nil {
					b.Fatal("no answer asking back")
				}
				if encodeLater {
					later += d
				} else {
					step += d
				}
			}
		}
		b.ReportMetric(float64(step.Microseconds())/float64(b.N), "step-us")
		b.ReportMetric(float64(later.Microseconds())/float64(b.N), "later-us")
	})
}

// holdCore is a router r-us-0 with ctrl-us and r-us-1 as members.
func holdCore(b *testing.B, v *testVerifier, encodeLater bool) *Core {
	cfg := DefaultConfig()
	cfg.Name, cfg.Role, cfg.Region = "r-us-0", RoleRouter, "us"
	cfg.EncodeLater = encodeLater
	c, err := NewCore(cfg, crdt.NewStore(), v, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	c.SetMember(Member{Name: "ctrl-us", Role: RoleController, Region: "us"})
	c.SetMember(Member{Name: "r-us-1", Role: RoleRouter, Region: "us"})
	return c
}
