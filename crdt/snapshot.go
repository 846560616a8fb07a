package crdt

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"

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
func (s *Store) EncodeSnapshot(w io.Writer) error {
	// msgpack writes byte by byte to a writer that is not an
	// io.ByteWriter; buffer those.
	var bw *bufio.Writer
	if _, ok := w.(io.ByteWriter); !ok {
		bw = bufio.NewWriterSize(w, 64<<10)
		w = bw
	}
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
	e.arrayLen(s.Len() + s.dropCount())
	s.rangeAll(func(r Record) bool {
		encodeRecord(e, r, true)
		return e.err == nil
	})
	if e.err == nil && bw != nil {
		e.err = bw.Flush()
	}
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
// itself; the context is trusted as it stands. A record whose dot the store
// already covers is skipped, so that a record collected here never comes
// back. On error the store is unchanged.
func (s *Store) RestoreVerified(snap *Snapshot) error {
	if err := snap.Context.Validate(); err != nil {
		return fmt.Errorf("crdt: restore: %w", err)
	}
	fresh := make(map[Author]struct{})
	for _, r := range snap.Records {
		if r == nil || r.Head().Seq == 0 {
			return fmt.Errorf("crdt: restore: %w", invalid("nil record or seq 0"))
		}
		if a := r.Head().Author; s.authors[a] == nil {
			fresh[a] = struct{}{}
		}
	}
	for _, a := range snap.Context {
		if s.authors[a.Author] == nil {
			fresh[a.Author] = struct{}{}
		}
	}
	if len(s.authors)+len(fresh) > MaxAuthors {
		return fmt.Errorf("crdt: restore: %w", ErrTooManyAuthors)
	}

	// The records this store has not covered yet, by author, decided
	// before the snapshot's context covers them.
	type batch struct {
		l    *authorLog
		recs []Record
	}
	var batches []*batch
	byLog := make(map[*authorLog]*batch)
	for _, r := range snap.Records {
		h := r.Head()
		l, _ := s.log(h.Author, true)
		if l.covered(h.Seq) {
			continue
		}
		b := byLog[l]
		if b == nil {
			b = &batch{l: l}
			byLog[l] = b
			batches = append(batches, b)
		}
		b.recs = append(b.recs, r)
	}
	for _, a := range snap.Context {
		l, _ := s.log(a.Author, true)
		l.coverUpTo(a.Max)
		for _, seq := range a.Above {
			l.cover(seq)
		}
	}
	for _, b := range batches {
		l := b.l
		slices.SortStableFunc(b.recs, func(x, y Record) int { return cmp.Compare(x.Head().Seq, y.Head().Seq) })
		b.recs = slices.CompactFunc(b.recs, func(x, y Record) bool { return x.Head().Seq == y.Head().Seq })
		for _, r := range b.recs {
			l.cover(r.Head().Seq)
		}
		// A log with nothing in it starts just below the first record, so
		// that a snapshot taken after a long collected prefix does not
		// allocate that prefix.
		if len(l.records) == 0 && len(l.dropped) == 0 {
			l.base = min(b.recs[0].Head().Seq-1, l.contiguous)
		}
		for _, r := range b.recs {
			if s.droppedByRevocation(r) {
				l.drop(r.Head().Seq, r)
				continue
			}
			l.put(r.Head().Seq, r)
			s.index(l, r)
		}
	}
	for _, l := range s.order {
		l.trim()
	}
	return nil
}
