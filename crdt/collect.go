package crdt

import (
	"math"
	"slices"
	"time"
)

// Collect drops every record that can no longer matter anywhere, by the
// rule of Retention with a slack of maxOffset plus grace: roughly, its
// expiry (a certificate's or session's not-after; for a revocation, the
// expiry of what it covers, whatever its writer's config) plus the slack is
// before now, and it was written at least MinRetention ago. Dots stay
// covered, so a collected record is never merged again. It returns how many
// held records were dropped. Collect visits every record in one go; a
// store's owner that serves reads in between uses StartCollect instead.
func (s *Store) Collect(now Millis, maxOffset, grace time.Duration) int {
	c := s.StartCollect(now, maxOffset, grace)
	for !c.Step(math.MaxInt) {
	}
	return c.Dropped()
}

// Collection is a Collect made in steps, so that the owner of a store of
// millions of records can let reads (admission lookups) and merges in
// between instead of holding its lock for a visit of every record. Each
// Step visits a bounded number of records, in author and seq order, from
// where the last one stopped; records merged meanwhile are visited if they
// land after that point, and are left for the next collection otherwise.
//
// A step decides with the rule built at StartCollect, except that a
// revocation's target is looked up again when the revocation is due
// (Store.refreshTarget), so that no revocation goes before a record it
// covers that arrived since. A revocation that arrived since is not in
// the rule: the records it covers may go in this collection, which is
// safe, since a revocation is kept at least as long as anything it covers
// (Retention), and the revocation stays.
//
// When the intern table has grown to twice its size since it was last
// built, the collection rebuilds it in steps too, after the sweep.
type Collection struct {
	s    *Store
	rule *Retention

	phase   collectPhase
	author  Author // the cursor: the next page to visit is author's page key
	page    uint64 // or a later one, or a later author's
	dropped int
}

type collectPhase uint8

const (
	collectSweep collectPhase = iota
	collectReintern
	collectDone
)

// StartCollect starts a Collection at now with a slack of maxOffset plus
// grace. Building its rule takes time proportional to the revocations
// held. The Collection must be stepped by the store's owner, like any
// other call on the store; any calls may come in between.
func (s *Store) StartCollect(now Millis, maxOffset, grace time.Duration) *Collection {
	return &Collection{s: s, rule: s.retention(now, maxOffset+grace)}
}

// Dropped is how many held records the collection has dropped so far.
func (c *Collection) Dropped() int { return c.dropped }

// Step visits about budget records (at least one page of an author's log)
// and reports whether the collection is done.
func (c *Collection) Step(budget int) bool {
	for budget > 0 && c.phase != collectDone {
		l, k, ok := c.nextPage()
		if !ok {
			c.endPhase()
			continue
		}
		if c.phase == collectSweep {
			budget -= c.sweep(l, k)
		} else {
			budget -= c.reintern(l, k)
		}
		c.author, c.page = l.author, k+1
	}
	return c.phase == collectDone
}

// nextPage returns the first page at or after the cursor.
func (c *Collection) nextPage() (*authorLog, uint64, bool) {
	order := c.s.order
	i, found := slices.BinarySearchFunc(order, c.author, func(e *authorLog, a Author) int { return compareAuthors(e.author, a) })
	from := c.page
	if !found {
		from = 0
	}
	for ; i < len(order); i++ {
		l := order[i]
		if j, _ := slices.BinarySearch(l.keys, from); j < len(l.keys) {
			return l, l.keys[j], true
		}
		from = 0
	}
	return nil, 0, false
}

// endPhase moves on from a sweep or a rebuild that visited every page.
func (c *Collection) endPhase() {
	s := c.s
	c.author, c.page = Author{}, 0
	switch {
	case c.phase == collectSweep && len(s.names) > 2*s.namesBuilt+1024 && !s.noIntern:
		c.phase = collectReintern
		s.fresh = make(map[string]string, s.namesBuilt)
		s.lastMethod = ""
	case c.phase == collectReintern:
		s.names, s.fresh = s.fresh, nil
		s.namesBuilt = len(s.names)
		s.lastMethod = ""
		c.phase = collectDone
	default:
		c.phase = collectDone
	}
}

// sweep drops what can go from page k of l and returns how many records
// it looked at.
func (c *Collection) sweep(l *authorLog, k uint64) int {
	s := c.s
	type victim struct {
		seq     uint64
		r       Record
		dropped bool
	}
	var victims [pageSize]victim
	n, seen := 0, 0
	for j, slot := range l.pages[k] {
		if slot == nil {
			continue
		}
		seen++
		r, dropped := unwrap(slot)
		if rev, ok := r.(*RevocationRecord); ok && !dropped {
			s.refreshTarget(c.rule, rev)
		}
		if c.rule.Collectable(r) {
			victims[n] = victim{k<<pageBits | uint64(j), r, dropped}
			n++
		}
	}
	// Removing a signer revocation may bring dropped records back
	// (reconcileRevoked), so the victims are chosen first and removed
	// after, each only if still where it was.
	for _, v := range victims[:n] {
		cur, dropped := unwrap(l.slot(v.seq))
		if cur != v.r {
			continue
		}
		l.clear(v.seq)
		if !dropped {
			s.unindex(l, v.r)
			c.dropped++
		}
	}
	return seen + 1
}

// reintern puts the strings of the records held on page k of l into the
// intern table being built, and returns how many records it looked at.
func (c *Collection) reintern(l *authorLog, k uint64) int {
	seen := 0
	for _, slot := range l.pages[k] {
		if r, dropped := unwrap(slot); r != nil && !dropped {
			c.s.internFields(r)
			seen++
		}
	}
	return seen + 1
}
