package sim

import (
	"strings"
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// The model is deterministic: a run is a function of (topology, seed,
// strategy). Outside live mode (live*.go, which runs real memberlist on
// the wall clock) no file reads the clock or draws from anything but a
// seeded source, and only the files that measure the machine, reported
// apart from the results, may look at it.
func TestModelReadsNoClockAndDrawsOnlySeededRandomness(t *testing.T) {
	deptest.CheckPureExcept(t, "sim's model", deptest.Except{
		Keep:   func(f string) bool { return !strings.HasPrefix(f, "live") },
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
