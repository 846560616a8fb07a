package bench

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// bench measures a cluster as its users meet it: through the client SDK and
// the HTTP API, never by reaching into a node. Tests included: its figures
// must not lean on an in-process shortcut.
func TestBenchDrivesTheClusterFromOutside(t *testing.T) {
	deptest.Forbid(t, "bench", true, "./issuer", "./router", "./gossip", "./node", "./devcluster", "./crdt", "./trust")
}
