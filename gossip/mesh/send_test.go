package mesh

import (
	"strings"
	"testing"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// TestFrameLessNameIsTheMessageSize: the core leaves encoding to send
// (gossip.Config.EncodeLater), which decides stream or packet on the
// message's size, as the core did, from the frame less the sender's name.
func TestFrameLessNameIsTheMessageSize(t *testing.T) {
	msg := &gossip.Message{Type: gossip.MsgSyncReq, SentAt: 1, Context: crdt.Context{
		{Author: crdt.Author{Name: "ctrl-us", Incarnation: 1}, Max: 1_000, Above: []uint64{1_002, 1_004}},
	}}
	b, err := gossip.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 31, 32, crdt.MaxNameLen} {
		name := strings.Repeat("r", n)
		f, err := gossip.EncodeFrame(name, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(f) - msgpackStringLen(name); got != len(b) {
			t.Errorf("a name of %d bytes: frame less name %d bytes, message %d", n, got, len(b))
		}
	}
}
