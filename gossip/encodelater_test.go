package gossip

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// TestEncodeLaterLeavesEncodingToTheDriver: with EncodeLater, the core
// encodes nothing it sends (its driver frames each message after its
// lock), counts the messages but not their bytes, and replicates as
// before.
func TestEncodeLaterLeavesEncodingToTheDriver(t *testing.T) {
	v := &testVerifier{}
	net := newTestNetConfig(t, 3, regions3, 3, v, func(cfg *Config) {
		cfg.Fanout = 3
		cfg.EncodeLater = true
	})
	encoded := 0
	net.drop = func(from, to string, m *Message) bool {
		if m.Size() != 0 {
			encoded++
		}
		return false
	}
	w := newWriter(v, "ctrl-us")
	for i := range 20 {
		c := net.nodes["ctrl-us"]
		s, cert := w.session(t, c, net.now, byte(i))
		if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
			t.Fatal(err)
		}
		net.run(time.Millisecond)
	}
	net.run(5 * time.Second)
	net.converged(40)
	if encoded > 0 {
		t.Errorf("%d messages sent encoded by the core", encoded)
	}
	for _, name := range net.names() {
		st := net.nodes[name].Stats()
		if st.BytesOut != 0 {
			t.Errorf("%s counted %d bytes out", name, st.BytesOut)
		}
		if name == "ctrl-us" && st.MessagesOut[MsgPush] == 0 {
			t.Errorf("%s counted no push out", name)
		}
	}
}
