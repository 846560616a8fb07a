package gossip

import (
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// recentBatches is how many batch copies a node remembers having forwarded,
// to drop duplicates: seconds of traffic at hundreds of writes a second.
const recentBatches = 1024

// Publish disseminates records this node wrote, already signed and durably
// stored by the caller. They are merged into the store and pushed along the
// region trees at once.
func (c *Core) Publish(now time.Time, recs []crdt.Record) error {
	var mine []crdt.Record
	for _, r := range recs {
		ok, err := c.store.MergeVerified(r)
		if err != nil {
			return fmt.Errorf("gossip: publish %v: %w", r.Head().Dot(), err)
		}
		if ok {
			mine = append(mine, r)
			c.applied.add(r)
			c.stats.Applied++
		}
	}
	for _, batch := range c.pack(mine, c.cfg.PacketBudget) {
		c.push(now, batch)
	}
	return nil
}

// pack splits records into groups whose push fits budget.
func (c *Core) pack(recs []crdt.Record, budget int) [][]crdt.Record {
	const overhead = 64 + crdt.MaxNameLen // envelope, origin, batch, region
	var out [][]crdt.Record
	var cur []crdt.Record
	size := overhead
	for _, r := range recs {
		n := crdt.EncodedSizeHint(r)
		if len(cur) > 0 && size+n > budget {
			out = append(out, cur)
			cur, size = nil, overhead
		}
		cur = append(cur, r)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// push starts a batch down every tree of every region.
func (c *Core) push(now time.Time, recs []crdt.Record) {
	batch := c.rng.Uint64()
	var buf []string
	var ihave *Message
	for _, region := range c.view.Regions() {
		members := c.view.Region(region)
		for t := 0; t < c.cfg.Trees; t++ {
			m := &Message{Type: MsgPush, SentAt: crdt.MillisOf(now), Origin: c.cfg.Name,
				Batch: batch, Tree: uint8(t), Region: region, Records: recs}
			l := newLayout(members, c.cfg.Name, batch, region, t, c.cfg.Fanout)
			if region == c.cfg.Region {
				buf = c.liveChildren(&l, c.cfg.Name, buf[:0])
				if t >= c.cfg.EagerTrees {
					if ihave == nil || ihave.Tree != uint8(t) {
						ihave = lazyOf(m)
					}
					m = ihave
				}
			} else {
				buf = c.liveRoot(&l, buf[:0])
			}
			for _, to := range buf {
				c.send(to, m)
			}
		}
	}
	c.forwarded.add(keyOf(batch, 0))
}

// forward relays a push to this node's children in the tree it came by.
func (c *Core) forward(m *Message) {
	if m.Region != c.cfg.Region || int(m.Tree) >= c.cfg.Trees {
		return
	}
	k := keyOf(m.Batch, m.Tree)
	if c.forwarded.has(k) {
		return
	}
	c.forwarded.add(k)
	members := c.view.Region(m.Region)
	self, ok := c.selfIndex(members)
	if !ok {
		return
	}
	l := newLayout(members, m.Origin, m.Batch, m.Region, int(m.Tree), c.cfg.Fanout)
	children := c.liveChildrenAt(&l, self, c.kids[:0])
	c.kids = children[:0] // send does not forward: the buffer is free again
	if m.Type == MsgPush && int(m.Tree) >= c.cfg.EagerTrees && len(children) > 0 {
		m = lazyOf(m) // the root of a lazy tree announces, it does not carry
	}
	for _, to := range children {
		if to != m.Origin {
			c.send(to, m)
		}
	}
}

// passToOtherRoots hands a push that came straight from its origin in
// another region, to this node as the root of one of this region's trees,
// to the roots of the region's other trees. With a lazy tree, its root
// announces what it gets and the eager tree's root carries it: passed on,
// both trees start within one intra-region hop of each other, so an
// announcement reaches a node about when the eager copy does, LazyDelay
// can be short, and a cross-region copy lost to either root costs one
// intra-region hop instead of a pull by every node of the region.
func (c *Core) passToOtherRoots(m *Message) {
	if m.Region != c.cfg.Region {
		return
	}
	members := c.view.Region(m.Region)
	if _, ok := slices.BinarySearch(members, m.Origin); ok {
		return // the origin's own region: it is the root of every tree
	}
	var buf [4]string
	for t := range c.cfg.Trees {
		if t == int(m.Tree) {
			continue
		}
		l := newLayout(members, m.Origin, m.Batch, m.Region, t, c.cfg.Fanout)
		for _, to := range c.liveRoot(&l, buf[:0]) {
			if to == c.cfg.Name {
				continue
			}
			pass := *m
			pass.Tree, pass.size = uint8(t), 0
			c.send(to, &pass)
		}
	}
}

// lazyOf returns the announcement of push m: its dots as intervals.
func lazyOf(m *Message) *Message {
	return &Message{Type: MsgIHave, SentAt: m.SentAt, Origin: m.Origin, Batch: m.Batch,
		Tree: m.Tree, Region: m.Region, Intervals: dotRuns(m.Records)}
}

// dotRuns compresses records' dots into runs of consecutive seqs.
func dotRuns(recs []crdt.Record) []crdt.Interval {
	var ivs []crdt.Interval
	for _, r := range recs {
		h := r.Head()
		if n := len(ivs); n > 0 && ivs[n-1].Author == h.Author && ivs[n-1].To+1 == h.Seq {
			ivs[n-1].To = h.Seq
			continue
		}
		ivs = append(ivs, crdt.Interval{Author: h.Author, From: h.Seq - 1, To: h.Seq})
	}
	return ivs
}

// announced handles the dots a lazy tree announced: any this node lacks
// is asked from the announcer after LazyDelay, unless the eager copy comes
// first.
func (c *Core) announced(now time.Time, from string, ivs []crdt.Interval) {
	for _, iv := range ivs {
		if iv.To-iv.From > MaxRecordsPerMsg {
			c.stats.Rejected["oversized_ihave"]++
			return
		}
		// Every seq up to the author's contiguous one is covered: look
		// above it only, so that announcing dots the node already holds
		// costs O(1), not a walk of the interval.
		for seq := max(iv.From, c.store.Contiguous(iv.Author)) + 1; seq <= iv.To; seq++ {
			if !c.store.Has(crdt.Dot{Author: iv.Author, Seq: seq}) {
				c.scheduleRepair(now, from, iv.Author, iv.To, c.cfg.LazyDelay)
				break
			}
		}
	}
}

// liveChildren appends name's children in l to buf, replacing a child this
// node believes dead by that child's own children, so that a crashed relay
// does not cut off its subtree.
func (c *Core) liveChildren(l *layout, name string, buf []string) []string {
	p, ok := slices.BinarySearch(l.members, name)
	if !ok {
		return buf
	}
	return c.liveChildrenAt(l, p, buf)
}

// liveChildrenAt is liveChildren for the member at position p of l's
// sorted list.
func (c *Core) liveChildrenAt(l *layout, p int, buf []string) []string {
	start := len(buf)
	buf = l.childrenAt(p, buf)
	for i := start; i < len(buf); i++ {
		if !c.view.Alive(buf[i]) {
			dead := buf[i]
			buf = append(buf[:i], buf[i+1:]...)
			i--
			buf = l.children(dead, buf) // grandchildren, checked in turn
		}
	}
	return buf
}

// liveRoot appends the live root of l, or, if the root is believed dead,
// its live children.
func (c *Core) liveRoot(l *layout, buf []string) []string {
	if len(l.members) == 0 {
		return buf
	}
	p := l.rootPos()
	if root := l.members[p]; c.view.Alive(root) {
		return append(buf, root)
	}
	return c.liveChildrenAt(l, p, buf)
}

// selfIndex returns this node's position in members, its region's sorted
// member list. The position found last is tried first: the list rarely
// changes, and checking one name is cheaper than a binary search per
// forwarded batch. Names are unique, so a match is the position.
func (c *Core) selfIndex(members []string) (int, bool) {
	if p := c.selfPos; p < len(members) && members[p] == c.cfg.Name {
		return p, true
	}
	p, ok := slices.BinarySearch(members, c.cfg.Name)
	if ok {
		c.selfPos = p
	}
	return p, ok
}

// forwardKey identifies one tree's copy of a batch. Batch ids are random
// 64-bit numbers, so the id and the tree are enough.
type forwardKey uint64

func keyOf(batch uint64, tree uint8) forwardKey { return forwardKey(batch ^ uint64(tree)<<56) }

// recentSet remembers recently added keys in a direct-mapped table: O(1),
// no allocation, a fixed few KiB per node. A collision forgets the older
// key, which at worst forwards one duplicate copy again.
type recentSet struct {
	slots []forwardKey
	shift uint // 64 - log2(len(slots))
}

// init sizes the table to n slots, a power of two.
func (s *recentSet) init(n int) {
	if n < 2 || n&(n-1) != 0 {
		panic("gossip: recentSet size must be a power of two")
	}
	s.slots = make([]forwardKey, n)
	s.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// slot is Fibonacci hashing: the top bits of the product, which every bit
// of the key moves. (The middle bits, taken before, ignored the key's top
// byte, where keyOf puts the tree: both trees' copies of a batch shared a
// slot, and a node that forwarded one tree forgot the other.)
func (s *recentSet) slot(k forwardKey) *forwardKey {
	return &s.slots[(uint64(k)*0x9e3779b97f4a7c15)>>s.shift]
}

func (s *recentSet) has(k forwardKey) bool { return *s.slot(k) == k }

func (s *recentSet) add(k forwardKey) { *s.slot(k) = k }
