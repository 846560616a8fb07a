package gossip

import (
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// exchange is an anti-entropy exchange in progress before Synced.
type exchange struct {
	ctx    crdt.Context // the peer's context, once known
	proven bool         // ctx came in a proven frame
	role   Role         // the role ctx's sender proved (zero unless proven)
}

// aeCandidates is how many random peers an anti-entropy round considers
// before picking the least recently synced: O(1) per round whatever the
// size of the mesh, and still biased towards peers not synced for long.
const aeCandidates = 3

// antiEntropy syncs with one peer: the least recently synced of a few
// random candidates, from another region every third round.
func (c *Core) antiEntropy(now time.Time) {
	c.aeRound++
	regions := c.view.Regions()
	var pool []string
	if c.aeRound%3 == 0 && len(regions) > 1 {
		r := regions[c.rng.IntN(len(regions))]
		if r == c.cfg.Region {
			r = regions[(slices.Index(regions, r)+1)%len(regions)]
		}
		pool = c.view.Region(r)
	} else {
		pool = c.view.Region(c.cfg.Region)
	}
	best := ""
	var bestSync time.Time
	for i := 0; i < aeCandidates && len(pool) > 0; i++ {
		name := pool[c.rng.IntN(len(pool))]
		if name == c.cfg.Name || !c.view.Alive(name) {
			continue
		}
		var last time.Time
		if p, ok := c.peers[name]; ok {
			last = p.lastSync
		}
		if best == "" || last.Before(bestSync) {
			best, bestSync = name, last
		}
	}
	if best != "" {
		c.sendSync(now, best)
	}
}

// sendSync starts an anti-entropy exchange with to, a live member.
func (c *Core) sendSync(now time.Time, to string) {
	if p := c.peer(to); p != nil {
		p.lastSync, p.asked = now, now
	}
	if !c.synced {
		if _, ok := c.exchanging[to]; !ok && len(c.exchanging) < MaxExchanging {
			c.exchanging[to] = exchange{}
		}
	}
	c.send(to, &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: c.store.Context()})
}

// answerSync sends a peer what it lacks given its context. When the peer
// has things this node lacks and asked (a SyncReq), the answer carries this
// node's context so the peer sends them back.
func (c *Core) answerSync(now time.Time, to string, theirs crdt.Context, askBack bool) {
	d := c.store.DeltaSince(theirs, c.cfg.AntiEntropyBudget)
	m := &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now), Records: d.Records, Intervals: d.Intervals}
	if askBack && lacks(c.store, theirs) {
		m.Context = c.store.Context()
	}
	// The budget cut the answer short: the peer should ask again at once.
	m.More = d.Truncated
	if len(m.Records) > 0 || len(m.Intervals) > 0 || m.Context != nil {
		c.send(to, m)
	}
	if m.Context != nil {
		c.noteAsked(now, to)
	}
}

// noteAsked notes that this node asked member to for records.
func (c *Core) noteAsked(now time.Time, to string) {
	if c.isMember(to) {
		if p := c.peer(to); p != nil {
			p.asked = now
		}
	}
}

// lacks reports whether theirs covers a dot that s does not.
func lacks(s *crdt.Store, theirs crdt.Context) bool {
	for i := range theirs {
		a := &theirs[i]
		have := s.Contiguous(a.Author)
		if a.Max > have {
			return true
		}
		for _, seq := range a.Above {
			if !s.Has(crdt.Dot{Author: a.Author, Seq: seq}) {
				return true
			}
		}
	}
	return false
}

// PeerState answers a peer's causal context learned outside the protocol's
// own messages (memberlist's push-pull carries one in each direction): the
// peer is sent what it lacks, within AntiEntropyBudget. It does not ask
// back, since the peer answers this node's context in the same way. It
// takes no clock sample: a push-pull's proof is made for any recipient
// (memberlist does not tell the sender who its peer is), so a replay of it
// could carry an old clock.
func (c *Core) PeerState(now time.Time, from Sender, theirs crdt.Context) {
	if theirs.Validate() != nil {
		c.stats.Rejected["invalid_context"]++
		return
	}
	from = c.checkSender(from)
	c.notePeerContext(from, theirs)
	if c.isMember(from.Name) {
		c.answerSync(now, from.Name, theirs, false)
		c.syncedWith(now, from, false)
	}
}

// syncedWith notes an exchange with from, a live member, which anti-entropy
// then leaves for others a while: it started one with this node (a proven
// sync request or push-pull), or sent records (a delta). Made-up claims
// must not steer anti-entropy away from members, so an unproven delta
// counts only as an answer to something this node asked that member
// within RepairTimeout (a sync or repair request, a delta that asks back):
// a key holder would have to see that request to make one up.
func (c *Core) syncedWith(now time.Time, from Sender, answer bool) {
	p, ok := c.peers[from.Name]
	if !from.Proven && (!answer || !ok || p.asked.IsZero() || now.Sub(p.asked) > c.cfg.RepairTimeout) {
		return
	}
	if !ok {
		if p = c.peer(from.Name); p == nil {
			return
		}
	}
	p.lastSync = now
}

// Synced reports whether this node has completed an anti-entropy exchange
// with a proven peer since it started: it learned a proven peer's causal
// context and holds everything in it, or received from a proven peer it
// was exchanging with the last chunk of what it sent. A new or restarted
// node is caught up from then on; readiness (docs/deploy.md) waits for
// it.
//
// A router counts only an exchange with a controller: a router's state
// came from a controller or from another router that may have none yet,
// and a router holding nothing would refuse every client in strict mode.
func (c *Core) Synced() bool { return c.synced }

// SyncedUnproven reports whether this node has completed an exchange, as
// Synced says, with a live member that proved nothing (a node of protocol
// 1.0, or one without an identity). Any holder of the gossip key could have
// claimed that name: the mesh counts it for readiness only where no peer
// has proven itself (mesh.Mesh.Ready).
func (c *Core) SyncedUnproven() bool { return c.synced || c.syncedUnproven }

// notePeerContext records a peer's context: its lag, and progress towards
// Synced. Only a proven sender's context counts for either; a live
// member's unproven one counts towards SyncedUnproven.
func (c *Core) notePeerContext(from Sender, theirs crdt.Context) {
	member := c.isMember(from.Name)
	if !from.Proven && !member {
		return
	}
	if from.Proven && member {
		if p := c.peer(from.Name); p != nil {
			p.lag, p.lagKnown = c.store.Missing(theirs), true
		}
	}
	if c.synced {
		return
	}
	if !lacks(c.store, theirs) {
		c.setSyncedBy(from)
		return
	}
	e, ok := c.exchanging[from.Name]
	if !ok && len(c.exchanging) >= MaxExchanging || e.proven && !from.Proven {
		return
	}
	c.exchanging[from.Name] = exchange{ctx: theirs, proven: from.Proven, role: from.Role}
}

// MaxExchanging caps the exchanges tracked until Synced, whatever names
// peers claim (see Footprint).
const MaxExchanging = 64

// deltaReceived notes a delta from a peer: one after which this node
// holds the peer's whole context (as it was proven, or not), or the last
// chunk of an exchange (as its sender was proven, or not), makes it Synced
// or SyncedUnproven.
func (c *Core) deltaReceived(from Sender, more bool) {
	if c.synced {
		return
	}
	e, ok := c.exchanging[from.Name]
	switch {
	case !ok:
	case e.ctx != nil && !lacks(c.store, e.ctx):
		c.setSyncedBy(Sender{Name: from.Name, Proven: e.proven, Role: e.role})
	case !more && (from.Proven || c.isMember(from.Name)):
		c.setSyncedBy(from)
	}
}

// setSyncedBy notes an exchange completed with from. A router's exchange
// with another router does not count (see Synced): it keeps exchanging
// until one with a controller completes.
func (c *Core) setSyncedBy(from Sender) {
	if c.cfg.Role == RoleRouter && c.roleOf(from) != RoleController {
		return
	}
	if !from.Proven {
		c.syncedUnproven = true
		return
	}
	c.synced = true
	c.exchanging = nil
}

// roleOf is the role of from: the one its certificate proved, or else the
// one the member announced (a node of protocol 1.0 proves nothing).
func (c *Core) roleOf(from Sender) Role {
	if from.Proven {
		return from.Role
	}
	m, _ := c.view.Member(from.Name)
	return m.Role
}

// SyncWith starts an anti-entropy exchange with a member at once, as when
// it joins or comes back.
func (c *Core) SyncWith(now time.Time, name string) {
	if c.view.Alive(name) {
		c.sendSync(now, name)
	}
}
