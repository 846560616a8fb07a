package crdt

import (
	"math"
	"slices"
)

// Context returns the store's causal context, sorted by author.
func (s *Store) Context() Context {
	c := make(Context, 0, len(s.order))
	for _, l := range s.order {
		c = append(c, AuthorContext{Author: l.author, Max: l.contiguous, Above: slices.Clone(l.sortedAbove())})
	}
	return c
}

// VersionVector returns the highest contiguous seq per author.
func (s *Store) VersionVector() map[Author]uint64 {
	vv := make(map[Author]uint64, len(s.authors))
	for a, l := range s.authors {
		vv[a] = l.contiguous
	}
	return vv
}

// Missing counts the dots this store covers that peer lacks, a measure of
// how far behind peer is. It costs one step per author and out-of-order dot.
// peer should have passed Validate.
func (s *Store) Missing(peer Context) uint64 {
	var n uint64
	for _, l := range s.order {
		var pm uint64
		var pa []uint64
		if e := peer.Find(l.author); e != nil {
			pm, pa = e.Max, e.Above
		}
		if l.contiguous > pm {
			n += l.contiguous - pm
			for _, seq := range pa {
				if seq > pm && seq <= l.contiguous {
					n--
				}
			}
		}
		for seq := range l.above {
			if seq > pm {
				if _, ok := slices.BinarySearch(pa, seq); !ok {
					n++
				}
			}
		}
	}
	return n
}

// Range calls fn for every held record, author by author in seq order,
// until fn returns false. Records dropped as written by a revoked author
// are not visited.
func (s *Store) Range(fn func(Record) bool) {
	for _, l := range s.order {
		if !l.each(func(_ uint64, r Record, dropped bool) bool { return dropped || fn(r) }) {
			return
		}
	}
}

// rangeAll is Range including the records dropped as written by a
// revoked author, which a restore drops again. Refused records are left
// out: a restore merges without verifying, so one would count there.
func (s *Store) rangeAll(fn func(r Record) bool) {
	for _, l := range s.order {
		if !l.each(func(seq uint64, r Record, dropped bool) bool {
			return dropped && l.refused(seq) || fn(r)
		}) {
			return
		}
	}
}

// dropCount is the number of records rangeAll visits that Range does not.
func (s *Store) dropCount() int {
	n := 0
	for _, l := range s.order {
		if l.ndropped == 0 {
			continue
		}
		l.each(func(seq uint64, _ Record, dropped bool) bool {
			if dropped && !l.refused(seq) {
				n++
			}
			return true
		})
	}
	return n
}

// CoverInterval records that a peer covered every seq of iv.Author in
// (iv.From, iv.To] and sent every record it held there. It is called after
// the records of the same delta were merged; if any record of iv.Author in
// that delta could not be merged (other than ErrAuthorRevoked, which
// covers its dot), skip the interval. A seq still missing is taken as
// collected at the peer only when a record of the same author with a
// higher seq, held here, was written at least MinRetention before now:
// writes are numbered in HLC order, so the missing one is older still, and
// no honest peer collects a record younger than that. Otherwise the gap
// stays, and anti-entropy keeps asking for it; a peer cannot make this
// store skip a record younger than MinRetention by withholding it.
//
// Its cost follows the length of the interval, capped by MaxSeqAhead: no
// record is held more than that above the author's contiguous seq.
func (s *Store) CoverInterval(iv Interval, now Millis) {
	l := s.authors[iv.Author]
	if l == nil || iv.To <= iv.From || iv.To <= l.contiguous {
		return
	}
	lo := max(iv.From, l.contiguous)
	// Nothing is held more than MaxSeqAhead above contiguous, and nothing
	// above the top record proves anything.
	hi := min(iv.To, l.top(), l.contiguous+MaxSeqAhead)
	if hi <= lo {
		return
	}
	// Bound on the HLC of everything at or below the current seq: the HLC
	// of the nearest record above it.
	var bound Timestamp
	_, above := l.next(hi+1, math.MaxUint64)
	found := above != nil
	if found {
		bound = above.Head().HLC
	}
	horizon := addMillis(now, -MinRetention)
	for seq := hi; seq > lo; seq-- {
		if r := l.entry(seq); r != nil {
			bound, found = r.Head().HLC, true
			continue
		}
		if found && bound.Millis() <= horizon && !l.covered(seq) {
			l.cover(seq)
		}
	}
}

// DeltaSince returns what peer lacks, within about budget bytes of encoded
// records (at least one record when anything is missing): first the
// revocations peer lacks, then everything else oldest first by HLC across
// authors, with the intervals that the records complete, then records held
// above this store's own contiguous seqs. It stops at the first record that
// does not fit. It sends nothing that peer would refuse as ErrTooFarAhead.
// Its cost follows the size of the difference, not of the state. peer
// should have passed Validate.
func (s *Store) DeltaSince(peer Context, budget int) Delta {
	var d Delta
	used := 0
	try := func(r Record) bool {
		n := EncodedSizeHint(r)
		if len(d.Records) > 0 && used+n > budget {
			d.Truncated = true
			return false
		}
		d.Records = append(d.Records, r)
		used += n
		return true
	}

	cursors := make([]deltaCursor, 0, len(s.order))
	for _, l := range s.order {
		pc := peer.Find(l.author)
		if pc == nil {
			pc = &AuthorContext{Author: l.author}
		}
		limit := pc.Max + MaxSeqAhead // the peer refuses anything above
		if limit < pc.Max {
			limit = math.MaxUint64
		}
		c := deltaCursor{l: l, pc: pc, from: pc.Max, next: pc.Max + 1, to: min(l.contiguous, limit), limit: limit}
		// Revocations first: they may jump the queue, the dot cloud
		// absorbs them.
		if !d.Truncated {
			i, _ := slices.BinarySearch(l.revocations, pc.Max+1)
			for _, seq := range l.revocations[i:] {
				if seq > limit {
					break
				}
				if pc.Has(seq) {
					continue
				}
				if !try(l.get(seq)) {
					break
				}
				c.sent = append(c.sent, seq)
			}
		}
		cursors = append(cursors, c)
	}

	// Oldest first across authors: a heap of cursors keyed by the HLC of
	// the next record each would send. The interval of an author runs up
	// to the seq before the first record it could not send.
	var h cursorHeap
	for i := range cursors {
		c := &cursors[i]
		if c.to <= c.from {
			continue
		}
		if c.peek() {
			h.push(c)
		} else {
			c.finish(&d, c.to)
		}
	}
	for len(h) > 0 {
		c := h.pop()
		if d.Truncated || !try(c.l.entry(c.next)) {
			c.finish(&d, c.next-1)
			continue
		}
		if c.done {
			c.finish(&d, c.to)
			continue
		}
		c.next++
		if c.peek() {
			h.push(c)
		} else {
			c.finish(&d, c.to)
		}
	}
	slices.SortFunc(d.Intervals, func(a, b Interval) int { return compareAuthors(a.Author, b.Author) })

	// Records held above our own contiguous seqs: their dots travel with
	// them, no interval can vouch for the gaps between.
	for i := range cursors {
		c := &cursors[i]
		if d.Truncated {
			break
		}
		for _, seq := range c.l.sortedAbove() {
			if seq > c.limit {
				break
			}
			if c.pc.Has(seq) || c.wasSent(seq) {
				continue
			}
			r := c.l.entry(seq)
			if r == nil {
				continue
			}
			if !try(r) {
				break
			}
		}
	}
	return d
}

// deltaCursor walks one author's seqs for DeltaSince.
type deltaCursor struct {
	l     *authorLog
	pc    *AuthorContext
	from  uint64   // interval start (exclusive): the peer's contiguous seq
	next  uint64   // next seq to look at
	to    uint64   // last seq to walk
	limit uint64   // highest seq the peer accepts
	sent  []uint64 // revocations already in the delta, sorted
	t     Timestamp
	done  bool // nothing left to send in next..to
}

func (c *deltaCursor) wasSent(seq uint64) bool {
	_, ok := slices.BinarySearch(c.sent, seq)
	return ok
}

// peek advances next to the next record to send and reports whether there
// is one; c.t is its HLC.
func (c *deltaCursor) peek() bool {
	for !c.done {
		seq, r := c.l.next(c.next, c.to)
		if r == nil {
			break
		}
		c.next = seq
		if seq == c.to {
			c.done = true // no seq after it to move next to
		}
		if c.pc.Has(seq) || c.wasSent(seq) {
			c.next++
			continue
		}
		c.t = r.Head().HLC
		return true
	}
	c.done = true
	return false
}

func (c *deltaCursor) finish(d *Delta, upTo uint64) {
	if upTo > c.from {
		d.Intervals = append(d.Intervals, Interval{Author: c.l.author, From: c.from, To: upTo})
	}
}

// cursorHeap is a min-heap of cursors by (HLC, author).
type cursorHeap []*deltaCursor

func (h cursorHeap) less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return compareAuthors(h[i].l.author, h[j].l.author) < 0
}

func (h *cursorHeap) push(c *deltaCursor) {
	*h = append(*h, c)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *cursorHeap) pop() *deltaCursor {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && a.less(l, m) {
			m = l
		}
		if r < n && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
