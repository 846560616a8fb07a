package mesh

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// The adapter runs the protocol core over memberlist and serves the issuer
// and the router; it knows neither of them, nor the simulator that runs it
// in live mode, and leaves persistence to the issuer. Tests included.

func TestMeshDoesNotDependOnItsUsers(t *testing.T) {
	deptest.Forbid(t, "gossip/mesh", true,
		"go.etcd.io/bbolt",
		"./router", "./issuer", "./sim", "./node", "./devcluster", "./reliability", "./cmd")
}
