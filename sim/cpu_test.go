package sim

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// A job goes to the core that frees first, and completes no sooner than
// the job ahead of it: the loop steps messages in arrival order.
func TestCPUQueueServesOnTheFirstFreeCoreAndCompletesInOrder(t *testing.T) {
	q := newCPUQueue(CPUParams{Cores: 2, VerifyRecord: time.Microsecond})
	ms := time.Millisecond
	for _, step := range []struct {
		now, cost, want time.Duration
	}{
		{0, 10 * ms, 10 * ms},     // core 0 busy until 10
		{0, 2 * ms, 10 * ms},      // core 1 done at 2, but waits for the job ahead
		{1 * ms, 1 * ms, 10 * ms}, // core 1 (free at 2) done at 3: still behind
		{20 * ms, 0, 20 * ms},     // idle: at once
		{20 * ms, 5 * ms, 25 * ms},
		{20 * ms, 5 * ms, 25 * ms}, // the other core
		{21 * ms, 5 * ms, 30 * ms}, // both busy until 25
	} {
		if got := q.admit(step.now, step.cost); got != step.want {
			t.Fatalf("admit(%v, %v) = %v, want %v", step.now, step.cost, got, step.want)
		}
	}
	if q.busy != 28*ms {
		t.Errorf("busy %v, want 28ms", q.busy)
	}
	if newCPUQueue(defaultCPU()) != nil {
		t.Error("the default costs nothing, yet makes a queue")
	}
}

// cpuRun runs the mesh over a small storm with the given settings.
func cpuRun(t *testing.T, settings ...string) *Result {
	t.Helper()
	top := mustTopology(t, `
name: cpu-storm
duration: 3s
regions:
  - {name: us-east, controllers: 1, routers: 6, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 1, routers: 6, location: {lat: 53.3, lon: -6.3}}
latency: {intra: 1ms}
jitter: 10%
workload: {rate: 400/s, mix: {issue: 90, rotate: 0, revoke: 10}}
`)
	p, tt := DefaultParams(), *top
	for i := 0; i+1 < len(settings); i += 2 {
		if err := ApplySetting(&p, &tt, settings[i], settings[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultConfig().withSeed(1)
	cfg.Params = p
	res, err := Run(&tt, "mesh", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// ignoreWall leaves out what depends on the machine, not the model.
var ignoreWall = cmpopts.IgnoreFields(Result{}, "WallSeconds")

// Costs of zero leave the run as it was, to the last counter; costs make
// queueing show in the sync delay, more of it on fewer cores; and a run
// with costs is as deterministic as one without.
func TestCPUCostsShowAsQueueingInTheSyncDelay(t *testing.T) {
	off := cpuRun(t)
	zero := cpuRun(t, "mesh.cores", "1", "mesh.cpu_verify_record", "0s", "mesh.cpu_sign_record", "0s")
	if d := cmp.Diff(off, zero, ignoreWall); d != "" {
		t.Errorf("zero costs changed the run (-off +zero):\n%s", d)
	}
	if _, ok := off.StrategyCounters["cpu_busy_us"]; ok {
		t.Error("the model is off, yet counts CPU time")
	}

	// 400 writes/s of 1.9 records: ~760 records/s, at 1ms each 0.76 s of
	// CPU per second at every node: three quarters of one core.
	costs := []string{"mesh.cpu_verify_record", "1ms", "mesh.cpu_sign_record", "100us", "mesh.cpu_verify_proof", "1ms"}
	two := cpuRun(t, append([]string{"mesh.cores", "2"}, costs...)...)
	one := cpuRun(t, append([]string{"mesh.cores", "1"}, costs...)...)
	if !(off.SyncDelayMs.P50 < two.SyncDelayMs.P50 && two.SyncDelayMs.P99 < one.SyncDelayMs.P99) {
		t.Errorf("sync delay p50/p99: off %v/%v, 2 cores %v/%v, 1 core %v/%v: want it to grow as CPU gets scarce",
			off.SyncDelayMs.P50, off.SyncDelayMs.P99, two.SyncDelayMs.P50, two.SyncDelayMs.P99, one.SyncDelayMs.P50, one.SyncDelayMs.P99)
	}
	if one.IssueLatencyMs.P50 <= off.IssueLatencyMs.P50 {
		t.Errorf("issue latency p50 with signing %v, without %v: want the signatures to show", one.IssueLatencyMs.P50, off.IssueLatencyMs.P50)
	}
	for _, r := range []*Result{two, one} {
		if r.StrategyCounters["cpu_busy_us"] <= 0 || r.StrategyCounters["cpu_waits"] <= 0 {
			t.Errorf("counters %v: want CPU time served and jobs that waited", r.StrategyCounters)
		}
		if r.Undelivered != 0 || !r.Converged {
			t.Errorf("undelivered %d, converged %v: queueing delays, it loses nothing", r.Undelivered, r.Converged)
		}
	}
	// Two cores keep up; one, loaded past what it serves, lets revoked
	// certificates in while the revocations wait in its queue.
	if two.RevokedAccepts != 0 {
		t.Errorf("2 cores: %d revoked accepts", two.RevokedAccepts)
	}
	t.Logf("sync p50/p99 ms: off %v/%v, 2 cores %v/%v, 1 core %v/%v (revoked accepts %d)",
		off.SyncDelayMs.P50, off.SyncDelayMs.P99, two.SyncDelayMs.P50, two.SyncDelayMs.P99,
		one.SyncDelayMs.P50, one.SyncDelayMs.P99, one.RevokedAccepts)
	if d := cmp.Diff(one, cpuRun(t, append([]string{"mesh.cores", "1"}, costs...)...), ignoreWall); d != "" {
		t.Errorf("the same seed gave another run (-first +second):\n%s", d)
	}
}
