package router

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// router and issuer never depend on each other (docs/architecture.md): both build on
// gossip and crdt, and cmd wires them. Tests included: a test helper must
// not pull the other side in either.
func TestRouterDoesNotDependOnIssuer(t *testing.T) {
	deptest.Forbid(t, "router/...", true, "./issuer")
}
