package sim

import (
	"math"
	"slices"
	"sort"
)

// moreResults fills the figures added to the first report fields: the end-to-end
// delay and its physical bound, the requests refused, and what nodes send.
func (r *run) moreResults(res *Result) {
	R := r.net.nR
	for c := range r.pairE2E {
		slices.Sort(r.pairE2E[c])
	}
	ident := func(int) (float64, float64) { return 0, 1 }
	q := mergedQuantiles(r.pairE2E, ident, []float64{0.5, 0.9, 0.99, 1})
	res.EndToEndMs = Quantiles4{q[0], q[1], q[2], q[3]}
	res.EndToEndCDF = mergedCDF(r.pairE2E, ident, cdfPoints)
	res.PairsAppliedBeforeAck = r.beforeAck

	phys := physicalByClass(r.top)
	known := true
	for c, s := range r.pairE2E {
		if len(s) > 0 && math.IsNaN(phys[c]) {
			known = false
		}
	}
	if known && sampleSize(r.pairE2E) > 0 {
		pq := directQuantiles(r.pairE2E, phys)
		res.PhysicalMs = &pq
		res.PhysicalCDF = directCDF(r.pairE2E, phys)
		cross := make([][]int32, len(r.pairE2E))
		for c := range cross {
			if c/R != c%R && phys[c] > 0 {
				cross[c] = r.pairE2E[c]
			}
		}
		q = mergedQuantiles(cross, func(c int) (float64, float64) { return 0, 1 / phys[c] }, []float64{0.5, 0.99})
		res.EndToEndStretchPhysical = &Quantiles2{q[0], q[1]}
		for c, s := range r.pairE2E {
			// Samples are whole µs, truncated; the bound too.
			bound := int32(math.Floor(phys[c] * 1000))
			res.PairsBelowPhysical += int64(sort.Search(len(s), func(i int) bool { return s[i] >= bound }))
		}
	}

	res.ByRegionPair = r.regionPairs()
	res.StrategyCounters = r.strategyCounters()
	res.RefusedRequests = r.stat.refused
	res.AbandonedWrites = r.abandoned
	res.RequestsNoController = r.noCtrl
	res.RevokedConnects = r.stat.revokedConnects
	for id, n := range r.refusedBy {
		if n > 0 {
			if res.RefusedBy == nil {
				res.RefusedBy = make(map[string]int)
			}
			res.RefusedBy[r.cl.Nodes[id].Name] = int(n)
		}
	}
	if ev, nodes := float64(len(r.writes)), float64(len(r.nodes)); ev > 0 {
		var bytes, msgs int64
		for i := range r.nodes {
			bytes += r.bytesSent[i]
			msgs += r.msgsSent[i]
		}
		res.BytesSentPerEventPerNode = round(float64(bytes) / ev / nodes)
		res.MessagesSentPerEventPerNode = round(float64(msgs) / ev / nodes)
	}
}
