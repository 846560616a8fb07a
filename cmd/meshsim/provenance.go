package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// commit returns the certmesh commit meshsim was built from: the Go
// toolchain's VCS stamp when there is one (go build), else what git says
// of the source directory this file was compiled from (go run), with
// "-dirty" for uncommitted changes; "unknown" when neither knows.
func commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "unknown"
	}
	dir := filepath.Dir(file)
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += "-dirty"
	}
	return rev
}

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
