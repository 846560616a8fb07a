package crdt

import (
	"fmt"
	"io"

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

// EncodeSnapshot writes the whole store to w. Records are written in the
// order Range visits them.
func (s *Store) EncodeSnapshot(w io.Writer) error {
	enc := msgpack.NewEncoder(w)
	e := &encoder{e: enc}
	e.arrayLen(3)
	e.uint(snapshotVersion)
	ctx := s.Context()
	e.arrayLen(len(ctx))
	for _, a := range ctx {
		e.arrayLen(4)
		e.str(a.Author.Name)
		e.uint(a.Author.Incarnation)
		e.uint(a.Max)
		e.arrayLen(len(a.Above))
		for _, seq := range a.Above {
			e.uint(seq)
		}
	}
	e.arrayLen(s.Len())
	s.Range(func(r Record) bool {
		encodeRecord(e, r, true)
		return e.err == nil
	})
	if e.err != nil {
		return fmt.Errorf("crdt: encode snapshot: %w", e.err)
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
	for i := 0; i < nr && d.err == nil; i++ {
		rec := decodeRecord(d)
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
	if err := snap.Context.Validate(); err != nil {
		return nil, fmt.Errorf("crdt: snapshot context: %w", err)
	}
	return snap, nil
}

// RestoreVerified merges a snapshot into the store: its records, and the
// coverage of its context (so that collected dots stay covered). Callers
// MUST ONLY pass snapshots whose records are verified or that the node wrote
// itself.
func (s *Store) RestoreVerified(snap *Snapshot) error {
	for _, r := range snap.Records {
		h := r.Head()
		l, err := s.log(h.Author, true)
		if err != nil {
			return fmt.Errorf("crdt: restore: %w", err)
		}
		// The snapshot may hold records far above a collected prefix, so
		// they go in directly rather than through MergeVerified's checks.
		if h.Seq <= l.base || l.get(h.Seq) != nil || s.droppedByRevocation(r) {
			l.cover(h.Seq)
			continue
		}
		h.Author.Name = l.author.Name
		l.put(h.Seq, r)
		l.cover(h.Seq)
		s.index(l, r)
	}
	for _, a := range snap.Context {
		l, err := s.log(a.Author, true)
		if err != nil {
			return fmt.Errorf("crdt: restore: %w", err)
		}
		l.coverUpTo(a.Max)
		for _, seq := range a.Above {
			l.cover(seq)
		}
		l.trim()
	}
	return nil
}
