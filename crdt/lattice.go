package crdt

import "slices"

// before orders records that claim the same key, so that every replica
// indexes the same one whatever the arrival order.
func before(a, b Record) bool {
	ha, hb := a.Head(), b.Head()
	if ha.HLC != hb.HLC {
		return ha.HLC < hb.HLC
	}
	if c := compareAuthors(ha.Author, hb.Author); c != 0 {
		return c < 0
	}
	return ha.Seq < hb.Seq
}

// winners indexes, for each key, the earliest record (by before) of those
// held that claim it. Write-once facts: a second record for the same key is
// kept aside, and takes over if the winner is collected. With newest set
// it keeps the latest instead: a last-writer-wins register.
type winners[K comparable, R Record] struct {
	m      map[K]R
	dups   map[K][]R // losers, only for keys claimed more than once (rare)
	newest bool
}

func newWinners[K comparable, R Record]() winners[K, R] {
	return winners[K, R]{m: make(map[K]R)}
}

func newLatest[K comparable, R Record]() winners[K, R] {
	return winners[K, R]{m: make(map[K]R), newest: true}
}

// wins reports whether a takes the key from b.
func (w *winners[K, R]) wins(a, b Record) bool {
	if w.newest {
		return before(b, a)
	}
	return before(a, b)
}

func (w *winners[K, R]) add(k K, r R) {
	old, ok := w.m[k]
	if !ok {
		w.m[k] = r
		return
	}
	if w.wins(r, old) {
		w.m[k], r = r, old
	}
	if w.dups == nil {
		w.dups = make(map[K][]R)
	}
	w.dups[k] = append(w.dups[k], r)
}

func (w *winners[K, R]) remove(k K, r R) {
	old, ok := w.m[k]
	if !ok {
		return
	}
	d := w.dups[k]
	if Record(old) == Record(r) {
		if len(d) == 0 {
			delete(w.m, k)
			return
		}
		best := 0
		for i := range d {
			if w.wins(d[i], d[best]) {
				best = i
			}
		}
		w.m[k] = d[best]
		d = slices.Delete(d, best, best+1)
	} else {
		i := slices.IndexFunc(d, func(x R) bool { return Record(x) == Record(r) })
		if i < 0 {
			return
		}
		d = slices.Delete(d, i, i+1)
	}
	if len(d) == 0 {
		delete(w.dups, k)
	} else {
		w.dups[k] = d
	}
}

// joins indexes, for each key, the join (min, or max if isMax) of the
// values that the records held assert for it. Nearly every key is asserted
// by one record: its value is its join, and only keys asserted more than
// once keep their values aside, as winners keeps its losers. A store holds
// an entry per certificate rotated or revoked, so the common entry is kept
// to a key and a value, with no slice to allocate.
type joins[K comparable] struct {
	m     map[K]Millis   // the join, for every key asserted
	multi map[K][]Millis // every value, only for keys asserted more than once
	isMax bool
}

func newJoins[K comparable](isMax bool) joins[K] {
	return joins[K]{m: make(map[K]Millis), isMax: isMax}
}

func (j *joins[K]) get(k K) (Millis, bool) {
	at, ok := j.m[k]
	return at, ok
}

func (j *joins[K]) has(k K) bool {
	_, ok := j.m[k]
	return ok
}

func (j *joins[K]) add(k K, v Millis) {
	at, ok := j.m[k]
	if !ok {
		j.m[k] = v
		return
	}
	vals, ok := j.multi[k]
	if !ok {
		vals = []Millis{at} // the key's one value so far
	}
	if j.multi == nil {
		j.multi = make(map[K][]Millis)
	}
	j.multi[k] = append(vals, v)
	if j.better(v, at) {
		j.m[k] = v
	}
}

func (j *joins[K]) remove(k K, v Millis) {
	at, ok := j.m[k]
	if !ok {
		return
	}
	vals, ok := j.multi[k]
	if !ok {
		if at == v {
			delete(j.m, k)
		}
		return
	}
	i := slices.Index(vals, v)
	if i < 0 {
		return
	}
	vals = slices.Delete(vals, i, i+1)
	at = vals[0]
	for _, x := range vals[1:] {
		if j.better(x, at) {
			at = x
		}
	}
	j.m[k] = at
	if len(vals) == 1 {
		delete(j.multi, k)
	} else {
		j.multi[k] = vals
	}
}

func (j *joins[K]) better(v, than Millis) bool {
	if j.isMax {
		return v > than
	}
	return v < than
}
