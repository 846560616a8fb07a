package bench

import (
	"testing"
	"time"
)

// The summary reads percentiles in milliseconds from microsecond records,
// within the histogram's 3 significant digits.
func TestHistogramSummaryIsInMillisecondsAndClampsItsRange(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 100; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	s := h.summary()
	near := func(name string, got, want float64) {
		t.Helper()
		if got < want*0.999 || got > want*1.001 {
			t.Errorf("%s = %v ms, want %v", name, got, want)
		}
	}
	if s.Count != 100 {
		t.Errorf("count %d, want 100", s.Count)
	}
	near("p50", s.P50, 50)
	near("p90", s.P90, 90)
	near("p99", s.P99, 99)
	near("max", s.Max, 100)

	h = newHistogram()
	h.record(-time.Second)  // a clock step: counts as 0
	h.record(2 * time.Hour) // past the range: counts as its top
	if s := h.summary(); s.Count != 2 || s.P50 != 0 || s.Max < float64(time.Hour/time.Millisecond)*0.999 {
		t.Errorf("out-of-range records: %+v", s)
	}
}
