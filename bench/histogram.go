package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The range and precision of every histogram: 1 µs to an hour, 3
// significant digits (an error of at most 0.1%).
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

// histogram is an HDR histogram of durations, safe for concurrent use.
type histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram // guarded by mu
}

func newHistogram() *histogram {
	return &histogram{h: hdrhistogram.New(histLowest, histHighest, histDigits)}
}

// record adds d; a negative d (a clock step) counts as 0, a longer one
// than the range as its top.
func (h *histogram) record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.h.RecordValue(min(us, histHighest)) // in range: cannot fail
}

// Summary is a histogram as reported: how many values, and their
// percentiles and maximum in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (h *histogram) summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.h.TotalCount(),
		P50:   ms(h.h.ValueAtPercentile(50)),
		P90:   ms(h.h.ValueAtPercentile(90)),
		P99:   ms(h.h.ValueAtPercentile(99)),
		Max:   ms(h.h.Max()),
	}
}
