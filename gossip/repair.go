package gossip

import (
	"cmp"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

type repair struct {
	from    string // who revealed the gap
	upTo    uint64
	due     time.Time
	asked   time.Time // zero until sent
	askedOf string
	tries   int
}

// noteGap schedules a repair when h's seq leaves a gap behind it.
func (c *Core) noteGap(now time.Time, from string, h *crdt.Header) {
	have := c.store.Contiguous(h.Author)
	if h.Seq <= have+1 {
		return
	}
	c.scheduleRepair(now, from, h.Author, h.Seq-1, c.cfg.RepairDelay)
}

func (c *Core) scheduleRepair(now time.Time, from string, a crdt.Author, upTo uint64, delay time.Duration) {
	if !c.isMember(from) {
		from = a.Name // a made-up name would only cost RepairTimeout
	}
	rp := c.repairs[a]
	if rp == nil {
		c.repairs[a] = &repair{from: from, upTo: upTo, due: now.Add(delay)}
		return
	}
	rp.upTo = max(rp.upTo, upTo)
}

// answerRepair sends what this node has of the requested interval.
func (c *Core) answerRepair(now time.Time, to string, iv crdt.Interval) {
	if iv.To <= iv.From {
		return
	}
	have := c.store.Contiguous(iv.Author)
	// The interval comes from a peer: walk at most what this node could
	// hold of it, never the 2^64 seqs a forged one may claim.
	top := min(iv.To, have+crdt.MaxSeqAhead)
	var recs []crdt.Record
	used := 0
	last := iv.From
	for seq := iv.From + 1; seq <= top; seq++ {
		r := c.store.Get(crdt.Dot{Author: iv.Author, Seq: seq})
		if r != nil {
			n := crdt.EncodedSizeHint(r)
			if used > 0 && used+n > c.cfg.AntiEntropyBudget {
				break
			}
			used += n
			recs = append(recs, r)
		}
		last = seq
	}
	m := &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now), Records: recs}
	if top := min(last, have); top > iv.From {
		m.Intervals = []crdt.Interval{{Author: iv.Author, From: iv.From, To: top}}
	}
	// Answer even with nothing, so the asker can turn to the author at once.
	c.send(to, m)
}

// tickRepairs asks for gaps that are due. The first request goes to the
// node that revealed the gap (a tree neighbour, usually close); if its
// answer or RepairTimeout leaves the gap open, the second goes to the
// author itself, which has everything it wrote. After that anti-entropy
// closes the gap, and a later record may schedule a new repair.
func (c *Core) tickRepairs(now time.Time) {
	for _, a := range c.repairAuthors() {
		rp := c.repairs[a]
		have := c.store.Contiguous(a)
		switch {
		case have >= rp.upTo:
			delete(c.repairs, a)
		case rp.asked.IsZero() && !now.Before(rp.due):
			c.askRepair(now, a, rp, rp.from)
		case !rp.asked.IsZero() && !now.Before(rp.asked.Add(c.cfg.RepairTimeout)):
			c.escalateRepair(now, a, rp)
		}
	}
}

// repairAuthors lists the authors with a repair in progress, in a
// deterministic order.
func (c *Core) repairAuthors() []crdt.Author {
	as := make([]crdt.Author, 0, len(c.repairs))
	for a := range c.repairs {
		as = append(as, a)
	}
	slices.SortFunc(as, func(x, y crdt.Author) int {
		if c := compareStrings(x.Name, y.Name); c != 0 {
			return c
		}
		return cmp.Compare(x.Incarnation, y.Incarnation)
	})
	return as
}

func (c *Core) askRepair(now time.Time, a crdt.Author, rp *repair, to string) {
	rp.asked, rp.askedOf = now, to
	c.noteAsked(now, to)
	rp.tries++
	c.stats.Repairs++
	c.send(to, &Message{Type: MsgRepairReq, SentAt: crdt.MillisOf(now),
		Repair: crdt.Interval{Author: a, From: c.store.Contiguous(a), To: rp.upTo}})
}

// escalateRepair asks the author after the revealer failed, or gives up.
func (c *Core) escalateRepair(now time.Time, a crdt.Author, rp *repair) {
	if c.view.Alive(a.Name) && rp.tries < 2 && rp.askedOf != a.Name {
		c.askRepair(now, a, rp, a.Name)
		return
	}
	delete(c.repairs, a)
}

// repairAnswered is called after a delta from a node asked for a repair:
// if the gap is still open, escalate at once rather than wait.
func (c *Core) repairAnswered(now time.Time, from string) {
	for _, a := range c.repairAuthors() {
		rp := c.repairs[a]
		if rp.askedOf != from || rp.asked.IsZero() {
			continue
		}
		if c.store.Contiguous(a) >= rp.upTo {
			delete(c.repairs, a)
			continue
		}
		c.escalateRepair(now, a, rp)
	}
}
