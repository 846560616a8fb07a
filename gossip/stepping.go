package gossip

import (
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Stepping is a message being stepped in parts, so that a driver need not
// hold the lock that guards the core, which readers of its store take
// too, for all the records of a long message at once: Begin, then Ingest
// until no record remains (the driver may let go of its lock between
// calls), then Finish. Between Begin and Finish the driver makes no other
// call into the core (the store may be read): the outcome is then that of
// Step, which readers see arrive a slice of records at a time, each
// record merged in the message's order, as a shorter message would have
// merged them. What depends on the whole message waits for Finish:
// relaying a push (only if every record verified), covering a delta's
// intervals (only for authors none of whose records was held or refused),
// retrying the records held for a signer record that arrived, and every
// answer.
type Stepping struct {
	c      *Core
	now    time.Time
	from   Sender
	member bool
	m      *Message
	in     ingestion
}

// Begin starts stepping m from sender from: it counts the message and
// samples the sender's clock, and merges none of its records yet.
func (c *Core) Begin(now time.Time, from Sender, m *Message) *Stepping {
	if m.Type <= MaxMsgType {
		c.stats.MessagesIn[m.Type]++
	}
	c.stats.BytesIn += uint64(m.size)
	from = c.checkSender(from)
	s := &Stepping{c: c, now: now, from: from, member: c.isMember(from.Name), m: m}
	// Sample the clock of the member that sent this message only, and only
	// once it proved who it is: any holder of the gossip key can send
	// frames under made-up names with any SentAt. A relayed push or
	// announcement carries its origin's SentAt: sampling it would weight
	// the estimate by how much each controller writes, and two controllers
	// 3s either side of the mesh (6s apart, within the max offset) would
	// each see the other's pushes dominate and refuse writes.
	if from.Proven && m.SentAt != 0 && (m.Origin == from.Name || (m.Type != MsgPush && m.Type != MsgIHave)) {
		c.sampleOffset(from.Name, time.Duration(crdt.MillisOf(now)-m.SentAt)*time.Millisecond)
	}
	if m.Type == MsgPush || m.Type == MsgDelta {
		s.in = ingestion{from: from.Name, recs: m.Records}
	}
	return s
}

// Ingest verifies and merges up to n more of the message's records and
// returns how many remain. Only a push's and a delta's records are merged
// here; other messages' are left to Finish, and Ingest returns 0.
func (s *Stepping) Ingest(n int) int {
	return s.c.ingestSome(s.now, &s.in, n)
}

// Finish merges what remains of the message and acts on it.
func (s *Stepping) Finish() {
	c, now, from, member, m := s.c, s.now, s.from, s.member, s.m
	c.ingestSome(now, &s.in, len(s.in.recs))
	switch m.Type {
	case MsgPush:
		// Relay only what verified: a forged push stops at the first
		// honest node instead of running down a whole region tree.
		if c.ingestEnd(now, &s.in, nil) {
			if from.Name == m.Origin && c.cfg.EagerTrees < c.cfg.Trees {
				c.passToOtherRoots(m)
			}
			c.forward(m)
		}
	case MsgIHave:
		c.forward(m)
		c.announced(now, from.Name, m.Intervals)
	case MsgRepairReq:
		if member {
			c.answerRepair(now, from.Name, m.Repair)
		}
	case MsgSyncReq:
		c.notePeerContext(from, m.Context)
		if member {
			c.answerSync(now, from.Name, m.Context, true)
			c.syncedWith(now, from, false)
		}
	case MsgDelta:
		c.ingestEnd(now, &s.in, m.Intervals)
		if member {
			c.syncedWith(now, from, true)
		}
		if m.Context != nil {
			// The peer has things we lack and asks for what it lacks.
			c.notePeerContext(from, m.Context)
			if member {
				c.answerSync(now, from.Name, m.Context, false)
			}
		}
		c.deltaReceived(from, m.More)
		if m.More && member {
			c.sendSync(now, from.Name)
		}
		if len(c.repairs) > 0 {
			c.repairAnswered(now, from.Name)
		}
	case MsgWantReq:
		if member {
			c.answerWant(now, from.Name, m)
		}
	case MsgWantResp:
		c.onWantResp(now, from, m)
	default:
		c.stats.Rejected["unknown_type"]++
	}
}
