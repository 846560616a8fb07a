package live

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// Live mode drives the model's workload (sim.RawRun) with the product's
// memberlist adapter (gossip/mesh) and the router's admission; like the
// model it runs neither the issuer itself nor what wires a node. Tests
// included.
func TestLiveDoesNotDependOnTheIssuerOrTheWiring(t *testing.T) {
	deptest.Forbid(t, "sim/live", true,
		"go.etcd.io/bbolt",
		"./node", "./devcluster", "./cmd")
	for _, d := range deptest.Deps(t, "sim/live", true) {
		if d == deptest.Module+"/issuer" { // issuer/clockgate is allowed
			t.Errorf("sim/live depends on %s", d)
		}
	}
}
