package crdt

import (
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// snapshotVersion is the version of the snapshot encoding.
//
//	[version, [[name, incarnation, max, [above...]]...], [record...]]
const snapshotVersion = 1

// MaxSnapshotRecords caps the records a snapshot may claim to hold.
const MaxSnapshotRecords = 1 << 26

// Snapshot is a decoded snapshot: a causal context and the records held.
type Snapshot struct {
	Context Context
	Records []Record
}

// EncodeSnapshot writes the whole store to w: its causal context and
// every record it holds, author by author in seq order, including the
// records set aside as written by a revoked author (RestoreVerified sets
// them aside again), so that a restored node can still hand them to peers.
// The output depends only on the store's state, never on map order.
func (s *Store) EncodeSnapshot(w io.Writer) error { return s.Snapshot().Encode(w) }

// Snapshot returns what EncodeSnapshot writes, as the store holds it now:
// a copy of its causal context and the records (shared: a record is
// immutable once merged). Taking it visits every record and encodes none,
// so that the store's owner, which takes it under the lock that guards the
// store, can encode it after letting go (Encode). It can also be restored
// into another store (RestoreVerified).
func (s *Store) Snapshot() *Snapshot {
	snap := &Snapshot{Context: s.Context(), Records: make([]Record, 0, s.Len()+s.dropCount())}
	s.rangeAll(func(r Record) bool {
		snap.Records = append(snap.Records, r)
		return true
	})
	return snap
}

// Encode writes snap as EncodeSnapshot writes a store.
func (snap *Snapshot) Encode(w io.Writer) error {
	const chunk = 64 << 10
	e := encoder{b: make([]byte, 0, chunk+4096), trees: make(map[*Batch][][][32]byte)}
	var werr error
	flush := func() {
		if werr == nil && len(e.b) > 0 {
			_, werr = w.Write(e.b)
		}
		e.b = e.b[:0]
	}
	e.arrayLen(3)
	e.uint(snapshotVersion)
	e.arrayLen(len(snap.Context))
	for _, a := range snap.Context {
		e.arrayLen(4)
		e.str(a.Author.Name)
		e.uint(a.Author.Incarnation)
		e.uint(a.Max)
		e.arrayLen(len(a.Above))
		for _, seq := range a.Above {
			e.uint(seq)
			if len(e.b) >= chunk {
				flush()
			}
		}
	}
	e.arrayLen(len(snap.Records))
	for _, r := range snap.Records {
		if werr != nil {
			break
		}
		encodeRecord(&e, r, true)
		if len(e.b) >= chunk {
			flush()
		}
	}
	flush()
	if werr != nil {
		return fmt.Errorf("crdt: encode snapshot: %w", werr)
	}
	return nil
}

// DecodeSnapshot reads a snapshot written by EncodeSnapshot. Every length is
// checked before use and every record validated; signatures are not
// checked, so a snapshot from anywhere but the node's own disk must have its
// records verified before Restore.
func DecodeSnapshot(r io.Reader) (*Snapshot, error) {
	d := &decoder{d: msgpack.NewDecoder(r)}
	if n := d.arrayLen(3); d.err == nil && n != 3 {
		d.fail("snapshot of %d parts", n)
	}
	if v := d.uint(); d.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("%w: snapshot version %d, want %d", ErrMalformed, v, snapshotVersion)
	}
	snap := &Snapshot{}
	na := d.arrayLen(MaxAuthors)
	for i := 0; i < na && d.err == nil; i++ {
		if n := d.arrayLen(4); d.err == nil && n != 4 {
			d.fail("snapshot author of %d fields", n)
		}
		var a AuthorContext
		a.Author.Name = d.str(MaxNameLen)
		a.Author.Incarnation = d.uint()
		a.Max = d.uint()
		nd := d.arrayLen(MaxSeqAhead)
		for j := 0; j < nd && d.err == nil; j++ {
			a.Above = append(a.Above, d.uint())
		}
		snap.Context = append(snap.Context, a)
	}
	nr := d.arrayLen(MaxSnapshotRecords)
	if d.err == nil {
		snap.Records = make([]Record, 0, min(nr, 4096))
	}
	var bd batchDecoder
	for i := 0; i < nr && d.err == nil; i++ {
		rec := decodeRecord(d, &bd)
		if d.err != nil {
			break
		}
		if err := Validate(rec); err != nil {
			return nil, fmt.Errorf("crdt: snapshot record %d: %w", i, err)
		}
		snap.Records = append(snap.Records, rec)
	}
	if d.err != nil {
		return nil, fmt.Errorf("crdt: decode snapshot: %w", d.err)
	}
	bd.finish()
	if err := snap.Context.Validate(); err != nil {
		return nil, fmt.Errorf("crdt: snapshot context: %w", err)
	}
	return snap, nil
}

// RestoreVerified merges a snapshot into the store: its records, and the
// coverage of its context (so that collected dots stay covered). Callers
// MUST ONLY pass snapshots whose records are verified or that the node wrote
// itself; the context is trusted as it stands. A record whose dot the store
// already covers is skipped, so that a record collected here never comes
// back. A snapshot that no store could have written (a record or dot more
// than MaxSeqAhead above its author's contiguous seq, too many authors) is
// refused, and on error the store is unchanged.
func (s *Store) RestoreVerified(snap *Snapshot) error {
	if err := snap.Context.Validate(); err != nil {
		return fmt.Errorf("crdt: restore: %w", err)
	}
	fresh := make(map[Author]struct{})
	// reach is, per author, the highest seq a record or dot may have.
	reach := func(a Author) uint64 {
		var m uint64
		if l := s.authors[a]; l != nil {
			m = l.contiguous
		}
		if c := snap.Context.Find(a); c != nil {
			m = max(m, c.Max)
		}
		if m > math.MaxUint64-MaxSeqAhead {
			return math.MaxUint64
		}
		return m + MaxSeqAhead
	}
	for _, c := range snap.Context {
		if s.authors[c.Author] == nil {
			fresh[c.Author] = struct{}{}
		}
		if n := len(c.Above); n > 0 && c.Above[n-1] > reach(c.Author) {
			return fmt.Errorf("crdt: restore: %w: dot %d of %v", ErrTooFarAhead, c.Above[n-1], c.Author)
		}
	}
	for _, r := range snap.Records {
		if r == nil || r.Head().Seq == 0 {
			return fmt.Errorf("crdt: restore: %w", invalid("nil record or seq 0"))
		}
		h := r.Head()
		if s.authors[h.Author] == nil {
			fresh[h.Author] = struct{}{}
		}
		if h.Seq > reach(h.Author) {
			return fmt.Errorf("crdt: restore: %w: %v", ErrTooFarAhead, h.Dot())
		}
	}
	if len(s.authors)+len(fresh) > MaxAuthors {
		return fmt.Errorf("crdt: restore: %w", ErrTooManyAuthors)
	}

	// The records this store has not covered yet, decided before the
	// snapshot's context covers them.
	var recs []Record
	for _, r := range snap.Records {
		l, _ := s.log(r.Head().Author, true)
		if !l.covered(r.Head().Seq) {
			recs = append(recs, r)
		}
	}
	for _, a := range snap.Context {
		l, _ := s.log(a.Author, true)
		l.coverUpTo(a.Max)
		for _, seq := range a.Above {
			l.cover(seq)
		}
	}
	for _, r := range recs {
		h := r.Head()
		l := s.authors[h.Author]
		if l.entry(h.Seq) != nil {
			continue // twice in the snapshot
		}
		l.cover(h.Seq)
		if s.droppedByRevocation(r) {
			l.drop(h.Seq, r)
			continue
		}
		l.put(h.Seq, r)
		s.index(l, r)
	}
	return nil
}
