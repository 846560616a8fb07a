package main

import (
	"os"
	"strings"
	"testing"

	"github.com/certmesh/certmesh/sim"
)

// TestModelDocListsEverySetting: docs/meshsim-model.md's table of
// settings names every setting meshsim takes, and no other (a dotted
// key in a table row is a setting).
func TestModelDocListsEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../../docs/meshsim-model.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `") {
			key, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			rows[key] = true
		}
	}
	for _, s := range sim.Settings() {
		if !rows[s.Key] {
			t.Errorf("docs/meshsim-model.md lacks a row for %s", s.Key)
		}
		delete(rows, s.Key)
	}
	for key := range rows {
		// The other rows are the report's fields, which have no dot.
		if strings.Contains(key, ".") {
			t.Errorf("docs/meshsim-model.md has a row for %s, which is no setting", key)
		}
	}
}
