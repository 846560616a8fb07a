package sim

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestResultDoesNotDependOnWorkers runs the mesh strategy, whose nodes the
// run steps in parallel, with one to three shards: the reports must be
// identical, through loss, a partition and crashes. Without jitter many
// events fall on the same instant, so their order must not depend on the
// shards either.
func TestResultDoesNotDependOnWorkers(t *testing.T) {
	top := mustTopology(t, `
name: workers
duration: 6s
regions:
  - {name: us-east, controllers: 1, routers: 20, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 2, routers: 20, location: {lat: 53.3, lon: -6.3}}
  - {name: ap-southeast, controllers: 0, routers: 10, location: {lat: 1.35, lon: 103.8}}
latency: {intra: 2ms}
loss: 2%
workload: {rate: 40/s, mix: {issue: 60, rotate: 20, revoke: 20}}
faults:
  - {at: 1s, partition: [[us-east], [eu-west, ap-southeast]], for: 2s}
  - {at: 2s, crash: router/eu-west/3, for: 2s}
  - {at: 3s, crash: controller/eu-west/1, for: 1s}
`)
	report := func(workers int) ([]byte, *Result) {
		cfg := DefaultConfig().withSeed(3)
		cfg.Workers = workers
		res, err := Run(top, "mesh", cfg)
		if err != nil {
			t.Fatal(err)
		}
		return reportJSON(t, top, 3, res), res
	}
	one, res := report(1)
	if res.Events == 0 || res.Connects == 0 || res.Stats.Deliveries == 0 {
		t.Fatalf("no traffic: %+v", res)
	}
	for _, workers := range []int{2, 3} {
		got, gotRes := report(workers)
		if !bytes.Equal(one, got) {
			t.Errorf("%d workers: the report differs from one worker's:\n%s", workers, cmp.Diff(string(one), string(got)))
		}
		if diff := cmp.Diff(res.Stats, gotRes.Stats); diff != "" {
			t.Errorf("%d workers: stats differ (-1 +%d):\n%s", workers, workers, diff)
		}
	}
}
