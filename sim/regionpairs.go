package sim

import (
	"math"
	"slices"
)

// RegionPair is the breakdown of a result by (controller region, router
// region), over the fault-free pairs of that class. Times in ms.
type RegionPair struct {
	From  string `json:"from"` // the writing controller's region
	To    string `json:"to"`   // the router's region
	Pairs int    `json:"pairs"`
	// EndToEndMs and SyncDelayMs are as in the Result, for this class.
	EndToEndMs  Quantiles4 `json:"end_to_end_ms"`
	SyncDelayMs Quantiles4 `json:"sync_delay_ms"`
	// PhysicalMs is light in fibre between the regions (absent without
	// locations); DirectMs the modelled one-way delay.
	PhysicalMs *float64 `json:"physical_ms,omitempty"`
	DirectMs   float64  `json:"direct_ms"`
	// BytesPerEvent is the state-carrying bytes received by the To
	// region's nodes from the From region's nodes, per write.
	BytesPerEvent float64 `json:"bytes_per_event"`
}

// strategyCounter is implemented by nodes that count what the report does
// not (the mesh strategy: records held, dropped, pulls, repairs); the run
// sums them over nodes into Result.StrategyCounters.
type strategyCounter interface {
	Counters(add func(name string, v int64))
}

// regionPairs returns the per region pair breakdown, in (from, to) order,
// for classes with pairs or bytes; the class slices must be sorted.
func (r *run) regionPairs() []RegionPair {
	R := r.net.nR
	phys := physicalByClass(r.top)
	ident := func(int) (float64, float64) { return 0, 1 }
	var out []RegionPair
	for c := range R * R {
		n := len(r.pairE2E[c])
		if n == 0 && r.regionBytes[c] == 0 {
			continue
		}
		rp := RegionPair{
			From: r.top.Regions[c/R].Name, To: r.top.Regions[c%R].Name, Pairs: n,
			DirectMs: round(msOf(r.cl.RegionDelay(c/R, c%R))),
		}
		one := [][]int32{r.pairE2E[c]}
		q := mergedQuantiles(one, ident, []float64{0.5, 0.9, 0.99, 1})
		rp.EndToEndMs = Quantiles4{q[0], q[1], q[2], q[3]}
		q = mergedQuantiles([][]int32{r.pairDelay[c]}, ident, []float64{0.5, 0.9, 0.99, 1})
		rp.SyncDelayMs = Quantiles4{q[0], q[1], q[2], q[3]}
		if !math.IsNaN(phys[c]) {
			p := round(phys[c])
			rp.PhysicalMs = &p
		}
		if ev := len(r.writes); ev > 0 {
			rp.BytesPerEvent = round(float64(r.regionBytes[c]) / float64(ev))
		}
		out = append(out, rp)
	}
	return out
}

// strategyCounters sums the nodes' Counters; nil when no node counts.
func (r *run) strategyCounters() map[string]int64 {
	var out map[string]int64
	add := func(name string, v int64) {
		if out == nil {
			out = make(map[string]int64)
		}
		out[name] += v
	}
	for _, node := range r.nodes {
		if c, ok := node.(strategyCounter); ok {
			c.Counters(add)
		}
	}
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
