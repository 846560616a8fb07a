package crdt

import (
	"cmp"
	"math"
	"slices"
)

// AuthorContext is what a replica has of one author's writes: every seq in
// 1..Max, and the seqs in Above (sorted, each > Max+1).
type AuthorContext struct {
	Author Author
	Max    uint64
	Above  []uint64
}

// Has reports whether seq is covered.
func (c *AuthorContext) Has(seq uint64) bool {
	if seq <= c.Max {
		return true
	}
	_, ok := slices.BinarySearch(c.Above, seq)
	return ok
}

// Context is a replica's causal context: one AuthorContext per author it has
// heard of, sorted by author. Peers exchange it in anti-entropy; its size
// follows the number of authors and out-of-order dots, not the state.
type Context []AuthorContext

// Find returns the entry for a, or nil.
func (c Context) Find(a Author) *AuthorContext {
	i, ok := slices.BinarySearchFunc(c, a, func(e AuthorContext, a Author) int { return compareAuthors(e.Author, a) })
	if !ok {
		return nil
	}
	return &c[i]
}

// Has reports whether the context covers d.
func (c Context) Has(d Dot) bool {
	e := c.Find(d.Author)
	return e != nil && e.Has(d.Seq)
}

// Validate checks a context received from a peer: sorted, no duplicates,
// Above strictly increasing and above Max+1, sizes within limits.
func (c Context) Validate() error {
	if len(c) > MaxAuthors {
		return invalid("context of %d authors", len(c))
	}
	for i := range c {
		e := &c[i]
		if e.Author.Name == "" || len(e.Author.Name) > MaxNameLen {
			return invalid("context author name length %d", len(e.Author.Name))
		}
		if i > 0 && compareAuthors(c[i-1].Author, e.Author) >= 0 {
			return invalid("context authors not sorted")
		}
		if err := e.validateAbove(MaxSeqAhead, "context"); err != nil {
			return err
		}
	}
	return nil
}

// validateAbove checks that Above holds at most limit seqs, strictly
// increasing and above Max+1. what names the context in errors.
func (c *AuthorContext) validateAbove(limit int, what string) error {
	if len(c.Above) > limit {
		return invalid("%s of %v has %d dots above", what, c.Author, len(c.Above))
	}
	if len(c.Above) > 0 && c.Max >= math.MaxUint64-1 {
		return invalid("%s of %v: dots above the largest seq", what, c.Author)
	}
	prev := c.Max + 1
	for _, s := range c.Above {
		if s <= prev {
			return invalid("%s of %v: dots above not increasing", what, c.Author)
		}
		prev = s
	}
	return nil
}

func compareAuthors(a, b Author) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.Incarnation, b.Incarnation)
}

// Interval says that the sender of a delta covered every seq of Author in
// (From, To]: the records it holds in that range travel in the same delta,
// and the ones it lacks were collected.
type Interval struct {
	Author   Author
	From, To uint64
}

// Delta is what DeltaSince returns: records a peer lacks, revocations
// first, then oldest first, and the intervals they complete.
type Delta struct {
	Records   []Record
	Intervals []Interval
	// Truncated is set when the byte budget cut the delta short: the peer
	// lacks more, and should ask again at once.
	Truncated bool
}

// Empty reports whether d carries nothing.
func (d *Delta) Empty() bool { return len(d.Records) == 0 && len(d.Intervals) == 0 }
