package gossip

import (
	"cmp"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// FuzzCoreStep goes one step past FuzzDecode: whatever frame decodes is
// handed to a protocol core that holds some state, as gossip/mesh's loop
// does with what any holder of the gossip key sends. A frame with a proof
// is handed over as from a proven sender (a stolen node key proves its
// name): proven senders' input must be as safe. Nothing panics, the
// core answers within bounded work (a hang fails the fuzzer), and the
// store only ever holds records that verify. The seed corpus (every
// message type, framed, unproven and proven) runs in plain go test:
//
//	go test ./gossip/ -run '^$' -fuzz FuzzCoreStep -fuzztime 60s
func FuzzCoreStep(f *testing.F) {
	auth := newAuthFixture(f)
	for _, m := range sampleMessages(f) {
		fr, err := EncodeFrame("ctrl-eu", m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
		fr, err = EncodeFrame("ctrl-a", m)
		if err != nil {
			f.Fatal(err)
		}
		proven, err := auth.auth["ctrl-a"].Prove(fr, "r-us-0")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(proven)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			return
		}
		from, m := fr.From, fr.Msg
		sender := Sender{Name: from}
		if fr.Proof != nil {
			sender.Proven, sender.Role = true, RoleRouter
			if len(fr.Proof.Cert)%2 == 0 {
				sender.Role = RoleController
			}
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
			{Name: from, Role: cmp.Or(sender.Role, RoleRouter), Region: "us"},
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

		c.Step(now, sender, m)
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
