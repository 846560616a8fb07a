package sim

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// tiny: controller/a/0 (id 0), router/a/0 (1), router/b/0 (2); every client
// writes at controller/a/0, the only controller. Writes at (i+u)s, i=0,1,2.
const tiny = `
name: tiny
duration: 3s
regions:
  - {name: a, controllers: 1, routers: 1}
  - {name: b, controllers: 0, routers: 1}
latency: {intra: 1ms, links: [[a, b, 10ms]]}
workload: {rate: 1/s, mix: {issue: 1, rotate: 0, revoke: 0}}
`

// TestReportHandChecked checks every field on a run whose figures follow
// from the topology: the direct strategy delivers each write straight to
// each router, so router/a/0 applies it 1ms after the ack and router/b/0
// 10ms after.
func TestReportHandChecked(t *testing.T) {
	res, err := Run(mustTopology(t, tiny), "test-direct", DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	want := &Result{
		Strategy: "test-direct", Controllers: 1, Routers: 2, Events: 3,
		// Pairs: 1, 1, 1, 10, 10, 10 ms. Nearest rank: p50 = 3rd, p90 = p99 = 6th.
		SyncDelayMs:        Quantiles4{P50: 1, P90: 10, P99: 10, Max: 10},
		DirectMs:           Quantiles4{P50: 1, P90: 10, P99: 10, Max: 10},
		ExcessMs:           Quantiles4{},
		StretchCrossRegion: Quantiles2{P50: 1, P99: 1},
		// 300 bytes to each of 2 routers per write, over 3 nodes; one crosses a region.
		BytesPerEventPerNode:     200,
		CrossRegionBytesPerEvent: 300,
		MessagesPerEventPerNode:  0.667,
		Converged:                true,
		Connects:                 3,
		// The direct strategy acks at once: end to end is the sync delay.
		// No region has a location, so no physical bound is known.
		EndToEndMs:                  Quantiles4{P50: 1, P90: 10, P99: 10, Max: 10},
		BytesSentPerEventPerNode:    200,
		MessagesSentPerEventPerNode: 0.667,
		// Inside region a the bound is 0 (same place); a-b has no locations.
		ByRegionPair: []RegionPair{
			{From: "a", To: "a", Pairs: 3, EndToEndMs: Quantiles4{1, 1, 1, 1}, SyncDelayMs: Quantiles4{1, 1, 1, 1},
				PhysicalMs: new(float64), DirectMs: 1, BytesPerEvent: 300},
			{From: "a", To: "b", Pairs: 3, EndToEndMs: Quantiles4{10, 10, 10, 10}, SyncDelayMs: Quantiles4{10, 10, 10, 10},
				DirectMs: 10, BytesPerEvent: 300},
		},
	}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(Result{}, "WallSeconds", "Stats", "SyncCDF", "DirectCDF", "EndToEndCDF", "PhysicalCDF")); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if res.Stats.Pairs != 6 || res.Stats.Deliveries != 6 {
		t.Errorf("stats %+v", res.Stats)
	}
	if got := res.SyncCDF; len(got) != 6 || got[2] != (CDFPoint{1, 0.5}) || got[5] != (CDFPoint{10, 1}) {
		t.Errorf("sync CDF %v", got)
	}
}

func TestReportFalseRejects(t *testing.T) {
	res, err := Run(mustTopology(t, tiny), "test-reject-all", DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	// The script strategy never applies writes at routers and refuses every connect.
	if res.Connects != 3 || res.FalseRejects != 3 || res.Undelivered != 6 || res.RevokedAccepts != 0 {
		t.Errorf("connects %d, false rejects %d, undelivered %d, revoked accepts %d; want 3, 3, 6, 0",
			res.Connects, res.FalseRejects, res.Undelivered, res.RevokedAccepts)
	}
}

// TestReportCatchUp checks that a pair cut by a partition counts in
// catch_up_ms from the end of the partition, and the others stay fault-free.
func TestReportCatchUp(t *testing.T) {
	top := mustTopology(t, tiny+"faults: [{at: 1s, partition: [[a], [b]], for: 1s}]\n")
	r, err := newRun(top, "test-direct-reliable", func(*Cluster) (Strategy, error) {
		return &directStrategy{size: 300, reliable: true}, nil
	}, DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	r.runUntil(r.end)
	res := r.result()
	// Write 1 is requested in [1s, 2s): its stream to router/b/0 gets through at the
	// first retransmission (200ms, doubling) after 2s, 10ms later.
	w1 := r.writes[1].w.Requested
	catchUp := streamRetry(w1, 2*time.Second) + 10*time.Millisecond - 2*time.Second
	if res.Stats.CatchUpPairs != 1 || res.CatchUpMs.Max != round(float64(catchUp)/1e6) {
		t.Errorf("catch-up pairs %d, max %vms; want 1 and %v (write at %v)", res.Stats.CatchUpPairs, res.CatchUpMs.Max, catchUp, w1)
	}
	if res.Stats.Pairs != 5 || res.SyncDelayMs.Max != 10 || res.Undelivered != 0 || !res.Converged {
		t.Errorf("fault-free pairs %d, sync max %v, undelivered %d, converged %v", res.Stats.Pairs, res.SyncDelayMs.Max, res.Undelivered, res.Converged)
	}
	// Every write before the end of the partition (2s) is everywhere once write 1 arrives.
	if res.ConvergenceAfterLastFaultMs != round(float64(catchUp)/1e6) {
		t.Errorf("convergence after last fault %vms, want %v", res.ConvergenceAfterLastFaultMs, catchUp)
	}
	// A client in b during the partition has no controller: its request is unavailable.
	if res.WritesUnavailable != r.noCtrl {
		t.Errorf("writes unavailable %d, no controller %d", res.WritesUnavailable, r.noCtrl)
	}
}

// TestDeterminism runs the same topology twice per strategy and compares the
// JSON byte for byte, without wall_seconds and machine; another seed differs.
func TestDeterminism(t *testing.T) {
	top := mustTopology(t, `
name: determinism
duration: 8s
regions:
  - {name: us-east, controllers: 1, routers: 20, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 2, routers: 20, location: {lat: 53.3, lon: -6.3}}
  - {name: ap-southeast, controllers: 0, routers: 10, location: {lat: 1.35, lon: 103.8}}
jitter: 10%
loss: 2%
workload: {rate: 40/s}
faults:
  - {at: 2s, partition: [[us-east], [eu-west, ap-southeast]], for: 2s}
  - {at: 3s, crash: router/eu-west/3, for: 3s}
  - {at: 5s, crash: controller/eu-west/1, for: 1s}
`)
	report := func(seed int64) []byte {
		var results []*Result
		for _, s := range []string{"gossip", "raft", "test-direct"} {
			res, err := Run(top, s, DefaultConfig().withSeed(seed))
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, res)
		}
		return reportJSON(t, top, seed, results...)
	}
	a, b := report(5), report(5)
	if !bytes.Equal(a, b) {
		t.Fatalf("same seed, different reports:\n%s", cmp.Diff(string(a), string(b)))
	}
	if bytes.Equal(a, report(6)) {
		t.Error("seeds 5 and 6 gave the same report")
	}
}

// TestReportJSONKeys checks the report's keys: the first ones
// and the ones added beside them (end to end, physical bound, refusals,
// sender bytes); physical_ms and its stretch are absent here, where no
// region has a location.
func TestReportJSONKeys(t *testing.T) {
	res, err := Run(mustTopology(t, tiny), "test-direct", DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := NewReport(mustTopology(t, tiny), 1, "model", []*Result{res}).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m any) string {
		var ks []string
		for k, v := range m.(map[string]any) {
			if sub, ok := v.(map[string]any); ok {
				var subs []string
				for sk := range sub {
					subs = append(subs, sk)
				}
				k += "{" + strings.Join(sortStrings(subs), ",") + "}"
			}
			ks = append(ks, k)
		}
		return strings.Join(sortStrings(ks), " ")
	}
	if want := "machine{deliveries_per_second,peak_memory_mb,workers} mode results seed topology"; keys(got) != want {
		t.Errorf("top-level keys\n got %s\nwant %s", keys(got), want)
	}
	want := "abandoned_writes by_region_pair bytes_per_event_per_node bytes_sent_per_event_per_node catch_up_ms{max,p50,p99} " +
		"connects controllers converged convergence_after_last_fault_ms cross_region_bytes_per_event denied_connects " +
		"direct_ms{max,p50,p90,p99} dropped_messages{down,loss,oversize,partition,queue} end_to_end_ms{max,p50,p90,p99} " +
		"events excess_ms{max,p50,p90,p99} false_rejects " +
		"issue_latency_ms{p50,p99} messages_per_event_per_node messages_sent_per_event_per_node " +
		"pairs_applied_before_ack pairs_below_physical refused_requests requests_no_controller revoked_accepts " +
		"revoked_connects routers strategy stretch_cross_region{p50,p99} sync_delay_ms{max,p50,p90,p99} " +
		"unauthorized_accepts undelivered wall_seconds writes_unavailable"
	if got := keys(got["results"].([]any)[0]); got != want {
		t.Errorf("result keys\n got %s\nwant %s", got, want)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestQuantilesNearestRank(t *testing.T) {
	classes := [][]int32{{1000, 2000, 3000}, nil, {4000, 5000}}
	ident := func(int) (float64, float64) { return 0, 1 }
	got := mergedQuantiles(classes, ident, []float64{0.2, 0.5, 0.9, 1})
	if want := []float64{1, 3, 5, 5}; !cmp.Equal(got, want) {
		t.Errorf("quantiles %v, want %v", got, want)
	}
	// Excess shifts each class by its direct latency; stretch scales it.
	got = mergedQuantiles(classes, func(c int) (float64, float64) { return -float64(c), 1 }, []float64{0.5, 1})
	if want := []float64{2, 3}; !cmp.Equal(got, want) { // {1,2,3} and {2,3}
		t.Errorf("shifted quantiles %v, want %v", got, want)
	}
	if got := mergedQuantiles(nil, ident, []float64{0.5}); got[0] != 0 {
		t.Errorf("empty: %v", got)
	}
}
