package gossip

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// TestSteppingInSlicesIsStep: a node that steps each message a few records
// at a time (as gossip/mesh's loop does, letting go of its lock between
// slices) ends where one that steps it at once does, message for message:
// a catch-up in long deltas, forged records in a relayed push (refused in
// a slice before the last, so the push must not be relayed), records held
// for a signer that arrives later in the same message.
func TestSteppingInSlicesIsStep(t *testing.T) {
	for _, slice := range []int{1, 3, 64} {
		t.Run(fmt.Sprint("slice", slice), func(t *testing.T) {
			whole, sliced := steppingScenario(t, 0), steppingScenario(t, slice)
			if n := whole.nodes["r-ap-2"].Store().Len(); n != 402 {
				t.Fatalf("the node that was down caught up %d records, want 402", n)
			}
			for _, name := range whole.names() {
				a, b := whole.nodes[name], sliced.nodes[name]
				if a.Store().Len() != b.Store().Len() || !slices.EqualFunc(a.Store().Context(), b.Store().Context(), authorContextEqual) {
					t.Errorf("%s: %d records, context %v; in slices %d, %v", name,
						a.Store().Len(), a.Store().Context(), b.Store().Len(), b.Store().Context())
				}
				sa, sb := a.Stats(), b.Stats()
				if sa.MessagesIn != sb.MessagesIn || sa.MessagesOut != sb.MessagesOut || sa.Applied != sb.Applied ||
					sa.BytesOut != sb.BytesOut || !maps.Equal(sa.Rejected, sb.Rejected) {
					t.Errorf("%s: stats %+v; in slices %+v", name, *sa, *sb)
				}
				if a.HeldCount() != b.HeldCount() {
					t.Errorf("%s: holds %d; in slices %d", name, a.HeldCount(), b.HeldCount())
				}
			}
		})
	}
}

func authorContextEqual(a, b crdt.AuthorContext) bool {
	return a.Author == b.Author && a.Max == b.Max && slices.Equal(a.Above, b.Above)
}

func steppingScenario(t *testing.T, slice int) *testNet {
	v := &testVerifier{}
	net := newTestNet(t, 11, regions3, 6, v) // trees two deep: some routers relay
	net.slice = slice
	w := newWriter(v, "ctrl-eu")
	c := net.nodes["ctrl-eu"]
	net.down["r-ap-2"] = true
	for i := range 200 {
		s, cert := w.session(t, c, net.now, byte(i))
		if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
			t.Fatal(err)
		}
		net.run(time.Millisecond)
	}
	// A router pushes forged records with genuine ones after them: the
	// genuine merge, the push goes no further.
	forger := &writer{author: crdt.Author{Name: "ctrl-us", Incarnation: 1}, signer: testSigner{[]byte("router key")}}
	v.key("ctrl-us")
	s, cert := forger.session(t, net.nodes["r-us-0"], net.now, 7)
	g1, g2 := w.session(t, c, net.now, 201)
	for _, to := range net.names() {
		if to == "r-us-0" || to == "r-ap-2" {
			continue
		}
		m := &Message{Type: MsgPush, Origin: "r-us-0", Batch: 1, Region: "us", Records: []crdt.Record{s, cert, g1, g2}}
		net.step(net.nodes[to], proven("r-us-0"), m)
	}
	net.run(time.Second)
	net.down["r-ap-2"] = false
	net.run(10 * time.Second)
	return net
}
