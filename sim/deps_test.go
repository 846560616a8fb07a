package sim

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// The model is deterministic: a run is a function of (topology, seed,
// strategy). No file reads the clock or draws from anything but a seeded
// source, and only the files that measure the machine, reported apart
// from the results, may look at it. Live mode, which runs real memberlist
// on the wall clock, is package sim/live, a driver of RawRun.
func TestModelReadsNoClockAndDrawsOnlySeededRandomness(t *testing.T) {
	deptest.CheckPureExcept(t, "sim's model", deptest.Except{
		Seeded: []string{"New", "NewPCG", "Rand"},
		Files: map[string]string{
			"run.go":      "a run's wall time, reported under machine",
			"memory.go":   "peak memory, reported under machine",
			"parallel.go": "how many workers the machine has",
			"topology.go": "LoadTopology reads the topology file",
		},
		Imports: map[string]string{
			"github.com/hashicorp/memberlist": "the gossip baseline runs memberlist's broadcast queue, no I/O",
		},
	})
}

// The model runs the product's pure parts (the gossip core, the router's
// admission, the issuer's clock gate, crdt), never its adapter to
// memberlist, the issuer itself or what wires them; its live driver is
// above it. Tests included.
func TestModelDoesNotDependOnTheAdapterOrItsDrivers(t *testing.T) {
	deptest.Forbid(t, "sim", true,
		"go.etcd.io/bbolt",
		"./gossip/mesh", "./sim/live", "./node", "./devcluster", "./cmd")
	for _, d := range deptest.Deps(t, "sim", true) {
		if d == deptest.Module+"/issuer" { // issuer/clockgate is allowed
			t.Errorf("sim depends on %s", d)
		}
	}
}
