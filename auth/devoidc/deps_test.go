package devoidc_test

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// The development OIDC issuer can never be turned on by a production
// config: no config key starts it, and nothing a production controller or
// router is built from imports it. Only devcluster (`certmesh dev`) and
// tests do.
func TestOnlyTheDevClusterImportsTheDevIssuer(t *testing.T) {
	for _, pkg := range []string{"issuer", "router", "node", "config", "auth", "gossip", "client"} {
		deptest.Forbid(t, pkg, false, "./auth/devoidc")
	}
}
