package gossip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// FuzzCoreStep goes one step past FuzzDecode: whatever frame decodes is
// handed to a protocol core that holds some state, as the Mesh's loop
// does with what any holder of the gossip key sends. Nothing panics, the
// core answers within bounded work (a hang fails the fuzzer), and the
// store only ever holds records that verify. The seed corpus (every
// message type, framed) runs in plain go test:
//
//	go test ./gossip/ -run '^$' -fuzz FuzzCoreStep -fuzztime 60s
func FuzzCoreStep(f *testing.F) {
	for _, m := range sampleMessages(f) {
		fr, err := EncodeFrame("ctrl-eu", m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		from, m, err := DecodeFrame(b)
		if err != nil {
			return
		}
		v := &testVerifier{}
		w := newWriter(v, "ctrl-us") // the author of sampleMessages' records
		cfg := DefaultConfig()
		cfg.Name, cfg.Role, cfg.Region = "r-us-0", RoleRouter, "us"
		c, err := NewCore(cfg, crdt.NewStore(), v, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range []Member{
			{Name: "ctrl-us", Role: RoleController, Region: "us"},
			{Name: "ctrl-eu", Role: RoleController, Region: "eu"},
			{Name: "r-us-1", Role: RoleRouter, Region: "us"},
			{Name: from, Role: RoleRouter, Region: "us"},
		} {
			c.SetMember(mb)
		}
		now := epoch
		for i := 0; i < 3; i++ {
			s, cert := w.session(t, c, now, byte(i))
			if err := c.Publish(now, []crdt.Record{s, cert}); err != nil {
				t.Fatal(err)
			}
		}
		c.Want(now, crdt.Serial{2}, "ctrl-us") // a pull in progress, for answers to find
		c.Ready()

		c.Step(now, Sender{Name: from}, m)
		for _, d := range []time.Duration{time.Millisecond, time.Second, 2 * time.Minute} {
			c.Tick(now.Add(d))
		}
		rd := c.Ready()
		for _, o := range rd.Messages {
			if _, err := Encode(o.Msg); err != nil {
				t.Fatalf("the core answers with a message it cannot encode: %v", err)
			}
		}
		c.Store().Range(func(r crdt.Record) bool {
			if err := crdt.Verify(r, v); err != nil {
				t.Fatalf("the store holds a record that does not verify: %v", err)
			}
			return true
		})
	})
}
