package crdt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestJoinsMatchAMultiset checks joins, which keeps the values of keys
// asserted more than once apart from the others,
// against a plain multiset of values per key under random adds and
// removes, removes of values never added included.
func TestJoinsMatchAMultiset(t *testing.T) {
	for _, isMax := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(1, 2))
		j := newJoins[int](isMax)
		ref := map[int][]Millis{}
		for step := 0; step < 20000; step++ {
			k, v := rng.IntN(4), Millis(rng.IntN(6))
			if rng.IntN(2) == 0 {
				j.add(k, v)
				ref[k] = append(ref[k], v)
			} else {
				j.remove(k, v)
				if i := slices.Index(ref[k], v); i >= 0 {
					ref[k] = slices.Delete(ref[k], i, i+1)
				}
			}
			for k := range 4 {
				vals := ref[k]
				got, ok := j.get(k)
				if ok != (len(vals) > 0) {
					t.Fatalf("isMax=%v step %d: key %d present %v, reference holds %v", isMax, step, k, ok, vals)
				}
				if !ok {
					continue
				}
				want := slices.Min(vals)
				if isMax {
					want = slices.Max(vals)
				}
				if got != want {
					t.Fatalf("isMax=%v step %d: key %d join %d, want %d of %v", isMax, step, k, got, want, vals)
				}
			}
		}
	}
}
