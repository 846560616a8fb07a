package main

import (
	"slices"
	"strings"

	"github.com/certmesh/certmesh/internal/version"
)

// commit returns the certmesh commit meshsim was built from
// (version.Commit).
func commit() string { return version.Commit() }

// resultArgs returns the arguments that shape the result: all but
// --workers, --quiet and the output files, which change how a run is made
// or where it is written, never what it finds.
func resultArgs(args []string) []string {
	drop := []string{"workers", "quiet", "json", "plot", "plot-cdf", "export", "export-pairs"}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if strings.HasPrefix(a, "-") && slices.Contains(drop, name) {
			if !hasValue && name != "quiet" && i+1 < len(args) {
				i++ // the flag's value
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
