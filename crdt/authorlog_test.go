package crdt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortedAboveFollowsEveryChange: the sorted seqs above an author's
// contiguous one, kept as seqs arrive rather than sorted at each call,
// are the covered seqs in order after any mix of arrivals in order, out
// of order, twice, and of the seqs that close gaps.
func TestSortedAboveFollowsEveryChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		l := &authorLog{}
		next := uint64(1)
		for step := range 300 {
			next = max(next, l.contiguous+1)
			switch op := rng.IntN(10); {
			case op < 5: // the next seq, or one a little ahead: a gap
				next += uint64(rng.IntN(3))
				l.cover(next)
				next++
			case op < 8: // a seq below the highest: a repair
				l.cover(l.contiguous + 1 + uint64(rng.IntN(int(next-l.contiguous))))
			case op < 9: // again
				l.cover(uint64(rng.IntN(int(next) + 1)))
			default:
				l.coverUpTo(l.contiguous + uint64(rng.IntN(8)))
			}
			want := make([]uint64, 0, len(l.above))
			for seq := range l.above {
				want = append(want, seq)
			}
			slices.Sort(want)
			if got := l.sortedAbove(); !slices.Equal(got, want) && len(want)+len(got) > 0 {
				t.Fatalf("round %d step %d: sortedAbove %v, covered above %d: %v", round, step, got, l.contiguous, want)
			}
		}
	}
}
