package live

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/certmesh/certmesh/sim"
)

// liveTopology is n regions of one controller and routers routers each,
// one-way links of 30, 60 and 80 ms as in live-60.yaml, 10% jitter and
// 1% loss, with workload rate events/s for dur.
func liveTopology(t testing.TB, routers int, rate float64, dur time.Duration, faults string) *sim.Topology {
	t.Helper()
	src := fmt.Sprintf(`
name: live-small
seed: 7
duration: %v
regions:
  - {name: a, controllers: 1, routers: %d}
  - {name: b, controllers: 1, routers: %d}
  - {name: c, controllers: 1, routers: %d}
latency:
  intra: 1ms
  links:
    - [a, b, 30ms]
    - [b, c, 60ms]
    - [a, c, 80ms]
jitter: 10%%
loss: 1%%
workload: {rate: %v/s, mix: {issue: 70, rotate: 20, revoke: 10}, connect_delay: 0s}
%s`, dur, routers, routers, routers, rate, faults)
	top, err := sim.ParseTopology("live-small.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// verifyNoLeaks returns a check, to defer, that the test left no goroutine
// behind besides those running now. A memberlist probe outlives Shutdown
// by up to a probe interval (it waits for its ack timeout, about 1s here),
// so the check polls for up to 5s.
func verifyNoLeaks(t *testing.T) func() {
	ignore := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); goleak.Find(ignore) != nil && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		goleak.VerifyNone(t, ignore)
	}
}

// testWriter writes to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// live runs top in live mode and logs how it went.
func live(t *testing.T, top *sim.Topology, seed int64) (*sim.Result, liveStats) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.MaxDrain = 30 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	res, st, err := run(top, cfg)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	t.Logf("live (seed %d): sync p50 %.1f p90 %.1f p99 %.1f max %.1f ms, pairs %d, catch-up pairs %d, events %d, connects %d, wall %.1fs, deliveries %d, dropped %+v",
		seed, res.SyncDelayMs.P50, res.SyncDelayMs.P90, res.SyncDelayMs.P99, res.SyncDelayMs.Max, res.Stats.Pairs,
		res.Stats.CatchUpPairs, res.Events, res.Connects, res.WallSeconds, res.Stats.Deliveries, res.Stats.Dropped)
	return res, st
}

// checkDelivered checks the outcome every run must have, faults or not:
// every write reaches every router and every node ends with the same
// state, and (when the machine kept the latency model) no client is
// wrongly refused or admitted and every write is acknowledged in time.
// Those last outcomes hang on timing (a pull answered within the router's
// 2s, a revocation enforced within 1s, a write acknowledged within 5s): a
// machine too busy for a real-time run stalls every timer, so their
// failures are only logged then.
func checkDelivered(t *testing.T, res *sim.Result, st liveStats, seed int64) {
	t.Helper()
	if res.Events == 0 || res.Connects == 0 {
		t.Errorf("seed %d: %d events, %d connects: the workload did not run", seed, res.Events, res.Connects)
	}
	if res.Undelivered != 0 || !res.Converged {
		t.Errorf("seed %d: undelivered %d, converged %v; want 0, true", seed, res.Undelivered, res.Converged)
	}
	timing := t.Errorf
	if !st.keptUp() {
		timing = func(format string, args ...any) {
			t.Logf(format+fmt.Sprintf(" (not a failure: the machine delivered packets %v late at p99, max %v)",
				st.lateP99, st.lateMax), args...)
		}
	}
	if res.FalseRejects != 0 || res.RevokedAccepts != 0 {
		timing("seed %d: false rejects %d, revoked accepts %d; want 0, 0", seed, res.FalseRejects, res.RevokedAccepts)
	}
	if res.WritesUnavailable != 0 {
		timing("seed %d: %d writes unavailable", seed, res.WritesUnavailable)
	}
}

// TestLiveConverges: real memberlist meshes over the simulated network, 3
// regions of 1 controller and 3 routers, 5 s of workload: every write
// reaches every router, every node ends with the same state, no client is
// refused, and nothing is left running.
func TestLiveConverges(t *testing.T) {
	defer verifyNoLeaks(t)()
	const seed = 7
	res, st := live(t, liveTopology(t, 3, 20, 5*time.Second, ""), seed)
	checkDelivered(t, res, st, seed)
	if res.SyncDelayMs.P50 <= 0 || res.DirectMs.Max != 80 {
		t.Errorf("seed %d: sync p50 %v ms, direct max %v ms; want > 0 and 80", seed, res.SyncDelayMs.P50, res.DirectMs.Max)
	}
	if res.BytesPerEventPerNode <= 0 || res.MessagesPerEventPerNode <= 0 {
		t.Errorf("seed %d: %v bytes and %v messages per event per node; want the meshes' counts", seed,
			res.BytesPerEventPerNode, res.MessagesPerEventPerNode)
	}
}

// agree reports whether live is within the tolerance of model:
// 25% or 5 ms, whichever is larger.
func agree(model, live float64) bool {
	return math.Abs(live-model) <= max(0.25*model, 5)
}

// TestLiveAgreesWithModel: on a small copy of live-60.yaml (3 regions of 1
// controller and 5 routers, links of 30, 60 and 80 ms, 1% loss), live and
// model mode agree on the p50 and p99 sync delay within 25% or 5 ms,
// whichever is larger (issue 4). The full live-60 comparison is
// TestLive60AgreesWithModel.
func TestLiveAgreesWithModel(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("about 20 s of wall time; the race detector slows real memberlist meshes beyond the model's timing")
	}
	defer verifyNoLeaks(t)()
	const seed = 3
	top := liveTopology(t, 5, 20, 15*time.Second, "")
	compareModes(t, top, seed)
}

// compareModes runs top in model and in live mode, checks the live run's
// outcome (checkDelivered) and the agreement between the two. A
// disagreement on a machine too busy to keep the latency model skips the
// test instead of failing it.
func compareModes(t *testing.T, top *sim.Topology, seed int64) {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.Seed = seed
	model, err := sim.Run(top, "mesh", cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, st := live(t, top, seed)
	checkDelivered(t, res, st, seed)
	t.Logf("seed %d: sync p50 model %.1f live %.1f ms, p99 model %.1f live %.1f ms", seed,
		model.SyncDelayMs.P50, res.SyncDelayMs.P50, model.SyncDelayMs.P99, res.SyncDelayMs.P99)
	var bad []string
	if !agree(model.SyncDelayMs.P50, res.SyncDelayMs.P50) {
		bad = append(bad, fmt.Sprintf("sync p50: model %.1f ms, live %.1f ms", model.SyncDelayMs.P50, res.SyncDelayMs.P50))
	}
	if !agree(model.SyncDelayMs.P99, res.SyncDelayMs.P99) {
		bad = append(bad, fmt.Sprintf("sync p99: model %.1f ms, live %.1f ms", model.SyncDelayMs.P99, res.SyncDelayMs.P99))
	}
	switch {
	case len(bad) == 0:
	case !st.keptUp():
		t.Skipf("seed %d: %s: more than 25%% or 5 ms apart, on a machine that delivered packets %v late at p99 (max %v): too busy to compare timings",
			seed, strings.Join(bad, "; "), st.lateP99, st.lateMax)
	default:
		t.Errorf("seed %d: %s: more than 25%% or 5 ms apart", seed, strings.Join(bad, "; "))
	}
}

// TestLiveFaults: a partition that cuts region a off, then a crash of
// controller b and of a router of a, each for 3 s, over real memberlist
// meshes: writes stay available (clients of b fail over), every write
// still reaches every router, the crashed nodes catch up after their
// restart on their stores, and no client is wrongly refused or admitted.
func TestLiveFaults(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("about 20 s of wall time, more under the race detector")
	}
	defer verifyNoLeaks(t)()
	const seed = 11
	top := liveTopology(t, 3, 20, 10*time.Second, `
faults:
  - {at: 2s, partition: [[a], [b, c]], for: 3s}
  - {at: 6s, crash: controller/b/0, for: 3s}
  - {at: 6s, crash: router/a/1, for: 3s}
`)
	res, st := live(t, top, seed)
	checkDelivered(t, res, st, seed)
	if res.Stats.CatchUpPairs == 0 || res.Stats.Dropped.Partition == 0 || res.Stats.Dropped.Down == 0 {
		t.Errorf("seed %d: %d catch-up pairs, dropped %+v: the faults did not bite", seed, res.Stats.CatchUpPairs, res.Stats.Dropped)
	}
	if res.ConvergenceAfterLastFaultMs < 0 {
		t.Errorf("seed %d: convergence after the last fault %v ms: a write never reached every node", seed, res.ConvergenceAfterLastFaultMs)
	}
}

// TestLive60AgreesWithModel is issue 4's check on
// examples/topologies/live-60.yaml (3 regions of 1 controller and 19
// routers, one-way links of 30, 60 and 80 ms, 1% loss, 20 events/s for
// 30 s): live and model mode agree on the p50 and p99 sync delay within
// 25% or 5 ms, whichever is larger. The same comparison from the command
// line:
//
//	go run ./cmd/meshsim --topology examples/topologies/live-60.yaml --strategy mesh
//	go run ./cmd/meshsim --topology examples/topologies/live-60.yaml --mode live
//
// Measured on the 2-core machine (seed 1): model p50 32.7 ms, p99 87.4 ms;
// live p50 34.4 ms, p99 89.0 to 89.7 ms, in about 34 s of wall time.
func TestLive60AgreesWithModel(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("about 40 s of wall time; the race detector slows 60 real memberlist meshes beyond the model's timing")
	}
	defer verifyNoLeaks(t)()
	top, err := sim.LoadTopology("../../examples/topologies/live-60.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seed := top.Seed
	compareModes(t, top, seed)
}
