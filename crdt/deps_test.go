package crdt

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// crdt is the replicated state, pure (docs/architecture.md): no networking, no
// clock, no randomness; time and identities come in as arguments.

func TestCrdtImportsNoNetworking(t *testing.T) {
	deptest.Forbid(t, "crdt", false,
		"net",                             // and net/http, net/netip, ...
		"crypto/tls",                      // transport
		"github.com/hashicorp/memberlist", // the mesh is gossip's business
		"go.etcd.io/bbolt",                // persistence is the issuer's
		"os/exec",
		"./gossip", "./router", "./issuer", "./sim", "./cmd", "./pki", "./trust")
}

func TestCrdtReadsNoClockAndDrawsNoRandomness(t *testing.T) {
	deptest.CheckPure(t, "crdt", nil)
}
