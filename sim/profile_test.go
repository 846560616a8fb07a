package sim

import (
	"os"
	"testing"
)

// TestProfileTopology runs SIM_PROFILE_TOPOLOGY with SIM_PROFILE_STRATEGY, for
// go test -cpuprofile; skipped otherwise.
func TestProfileTopology(t *testing.T) {
	path := os.Getenv("SIM_PROFILE_TOPOLOGY")
	if path == "" {
		t.Skip("SIM_PROFILE_TOPOLOGY not set")
	}
	top, err := LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(top, os.Getenv("SIM_PROFILE_STRATEGY"), DefaultConfig().withSeed(top.Seed))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d deliveries in %.1fs, sync p99 %v", res.Strategy, res.Stats.Deliveries, res.WallSeconds, res.SyncDelayMs.P99)
}
