package issuer

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// issuer and router never depend on each other (docs/architecture.md): both build on
// gossip and crdt, and cmd wires them. Tests included: a test helper must
// not pull the other side in either.
func TestIssuerDoesNotDependOnRouter(t *testing.T) {
	deptest.Forbid(t, "issuer/...", true, "./router")
}
