package gossip

import (
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Helpers of the tests that send as a key holder would (core_sender_test.go;
// gossip/mesh has its own, for mesh_hostile_test.go).

// unproven is a sender that proved nothing: anyone may have written the
// name.
func unproven(name string) Sender { return Sender{Name: name} }

// step and peerState hand c a message from s.
func step(c *Core, now time.Time, s Sender, m *Message)            { c.Step(now, s, m) }
func peerState(c *Core, now time.Time, s Sender, ctx crdt.Context) { c.PeerState(now, s, ctx) }
