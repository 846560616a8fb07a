package mesh

import (
	"errors"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// How a Mesh checks who sent a frame (gossip.NodeAuth): off the loop and never
// under the mesh's lock, since admission lookups take that lock and must
// not wait on crypto. Frames that carry a proof go to the check stage
// (check.go) through a bounded queue, so that memberlist's packet
// handler, which also handles its probes, never waits on ECDSA either;
// memberlist's push-pull, one goroutine per stream already, checks its
// own. A frame whose proof fails is counted and handed to the core
// unproven: what it carries is still verified record by record.

// maxProvenSenders caps the senders whose last proven frame time a node
// keeps (replay protection): members only, and only those a root-issued
// certificate names.
const maxProvenSenders = 1 << 16

// verifyFrame returns the sender of f: proven if its proof, made for
// recipient ("" for any node: a push-pull), holds and it is no replay.
func (m *Mesh) verifyFrame(f *gossip.Frame, recipient string) gossip.Sender {
	unproven := gossip.Sender{Name: f.From}
	if f.Proof == nil {
		return unproven
	}
	now := m.clock()
	s, err := m.cfg.Auth.Verify(now, f, recipient)
	return m.takeProof(f, recipient, now, s, err)
}

// takeProof applies the replay rule to a frame whose proof
// NodeAuth.Verify checked at now, and counts what it refuses. Frames of
// one sender must be taken in the order they arrived.
func (m *Mesh) takeProof(f *gossip.Frame, recipient string, now time.Time, s gossip.Sender, err error) gossip.Sender {
	unproven := gossip.Sender{Name: f.From}
	if err == nil && s.Proven {
		s.Proven, err = m.acceptProven(now, s.Name, f.Msg.SentAt, recipient == "")
	}
	if err != nil {
		reason := "bad_proof"
		if errors.Is(err, gossip.ErrStaleProof) {
			reason = "stale_proof"
		}
		m.met.drop(reason)
		m.log.Debug("gossip: sender not proven", "from", f.From, "type", f.Msg.Type.String(), "err", err)
		return unproven
	}
	if !s.Proven {
		return unproven
	}
	m.provenSeen.Store(true)
	return s
}

// acceptProven applies the replay rule to a frame proven by name, sent at
// sentAt: it is taken only if not older than the last frame taken from
// name. A frame made for any recipient (a push-pull) could be replayed to
// any node, so it must also be within the max offset of this node's clock.
// A proven name membership does not list yet (a node that just joined and
// heard of this one first) counts: only the root can make such names, and
// housekeeping forgets those that do not become members (pruneProven).
func (m *Mesh) acceptProven(now time.Time, name string, sentAt crdt.Millis, anyRecipient bool) (bool, error) {
	if anyRecipient {
		if d := time.Duration(crdt.MillisOf(now)-sentAt) * time.Millisecond; d > m.cfg.Core.MaxOffset || d < -m.cfg.Core.MaxOffset {
			return false, gossip.ErrStaleProof
		}
	}
	m.proofMu.Lock()
	defer m.proofMu.Unlock()
	last, ok := m.lastProven[name]
	switch {
	case ok && sentAt < last:
		return false, gossip.ErrStaleProof
	case !ok && len(m.lastProven) >= maxProvenSenders:
		return false, nil // taken as unproven until housekeeping prunes
	}
	m.lastProven[name] = sentAt
	return true, nil
}

// pruneProven forgets the last proven frame times of nodes membership
// does not know (any more), when there are more of them than members. It
// must not be called with nodesMu or proofMu held.
func (m *Mesh) pruneProven() {
	m.proofMu.Lock()
	n := len(m.lastProven)
	m.proofMu.Unlock()
	m.nodesMu.RLock()
	if n <= len(m.nodes) {
		m.nodesMu.RUnlock()
		return
	}
	known := make(map[string]bool, len(m.nodes))
	for name := range m.nodes {
		known[name] = true
	}
	m.nodesMu.RUnlock()
	m.proofMu.Lock()
	for name := range m.lastProven {
		if !known[name] {
			delete(m.lastProven, name)
		}
	}
	m.proofMu.Unlock()
}

// allRead reports whether this node knows live members and every one of
// them reads frame trailers (protocol 1.1 on): a push-pull, whose peer its
// delegate is not told, carries a proof only then. A node joining knows
// nobody yet, and its seed may be of 1.0. (A 1.0 node joining through a
// seed whose other members all read proofs gets a push-pull it refuses;
// the exchanges each side starts when it sees the other catch it up.)
func (m *Mesh) allRead() bool { return m.allAnnounce(gossip.MinorTrailer) }

// allAnnounce reports whether this node knows at least one other alive
// member and every one announces protocol minor or later.
func (m *Mesh) allAnnounce(minor uint8) bool {
	m.nodesMu.RLock()
	defer m.nodesMu.RUnlock()
	known := false
	for _, ni := range m.nodes {
		if ni.state != "alive" {
			continue
		}
		if ni.meta.Minor < minor {
			return false
		}
		known = true
	}
	return known
}
