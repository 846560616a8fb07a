// Package version says which build of certmesh is running: the module
// version and the commit it was built from, as the Go toolchain stamped
// them into the binary (runtime/debug.ReadBuildInfo). Both binaries print
// it for --version, and meshsim records the commit in its reports.
package version

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// Commit returns the certmesh commit this binary was built from: the Go
// toolchain's VCS stamp when there is one (go build), else what git says
// of the source directory this file was compiled from (go run and go test
// stamp nothing), with "-dirty" for uncommitted changes; "unknown" when
// neither knows.
func Commit() string {
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

// String is what --version prints after the binary's name: the module
// version ("devel" for a build from a checkout), the commit and the Go
// release, e.g. "devel (commit 3e20ad7c1f2b, go1.26.0)".
func String() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	c, dirty := strings.CutSuffix(Commit(), "-dirty")
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "-dirty"
	}
	return v + " (commit " + c + ", " + runtime.Version() + ")"
}
