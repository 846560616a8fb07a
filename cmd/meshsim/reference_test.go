package main

import (
	"flag"
	"path/filepath"
	"testing"

	"github.com/certmesh/certmesh/internal/refdoc"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/reference from the code")

// TestReferenceFlags checks meshsim's flags in docs/reference/meshsim.md.
func TestReferenceFlags(t *testing.T) {
	app := newApp(nil, nil, nil)
	file := filepath.Join("..", "..", "docs", "reference", "meshsim.md")
	refdoc.Check(t, file, "meshsim-flags", refdoc.FlagsTable(app, ""), *update, "go test ./cmd/meshsim -run Reference -update")
}
