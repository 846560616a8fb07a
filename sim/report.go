package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is meshsim's JSON report (docs/meshsim-model.md). Every key is part of
// the contract; for a given seed in model mode the JSON is identical byte
// for byte except wall_seconds and machine.
type Report struct {
	Topology string    `json:"topology"`
	Seed     int64     `json:"seed"`
	Mode     string    `json:"mode"`
	Results  []*Result `json:"results"`
	Machine  Machine   `json:"machine"`
	// Provenance says how the report was made (provenance.go); meshsim
	// always sets it.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Machine holds figures of the machine, not of the simulation.
type Machine struct {
	PeakMemoryMB        float64 `json:"peak_memory_mb"`
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	// Workers is how many goroutines stepped the nodes (--workers; 0:
	// one per CPU). It changes the wall time, never the results.
	Workers int `json:"workers"`
}

// Result is one strategy's row of the report. Times are milliseconds.
type Result struct {
	Strategy                    string     `json:"strategy"`
	Controllers                 int        `json:"controllers"`
	Routers                     int        `json:"routers"`
	Events                      int        `json:"events"`
	SyncDelayMs                 Quantiles4 `json:"sync_delay_ms"`
	DirectMs                    Quantiles4 `json:"direct_ms"`
	ExcessMs                    Quantiles4 `json:"excess_ms"`
	StretchCrossRegion          Quantiles2 `json:"stretch_cross_region"`
	CatchUpMs                   Quantiles3 `json:"catch_up_ms"`
	IssueLatencyMs              Quantiles2 `json:"issue_latency_ms"`
	WritesUnavailable           int        `json:"writes_unavailable"`
	BytesPerEventPerNode        float64    `json:"bytes_per_event_per_node"`
	CrossRegionBytesPerEvent    float64    `json:"cross_region_bytes_per_event"`
	MessagesPerEventPerNode     float64    `json:"messages_per_event_per_node"`
	Undelivered                 int64      `json:"undelivered"`
	Converged                   bool       `json:"converged"`
	ConvergenceAfterLastFaultMs float64    `json:"convergence_after_last_fault_ms"`
	Connects                    int        `json:"connects"`
	FalseRejects                int        `json:"false_rejects"`
	RevokedAccepts              int        `json:"revoked_accepts"`
	WallSeconds                 float64    `json:"wall_seconds"`

	// UnauthorizedAccepts counts connects admitted after the policy change
	// that removed their access was reachable for a second (as
	// revoked_accepts; must be 0); DeniedConnects, the connects that tried
	// such a certificate. ByKind gives the fault-free sync delays, excess
	// and stretch by write kind (issue, rotate, revoke, policy).
	UnauthorizedAccepts int                   `json:"unauthorized_accepts"`
	DeniedConnects      int                   `json:"denied_connects"`
	ByKind              map[string]KindDelays `json:"by_kind,omitempty"`

	// Added to the first report fields (bounds.go, report_more.go); times in ms.

	// EndToEndMs is the delay users feel, the headline: from the client's
	// request reaching a controller to the change being enforceable at the
	// router, over the same fault-free pairs as sync_delay_ms (which counts
	// from the acknowledgement instead).
	EndToEndMs Quantiles4 `json:"end_to_end_ms"`
	// PhysicalMs is the physical bound of the same pairs: light in fibre
	// along the great circle from the write's controller to the router.
	// Absent when a region has no location.
	PhysicalMs *Quantiles4 `json:"physical_ms,omitempty"`
	// EndToEndStretchPhysical is end-to-end / physical over cross-region
	// pairs; absent with physical_ms.
	EndToEndStretchPhysical *Quantiles2 `json:"end_to_end_stretch_physical,omitempty"`
	// PairsBelowPhysical counts pairs whose end-to-end delay beats light
	// in fibre: 0 unless the model is broken.
	PairsBelowPhysical int64 `json:"pairs_below_physical"`
	// PairsAppliedBeforeAck counts pairs applied at their router before
	// the write's acknowledgement (a negative sync delay: raft acks after
	// its commit reaches the origin, which may be after a router in the
	// leader's region applied it).
	PairsAppliedBeforeAck int64 `json:"pairs_applied_before_ack"`
	// RefusedRequests counts requests a controller refused (as one whose
	// clock has no sample yet, or is too far off, answers 503), after which
	// the client tried another; RefusedBy, the same by controller.
	// AbandonedWrites were refused everywhere until the client gave up;
	// RequestsNoController found no reachable controller. Both are in
	// writes_unavailable.
	RefusedRequests      int            `json:"refused_requests"`
	RefusedBy            map[string]int `json:"refused_by,omitempty"`
	AbandonedWrites      int            `json:"abandoned_writes"`
	RequestsNoController int            `json:"requests_no_controller"`
	// BytesSentPerEventPerNode and MessagesSentPerEventPerNode count what
	// nodes send of state-carrying messages, lost ones and stream
	// retransmissions included (bytes_per_event_per_node counts what
	// arrives, so it falls as loss rises).
	BytesSentPerEventPerNode    float64 `json:"bytes_sent_per_event_per_node"`
	MessagesSentPerEventPerNode float64 `json:"messages_sent_per_event_per_node"`
	// RevokedConnects are the connects of connects that tried a revoked
	// certificate. Connects follow acknowledgements, so their count
	// depends on the strategy (docs/meshsim-model.md, "Connects").
	RevokedConnects int `json:"revoked_connects"`
	// DroppedMessages counts messages the network did not deliver, by
	// cause; StrategyCounters, what the strategy's nodes count (the mesh:
	// records held at the end, rejected by reason, pulls, repairs).
	DroppedMessages  DropStats        `json:"dropped_messages"`
	StrategyCounters map[string]int64 `json:"strategy_counters,omitempty"`
	// ByRegionPair breaks the fault-free pairs down by (controller
	// region, router region).
	ByRegionPair []RegionPair `json:"by_region_pair"`

	// Stats are details that the JSON leaves out.
	Stats Stats `json:"-"`
	// SyncCDF and DirectCDF sample the fault-free sync delay and direct
	// latency distributions (ms) at evenly spaced ranks, for plots;
	// EndToEndCDF and PhysicalCDF, the end-to-end delay and its physical
	// bound (nil when unknown).
	SyncCDF, DirectCDF       []CDFPoint `json:"-"`
	EndToEndCDF, PhysicalCDF []CDFPoint `json:"-"`
}

// Stats are figures of a run beyond the report's.
type Stats struct {
	Deliveries   int64         // messages delivered, state-carrying or not
	Dropped      DropStats     // messages the network did not deliver
	Events       int64         // scheduler events processed
	Pairs        int64         // fault-free pairs (the sync delay sample)
	CatchUpPairs int64         // pairs affected by a fault
	SimTime      time.Duration // virtual time at which the run stopped
	NoController int           // requests that reached no controller
	// Refused counts requests a controller refused (Env.Refused) and the
	// client sent on to another; RefusedBy, the same by controller name.
	// Abandoned counts writes refused everywhere until the client gave up
	// (they are in writes_unavailable, not in undelivered).
	Refused   int
	RefusedBy map[string]int
	Abandoned int
}

// CDFPoint is one point of an empirical CDF.
type CDFPoint struct {
	Ms, Frac float64
}

// Quantiles4, Quantiles3 and Quantiles2 are the quantile sets of the report.
type Quantiles4 struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Quantiles3 is p50, p99 and max.
type Quantiles3 struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Quantiles2 is p50 and p99.
type Quantiles2 struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Quantiles use the nearest-rank definition: the p-quantile of n sorted
// values is the value at rank ceil(p*n) (1-based); of no values, 0.
func rank(p float64, n int) int {
	return max(1, int(math.Ceil(p*float64(n)-1e-9)))
}

// round rounds to 3 decimals (1µs for milliseconds) and never yields -0.
func round(v float64) float64 {
	v = math.Round(v*1000) / 1000
	if v == 0 {
		return 0
	}
	return v
}

// result computes the report row from the finished run.
func (r *run) result() *Result {
	nC, nR := r.top.NumNodes()
	res := &Result{
		Strategy: r.name, Controllers: nC, Routers: nR, Events: len(r.writes),
		Connects: r.stat.connects, FalseRejects: r.stat.falseRejects, RevokedAccepts: r.stat.revokedAccepts,
	}
	R := r.net.nR
	direct := make([]float64, R*R) // ms by class
	for a := range R {
		for b := range R {
			direct[a*R+b] = float64(r.cl.RegionDelay(a, b)) / float64(time.Millisecond)
		}
	}
	var n int64
	for c := range r.pairDelay {
		slices.Sort(r.pairDelay[c])
		n += int64(len(r.pairDelay[c]))
	}
	ident := func(int) (float64, float64) { return 0, 1 }
	all := delaysOf(r.pairDelay, direct, R)
	res.SyncDelayMs, res.ExcessMs, res.StretchCrossRegion = all.SyncDelayMs, all.ExcessMs, all.StretchCrossRegion
	res.UnauthorizedAccepts, res.DeniedConnects = r.stat.unauthorizedAccepts, r.stat.deniedConnects
	for k, classes := range r.kindDelay {
		if classes == nil {
			continue
		}
		for c := range classes {
			slices.Sort(classes[c])
		}
		if res.ByKind == nil {
			res.ByKind = make(map[string]KindDelays)
		}
		res.ByKind[WriteKind(k).String()] = delaysOf(classes, direct, R)
	}
	// Direct latency: each class is a run of equal values.
	res.DirectMs = directQuantiles(r.pairDelay, direct)
	res.SyncCDF = mergedCDF(r.pairDelay, ident, cdfPoints)
	res.DirectCDF = directCDF(r.pairDelay, direct)

	slices.Sort(r.catchUp)
	q := mergedQuantiles([][]int32{r.catchUp}, ident, []float64{0.5, 0.99, 1})
	res.CatchUpMs = Quantiles3{q[0], q[1], q[2]}
	slices.Sort(r.issueLat)
	q = mergedQuantiles([][]int32{r.issueLat}, ident, []float64{0.5, 0.99})
	res.IssueLatencyMs = Quantiles2{q[0], q[1]}

	res.WritesUnavailable = r.noCtrl
	for i := range r.writes {
		ws := &r.writes[i]
		if ws.acked < 0 || ws.acked-ws.w.Requested > unavailableAfter {
			res.WritesUnavailable++
		}
		if !ws.abandoned {
			res.Undelivered += int64(nR) - int64(ws.nRouters)
		}
	}
	if ev, nodes := float64(len(r.writes)), float64(len(r.nodes)); ev > 0 {
		var bytes, msgs, crossBytes int64
		for i := range r.nodes {
			bytes += r.bytesRecv[i]
			msgs += r.msgsRecv[i]
		}
		for c, b := range r.regionBytes {
			if c/R != c%R {
				crossBytes += b
			}
		}
		res.BytesPerEventPerNode = round(float64(bytes) / ev / nodes)
		res.MessagesPerEventPerNode = round(float64(msgs) / ev / nodes)
		res.CrossRegionBytesPerEvent = round(float64(crossBytes) / ev)
	}
	r.moreResults(res)
	res.Converged = r.digestsAgree()
	res.ConvergenceAfterLastFaultMs = r.convergenceAfterLastFault()
	res.Stats = Stats{
		Deliveries: r.deliveries, Dropped: r.dropped, Events: r.events, Pairs: n,
		CatchUpPairs: int64(len(r.catchUp)), SimTime: r.now, NoController: r.noCtrl,
		Refused: r.stat.refused, Abandoned: r.abandoned,
	}
	res.DroppedMessages = r.dropped
	for id, n := range r.refusedBy {
		if n > 0 {
			if res.Stats.RefusedBy == nil {
				res.Stats.RefusedBy = make(map[string]int)
			}
			res.Stats.RefusedBy[r.cl.Nodes[id].Name] = int(n)
		}
	}
	return res
}

// convergenceAfterLastFault returns the time from the end of the last fault
// until every write requested before it was applied at every node, in ms;
// 0 without faults, -1 if that never happened.
func (r *run) convergenceAfterLastFault() float64 {
	t := r.top.LastFaultEnd()
	if t == 0 {
		return 0
	}
	var worst time.Duration
	for i := range r.writes {
		ws := &r.writes[i]
		if ws.w.Requested >= t {
			break // writes are in request order
		}
		if ws.abandoned {
			continue
		}
		if int(ws.nApplied) < len(r.nodes) {
			return -1
		}
		worst = max(worst, ws.lastApply-t)
	}
	return round(float64(worst) / float64(time.Millisecond))
}

// cdfPoints is how many ranks a CDF is sampled at.
const cdfPoints = 400

// The sample is kept as per-class sorted µs values (class: region pair) so
// that excess (v - direct) and stretch (v / direct) are monotone maps of
// each class; a quantile of the union is found by bisection over float64
// values, counting with a binary search in each class. No copy of the
// sample is made, which matters at 30 million pairs.

// classMap maps class c's µs value v to (v/1000 + shift) * scale in ms;
// scale must be positive so that each class stays sorted.
type classMap func(c int) (shift, scale float64)

func mapped(classes [][]int32, xf classMap, c, i int) float64 {
	shift, scale := xf(c)
	return (float64(classes[c][i])/1000 + shift) * scale
}

// orderedBits maps float64s to uint64s of the same order.
func orderedBits(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

func fromOrderedBits(u uint64) float64 {
	if u>>63 == 1 {
		return math.Float64frombits(u &^ (1 << 63))
	}
	return math.Float64frombits(^u)
}

// countAtMost returns how many mapped values are at most v.
func countAtMost(classes [][]int32, xf classMap, v float64) int {
	n := 0
	for c, s := range classes {
		n += sort.Search(len(s), func(i int) bool { return mapped(classes, xf, c, i) > v })
	}
	return n
}

// kth returns the k-th smallest (1-based) mapped value; there must be at
// least k values.
func kth(classes [][]int32, xf classMap, k int) float64 {
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for c, s := range classes {
		if len(s) > 0 {
			lo = min(lo, orderedBits(mapped(classes, xf, c, 0)))
			hi = max(hi, orderedBits(mapped(classes, xf, c, len(s)-1)))
		}
	}
	// Invariant: the answer is in [lo, hi]: count(<= hi) >= k.
	for lo < hi {
		mid := lo + (hi-lo)/2
		if countAtMost(classes, xf, fromOrderedBits(mid)) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return fromOrderedBits(lo)
}

func sampleSize(classes [][]int32) int {
	n := 0
	for _, s := range classes {
		n += len(s)
	}
	return n
}

// mergedQuantiles returns the nearest-rank quantiles ps of the mapped
// samples, rounded; zeros when there are none.
func mergedQuantiles(classes [][]int32, xf classMap, ps []float64) []float64 {
	out := make([]float64, len(ps))
	n := sampleSize(classes)
	if n == 0 {
		return out
	}
	for i, p := range ps {
		out[i] = round(kth(classes, xf, rank(p, n)))
	}
	return out
}

// mergedCDF samples the mapped distribution at points evenly spaced ranks
// and at the last.
func mergedCDF(classes [][]int32, xf classMap, points int) []CDFPoint {
	n := sampleSize(classes)
	if n == 0 {
		return nil
	}
	var out []CDFPoint
	prev := 0
	for i := 0; i <= points; i++ {
		k := max(1, int(math.Ceil(float64(i)/float64(points)*float64(n))))
		if k == prev {
			continue
		}
		prev = k
		out = append(out, CDFPoint{Ms: kth(classes, xf, k), Frac: float64(k) / float64(n)})
	}
	return out
}

// directRuns returns the classes with samples as (direct ms, count) runs in
// ascending order of direct latency.
func directRuns(classes [][]int32, direct []float64) (runs []CDFPoint, n int) {
	for c, s := range classes {
		if len(s) > 0 {
			runs = append(runs, CDFPoint{Ms: direct[c], Frac: float64(len(s))})
			n += len(s)
		}
	}
	slices.SortStableFunc(runs, func(a, b CDFPoint) int { return cmpFloat(a.Ms, b.Ms) })
	return runs, n
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func directQuantiles(classes [][]int32, direct []float64) Quantiles4 {
	runs, n := directRuns(classes, direct)
	var out [4]float64
	if n == 0 {
		return Quantiles4{}
	}
	for i, p := range []float64{0.5, 0.9, 0.99, 1} {
		k, cum := rank(p, n), 0
		for _, run := range runs {
			cum += int(run.Frac)
			if cum >= k {
				out[i] = round(run.Ms)
				break
			}
		}
	}
	return Quantiles4{out[0], out[1], out[2], out[3]}
}

// directCDF is the step CDF of the direct latency: one point at each end of
// every run of equal values.
func directCDF(classes [][]int32, direct []float64) []CDFPoint {
	runs, n := directRuns(classes, direct)
	var out []CDFPoint
	cum := 0
	for _, run := range runs {
		out = append(out, CDFPoint{Ms: run.Ms, Frac: float64(cum+1) / float64(n)})
		cum += int(run.Frac)
		out = append(out, CDFPoint{Ms: run.Ms, Frac: float64(cum) / float64(n)})
	}
	return out
}

// NewReport assembles the report of results run on top with seed in mode.
func NewReport(top *Topology, seed int64, mode string, results []*Result) *Report {
	rep := &Report{Topology: top.Name, Seed: seed, Mode: mode, Results: results}
	var deliveries int64
	var wall float64
	for _, r := range results {
		deliveries += r.Stats.Deliveries
		wall += r.WallSeconds
	}
	rep.Machine.PeakMemoryMB = math.Round(peakMemoryMB()*10) / 10
	if wall > 0 {
		rep.Machine.DeliveriesPerSecond = math.Round(float64(deliveries) / wall)
	}
	return rep
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	if rep.Results == nil {
		rep.Results = []*Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes one row per strategy, readable in a terminal. The
// end-to-end delay comes first, beside its physical bound; the sync delay
// from the acknowledgement and the modelled direct path follow.
func (rep *Report) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "%s (seed %d, %s mode)\n", rep.Topology, rep.Seed, rep.Mode); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"strategy", "events", "e2e p50", "p99", "max", "light p99", "e2e/light p99",
		"sync p50", "p99", "direct p99", "excess p99", "stretch p99",
		"catch-up p99", "issue p99", "unavail", "refused", "B/ev/node", "sent", "msg/ev/node", "undeliv", "conv", "false rej", "rev acc", "wall s"}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range rep.Results {
		light, lightStretch := "n/a", "n/a"
		if r.PhysicalMs != nil {
			light = ms(r.PhysicalMs.P99)
		}
		if r.EndToEndStretchPhysical != nil {
			lightStretch = fmt.Sprintf("%.2f", r.EndToEndStretchPhysical.P99)
		}
		row := []string{
			r.Strategy, fmt.Sprint(r.Events),
			ms(r.EndToEndMs.P50), ms(r.EndToEndMs.P99), ms(r.EndToEndMs.Max), light, lightStretch,
			ms(r.SyncDelayMs.P50), ms(r.SyncDelayMs.P99), ms(r.DirectMs.P99),
			ms(r.ExcessMs.P99), fmt.Sprintf("%.2f", r.StretchCrossRegion.P99), ms(r.CatchUpMs.P99),
			ms(r.IssueLatencyMs.P99), fmt.Sprint(r.WritesUnavailable), fmt.Sprint(r.RefusedRequests),
			fmt.Sprintf("%.0f", r.BytesPerEventPerNode), fmt.Sprintf("%.0f", r.BytesSentPerEventPerNode),
			fmt.Sprintf("%.2f", r.MessagesPerEventPerNode),
			fmt.Sprint(r.Undelivered), fmt.Sprint(r.Converged), fmt.Sprint(r.FalseRejects),
			fmt.Sprint(r.RevokedAccepts), fmt.Sprintf("%.1f", r.WallSeconds),
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "times in ms over fault-free (write, router) pairs. e2e: request reaching a controller to enforceable at\n"+
		"the router; light: light in fibre from controller to router, the physical bound; sync: from the write's ack;\n"+
		"direct: the modelled direct path (excess and stretch are over it). B/ev/node received, sent: sent\n")
	return err
}

func ms(v float64) string {
	if math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// KindDelays are the fault-free delays of one kind of write.
type KindDelays struct {
	Pairs              int        `json:"pairs"`
	SyncDelayMs        Quantiles4 `json:"sync_delay_ms"`
	ExcessMs           Quantiles4 `json:"excess_ms"`
	StretchCrossRegion Quantiles2 `json:"stretch_cross_region"`
}

// delaysOf computes sync delay, excess and cross-region stretch from the
// sorted delays of each region pair class (direct: its one-way delay in
// ms; R regions).
func delaysOf(classes [][]int32, direct []float64, R int) KindDelays {
	var d KindDelays
	for _, c := range classes {
		d.Pairs += len(c)
	}
	ident := func(int) (float64, float64) { return 0, 1 }
	q := mergedQuantiles(classes, ident, []float64{0.5, 0.9, 0.99, 1})
	d.SyncDelayMs = Quantiles4{q[0], q[1], q[2], q[3]}
	q = mergedQuantiles(classes, func(c int) (float64, float64) { return -direct[c], 1 }, []float64{0.5, 0.9, 0.99, 1})
	d.ExcessMs = Quantiles4{q[0], q[1], q[2], q[3]}
	cross := make([][]int32, len(classes))
	for c := range cross {
		if c/R != c%R && direct[c] > 0 {
			cross[c] = classes[c]
		}
	}
	q = mergedQuantiles(cross, func(c int) (float64, float64) { return 0, 1 / direct[c] }, []float64{0.5, 0.99})
	d.StretchCrossRegion = Quantiles2{q[0], q[1]}
	return d
}
