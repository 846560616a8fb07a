package gossip

import (
	"math/rand/v2"
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// The protocol core is a state machine (docs/architecture.md): no
// networking, no clock, no randomness but the Rand its driver injects, no
// I/O. Its drivers, gossip/mesh and sim, are above it.

var _ Rand = (*rand.Rand)(nil) // what both drivers inject

func TestGossipCoreImportsNoNetworking(t *testing.T) {
	deptest.Forbid(t, "gossip", false,
		"github.com/hashicorp/memberlist", // gossip/mesh's
		"go.etcd.io/bbolt",                // persistence is the issuer's
		"net/http", "os/exec",
		"./gossip/mesh", "./router", "./issuer", "./sim", "./node", "./devcluster", "./cmd")
}

func TestGossipCoreReadsNoClockAndDrawsNoRandomness(t *testing.T) {
	deptest.CheckPure(t, "gossip", nil)
}
