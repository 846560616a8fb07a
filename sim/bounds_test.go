package sim

import (
	"math"
	"strings"
	"testing"
)

// located: two regions 5,439 km apart (us-east, eu-west), so light in
// fibre takes 26.6ms one way and the model's derived link 38.3ms; a
// partition and a crash make the baselines retry.
const located = `
name: located
duration: 6s
regions:
  - {name: us-east, controllers: 1, routers: 4, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 2, routers: 4, location: {lat: 53.3, lon: -6.3}}
latency: {intra: 1ms}
jitter: 10%
loss: 2%
workload: {rate: 20/s}
faults:
  - {at: 2s, partition: [[us-east], [eu-west]], for: 1s}
  - {at: 4s, crash: controller/eu-west/0, for: 1s}
`

func TestPhysicalDelayIsLightInFibre(t *testing.T) {
	top := mustTopology(t, located)
	d, ok := top.PhysicalDelay(0, 1)
	km := greatCircleKm(*top.Regions[0].Location, *top.Regions[1].Location)
	if !ok || math.Abs(msOf(d)-km/204.19) > 0.01 || math.Abs(msOf(d)-26.64) > 0.01 {
		t.Errorf("us-east to eu-west (%.0f km): %v, %v; want %.2fms", km, d, ok, km/204.19)
	}
	if d, ok := top.PhysicalDelay(1, 1); !ok || d != 0 {
		t.Errorf("inside a region: %v, %v; want 0", d, ok)
	}
	if model := top.RegionDelay(0, 1); model <= d {
		t.Errorf("modelled %v not above light %v", model, d)
	}
	noLoc := mustTopology(t, tiny)
	if _, ok := noLoc.PhysicalDelay(0, 1); ok {
		t.Error("regions without locations have a physical bound")
	}
}

// TestNoStrategyBeatsLight runs every strategy with loss, a partition and
// a crash: the end-to-end delay of every pair is at least light in fibre
// from its controller to its router, so no quantile is below the bound's,
// while the sync delay from the ack may be (raft).
func TestNoStrategyBeatsLight(t *testing.T) {
	top := mustTopology(t, located)
	for _, name := range []string{"mesh", "gossip", "raft"} {
		res, err := Run(top, name, DefaultConfig().withSeed(3))
		if err != nil {
			t.Fatal(err)
		}
		p := res.PhysicalMs
		if p == nil || res.EndToEndStretchPhysical == nil {
			t.Fatalf("%s: no physical bound on a located topology", name)
		}
		e := res.EndToEndMs
		if res.PairsBelowPhysical != 0 || e.P50 < p.P50 || e.P90 < p.P90 || e.P99 < p.P99 || e.Max < p.Max ||
			res.EndToEndStretchPhysical.P50 < 1 {
			t.Errorf("%s: end to end %+v below light %+v (%d pairs below, stretch %+v)",
				name, e, *p, res.PairsBelowPhysical, *res.EndToEndStretchPhysical)
		}
		if p.Max != 26.636 {
			t.Errorf("%s: physical max %v, want 26.636 (us-east to eu-west)", name, p.Max)
		}
		if e.P50 < res.SyncDelayMs.P50 || e.Max < res.SyncDelayMs.Max {
			t.Errorf("%s: end to end %+v shorter than sync from the ack %+v", name, e, res.SyncDelayMs)
		}
		if len(res.EndToEndCDF) == 0 || len(res.PhysicalCDF) == 0 {
			t.Errorf("%s: no CDFs to plot", name)
		}
	}
}

func TestLinksFasterThanLightAreRefused(t *testing.T) {
	_, err := ParseTopology("fast.yaml", []byte(`
regions:
  - {name: us-east, controllers: 1, routers: 1, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 1, routers: 1, location: {lat: 53.3, lon: -6.3}}
latency: {links: [[us-east, eu-west, 20ms]]}
`))
	want := "latency.links[0]: 20ms between us-east and eu-west is faster than light in fibre over their 5439 km (26.6ms one way)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one containing %q", err, want)
	}
	// Without locations a link may be anything.
	if _, err := ParseTopology("abstract.yaml", []byte("regions: [{name: a, controllers: 1}, {name: b, routers: 1}]\nlatency: {links: [[a, b, 1ms]]}\n")); err != nil {
		t.Error(err)
	}
}

// TestRaftEndToEndCountsFromTheRequest: raft acknowledges after the
// forward and the quorum round trip, so routers may apply a write before
// its ack (a negative sync delay) but never before its request.
func TestRaftEndToEndCountsFromTheRequest(t *testing.T) {
	res, err := Run(mustTopology(t, located), "raft", DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	if res.PairsAppliedBeforeAck == 0 || res.SyncDelayMs.P50 >= res.EndToEndMs.P50 {
		t.Errorf("applied before ack %d, sync p50 %v, end to end p50 %v", res.PairsAppliedBeforeAck, res.SyncDelayMs.P50, res.EndToEndMs.P50)
	}
}
