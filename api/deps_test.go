package api_test

import (
	"strings"
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// api is a leaf (its package doc): the standard library only, so that the
// SDK and every other package may import it without a cycle and without
// pulling in the controller's dependencies.
func TestAPIImportsOnlyTheStandardLibrary(t *testing.T) {
	for _, d := range deptest.Deps(t, "api", false) {
		first, _, _ := strings.Cut(d, "/")
		if strings.Contains(first, ".") && d != deptest.Module+"/api" {
			t.Errorf("api depends on %s", d)
		}
	}
}
