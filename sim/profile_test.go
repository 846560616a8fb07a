package sim

import (
	"os"
	"strconv"
	"testing"
)

// TestProfileTopology runs SIM_PROFILE_TOPOLOGY with SIM_PROFILE_STRATEGY, for
// go test -cpuprofile; skipped otherwise. SIM_PROFILE_WORKERS sets the
// number of workers (default: one per CPU).
func TestProfileTopology(t *testing.T) {
	path := os.Getenv("SIM_PROFILE_TOPOLOGY")
	if path == "" {
		t.Skip("SIM_PROFILE_TOPOLOGY not set")
	}
	top, err := LoadTopology(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig().withSeed(top.Seed)
	if w := os.Getenv("SIM_PROFILE_WORKERS"); w != "" {
		if cfg.Workers, err = strconv.Atoi(w); err != nil || cfg.Workers < 1 {
			t.Fatalf("SIM_PROFILE_WORKERS=%q: want a positive number", w)
		}
	}
	res, err := Run(top, os.Getenv("SIM_PROFILE_STRATEGY"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d deliveries in %.1fs, sync p99 %v", res.Strategy, res.Stats.Deliveries, res.WallSeconds, res.SyncDelayMs.P99)
}
