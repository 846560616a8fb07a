package crdt

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestContextValidate(t *testing.T) {
	valid := Context{
		{Author: ctrlA, Max: 3, Above: []uint64{5, 9}},
		{Author: ctrlA2, Max: 0},
		{Author: ctrlB, Max: 1 << 40, Above: []uint64{1<<40 + 2}},
	}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid context: %v", err)
	}
	if err := (Context{}).Validate(); err != nil {
		t.Fatalf("empty context: %v", err)
	}
	tooManyAuthors := make(Context, MaxAuthors+1)
	for i := range tooManyAuthors {
		tooManyAuthors[i] = AuthorContext{Author: Author{"a", uint64(i)}}
	}
	tooManyDots := make([]uint64, MaxSeqAhead+1)
	for i := range tooManyDots {
		tooManyDots[i] = uint64(i) + 2
	}
	cases := map[string]Context{
		"unsorted authors":      {{Author: ctrlB}, {Author: ctrlA}},
		"unsorted incarnations": {{Author: ctrlA2}, {Author: ctrlA}},
		"duplicate author":      {{Author: ctrlA}, {Author: ctrlA}},
		"empty name":            {{Author: Author{"", 1}}},
		"long name":             {{Author: Author{strings.Repeat("n", MaxNameLen+1), 1}}},
		"dot next to max":       {{Author: ctrlA, Max: 3, Above: []uint64{4}}},
		"dot below max":         {{Author: ctrlA, Max: 3, Above: []uint64{2}}},
		"dots not increasing":   {{Author: ctrlA, Max: 3, Above: []uint64{9, 5}}},
		"duplicate dots":        {{Author: ctrlA, Max: 3, Above: []uint64{5, 5}}},
		"dots above max seq":    {{Author: ctrlA, Max: math.MaxUint64, Above: []uint64{1}}},
		"too many dots":         {{Author: ctrlA, Max: 0, Above: tooManyDots}},
		"too many authors":      tooManyAuthors,
	}
	for name, c := range cases {
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}

func TestContextHasAndFind(t *testing.T) {
	c := Context{
		{Author: ctrlA, Max: 3, Above: []uint64{5, 9}},
		{Author: ctrlB, Max: 1},
	}
	for _, tc := range []struct {
		d    Dot
		want bool
	}{
		{Dot{ctrlA, 1}, true}, {Dot{ctrlA, 3}, true}, {Dot{ctrlA, 4}, false},
		{Dot{ctrlA, 5}, true}, {Dot{ctrlA, 6}, false}, {Dot{ctrlA, 9}, true}, {Dot{ctrlA, 10}, false},
		{Dot{ctrlA2, 1}, false}, {Dot{ctrlB, 1}, true}, {Dot{ctrlB, 2}, false}, {Dot{ctrlC, 1}, false},
	} {
		if got := c.Has(tc.d); got != tc.want {
			t.Errorf("Has(%v) = %v, want %v", tc.d, got, tc.want)
		}
	}
	if e := c.Find(ctrlB); e == nil || e.Max != 1 {
		t.Errorf("Find(ctrlB) = %+v", e)
	}
	if e := c.Find(ctrlC); e != nil {
		t.Errorf("Find(ctrlC) = %+v, want nil", e)
	}
	if !(&Delta{}).Empty() || (&Delta{Intervals: []Interval{{ctrlA, 0, 1}}}).Empty() {
		t.Error("Delta.Empty")
	}
}
