package crdt

import "slices"

// Records are kept in pages of pageSize consecutive seqs, so that a log
// costs memory for the records it holds, not for the span of seqs between
// them: a long-lived record among collected ones pins one page, not every
// slot since, and a sparse snapshot does not allocate its gaps.
const (
	pageBits = 6
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

// page holds seqs key<<pageBits .. key<<pageBits|pageMask: 1 KiB, exactly
// a size class.
type page [pageSize]Record

// droppedRecord marks, in a page, a record written by its author after the
// root revoked its controller. It is in no index and not in the digest; it
// is kept until it expires so that a peer that lacks it receives it, drops
// it too and covers its dot: a dot the peer could not prove collected would
// stay a gap in its context forever.
//
// A refused record (Store.Refuse) is kept the same way, for the same
// reason, but no change of revocations ever brings it back.
type droppedRecord struct {
	Record
	refused bool
}

func unwrap(r Record) (rec Record, dropped bool) {
	if d, ok := r.(droppedRecord); ok {
		return d.Record, true
	}
	return r, false
}

// authorLog is everything a store has of one author.
type authorLog struct {
	author Author
	pages  map[uint64]*page // by seq >> pageBits; no page is all nil
	keys   []uint64         // the keys of pages, sorted
	// Invariant: every seq in 1..contiguous is covered, contiguous+1 is not.
	// Every record held or dropped is at most MaxSeqAhead above it.
	contiguous uint64
	above      map[uint64]struct{} // covered seqs > contiguous+1
	// sorted holds above's seqs in order, for the contexts and deltas a
	// node with many gaps builds under its driver's lock: kept as seqs
	// arrive in order and are absorbed from the bottom, rebuilt by
	// sortedAbove only after a seq arrived below the highest (stale).
	sorted   []uint64
	stale    bool
	ndropped int // dropped records in pages
	// revocations holds the seqs of held records that jump the queue in
	// DeltaSince (revocations of any kind), sorted.
	revocations []uint64
}

func (l *authorLog) covered(seq uint64) bool {
	if seq <= l.contiguous {
		return true
	}
	_, ok := l.above[seq]
	return ok
}

// slot returns what the page holds at seq: nil, a record, or a
// droppedRecord.
func (l *authorLog) slot(seq uint64) Record {
	if p := l.pages[seq>>pageBits]; p != nil {
		return p[seq&pageMask]
	}
	return nil
}

// get returns the held record at seq, or nil.
func (l *authorLog) get(seq uint64) Record {
	r := l.slot(seq)
	if _, dropped := r.(droppedRecord); dropped {
		return nil
	}
	return r
}

// entry returns the record at seq, held or dropped, or nil.
func (l *authorLog) entry(seq uint64) Record {
	r, _ := unwrap(l.slot(seq))
	return r
}

// set stores r (nil, a record or a droppedRecord) at seq, creating and
// freeing pages as needed.
func (l *authorLog) set(seq uint64, r Record) {
	k := seq >> pageBits
	p := l.pages[k]
	if p == nil {
		if r == nil {
			return
		}
		if l.pages == nil {
			l.pages = make(map[uint64]*page)
		}
		p = new(page)
		l.pages[k] = p
		if n := len(l.keys); n == 0 || l.keys[n-1] < k {
			l.keys = append(l.keys, k)
		} else {
			i, _ := slices.BinarySearch(l.keys, k)
			l.keys = slices.Insert(l.keys, i, k)
		}
	}
	if _, dropped := p[seq&pageMask].(droppedRecord); dropped {
		l.ndropped--
	}
	if _, dropped := r.(droppedRecord); dropped {
		l.ndropped++
	}
	p[seq&pageMask] = r
	if r == nil && *p == (page{}) {
		delete(l.pages, k)
		if i, found := slices.BinarySearch(l.keys, k); found {
			l.keys = slices.Delete(l.keys, i, i+1)
		}
	}
}

func (l *authorLog) put(seq uint64, r Record) { l.set(seq, r) }

func (l *authorLog) drop(seq uint64, r Record) { l.set(seq, droppedRecord{Record: r}) }

func (l *authorLog) clear(seq uint64) { l.set(seq, nil) }

// refused reports whether the record at seq was refused (Store.Refuse).
func (l *authorLog) refused(seq uint64) bool {
	d, ok := l.slot(seq).(droppedRecord)
	return ok && d.refused
}

// next returns the lowest seq in [from, to] holding a record, held or
// dropped, and that record; nil if there is none. It skips empty pages in
// one step each, and missing pages at no cost.
func (l *authorLog) next(from, to uint64) (uint64, Record) {
	if from > to {
		return 0, nil
	}
	k := from >> pageBits
	i, _ := slices.BinarySearch(l.keys, k)
	for ; i < len(l.keys); i++ {
		key := l.keys[i]
		if key > to>>pageBits {
			return 0, nil
		}
		p := l.pages[key]
		j := 0
		if key == k {
			j = int(from & pageMask)
		}
		for ; j < pageSize; j++ {
			if p[j] == nil {
				continue
			}
			seq := key<<pageBits | uint64(j)
			if seq > to {
				return 0, nil
			}
			r, _ := unwrap(p[j])
			return seq, r
		}
	}
	return 0, nil
}

// top is the highest seq of a record held or dropped, or 0 if none: above
// it there is no record to prove anything with.
func (l *authorLog) top() uint64 {
	if len(l.keys) == 0 {
		return 0
	}
	k := l.keys[len(l.keys)-1]
	p := l.pages[k]
	for j := pageSize - 1; j >= 0; j-- {
		if p[j] != nil {
			return k<<pageBits | uint64(j)
		}
	}
	return 0
}

// each calls fn for every record held or dropped, in seq order, until fn
// returns false. fn may replace a record by another at the same seq, not
// remove one.
func (l *authorLog) each(fn func(seq uint64, r Record, dropped bool) bool) bool {
	for _, k := range l.keys {
		p := l.pages[k]
		for j, r := range p {
			if r == nil {
				continue
			}
			r, dropped := unwrap(r)
			if !fn(k<<pageBits|uint64(j), r, dropped) {
				return false
			}
		}
	}
	return true
}

// capDropped lets the lowest records kept aside go once there are twice
// MaxDroppedPerAuthor, down to MaxDroppedPerAuthor: one walk of the log per
// MaxDroppedPerAuthor records set aside, not one per record. Their dots
// stay covered.
func (l *authorLog) capDropped() {
	if l.ndropped < 2*MaxDroppedPerAuthor {
		return
	}
	var victims []uint64
	l.each(func(seq uint64, _ Record, dropped bool) bool {
		if dropped {
			victims = append(victims, seq)
		}
		return len(victims) < l.ndropped-MaxDroppedPerAuthor
	})
	for _, seq := range victims {
		l.clear(seq)
	}
}

func (l *authorLog) cover(seq uint64) {
	if seq <= l.contiguous {
		return
	}
	if seq != l.contiguous+1 {
		if l.above == nil {
			l.above = make(map[uint64]struct{})
		}
		if _, ok := l.above[seq]; ok {
			return
		}
		l.above[seq] = struct{}{}
		if n := len(l.sorted); n == 0 || seq > l.sorted[n-1] {
			l.sorted = append(l.sorted, seq)
		} else {
			l.stale = true
		}
		return
	}
	l.contiguous++
	l.absorb()
}

// coverUpTo covers every seq in 1..seq.
func (l *authorLog) coverUpTo(seq uint64) {
	if seq <= l.contiguous {
		return
	}
	for s := range l.above {
		if s <= seq {
			delete(l.above, s)
		}
	}
	if !l.stale {
		i, found := slices.BinarySearch(l.sorted, seq)
		if found {
			i++
		}
		l.sorted = l.sorted[i:]
	}
	l.contiguous = seq
	l.absorb()
}

// absorb extends contiguous over the dots above that now follow it.
func (l *authorLog) absorb() {
	for len(l.above) > 0 {
		if _, ok := l.above[l.contiguous+1]; !ok {
			return
		}
		delete(l.above, l.contiguous+1)
		if !l.stale && len(l.sorted) > 0 && l.sorted[0] == l.contiguous+1 {
			l.sorted = l.sorted[1:]
		} else {
			l.stale = true
		}
		l.contiguous++
	}
	l.sorted, l.stale = nil, false // every gap closed: let go of the array
}

// sortedAbove returns the covered seqs above contiguous+1 in order. The
// slice is the log's own: callers read it, and clone what they hand out.
func (l *authorLog) sortedAbove() []uint64 {
	if len(l.above) == 0 {
		l.sorted, l.stale = nil, false
		return nil
	}
	if l.stale {
		l.sorted = l.sorted[:0]
		for seq := range l.above {
			l.sorted = append(l.sorted, seq)
		}
		slices.Sort(l.sorted)
		l.stale = false
	}
	return l.sorted
}

func (l *authorLog) addRevocation(seq uint64) {
	i, found := slices.BinarySearch(l.revocations, seq)
	if !found {
		l.revocations = slices.Insert(l.revocations, i, seq)
	}
}

func (l *authorLog) removeRevocation(seq uint64) {
	if i, found := slices.BinarySearch(l.revocations, seq); found {
		l.revocations = slices.Delete(l.revocations, i, i+1)
	}
}
