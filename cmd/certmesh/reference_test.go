package main

import (
	"flag"
	"path/filepath"
	"testing"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/refdoc"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/reference from the code")

// TestReferenceCommands checks docs/reference/cli.md against the command
// definitions: every command and flag, with its default and meaning.
func TestReferenceCommands(t *testing.T) {
	app := newApp(nil, nil)
	file := filepath.Join("..", "..", "docs", "reference", "cli.md")
	const regen = "go test ./cmd/certmesh -run Reference -update"
	refdoc.Check(t, file, "certmesh-commands", refdoc.CommandsTable(app), *update, regen)
	refdoc.Check(t, file, "certmesh-flags", refdoc.FlagsTable(app, config.FlagCategory), *update, regen)
}
