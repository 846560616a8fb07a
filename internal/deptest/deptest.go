// Package deptest checks the dependency rules of certmesh's packages from
// their tests, in the style of tailscale's tstest/deptest: each package
// states its own rules in its own deps_test.go, with the helpers here.
//
// Two kinds of rule: what a package may depend on, even indirectly (Forbid,
// from `go list -deps`), and what a pure package's own source may call
// (CheckPure: no clock, no randomness, no I/O), which imports alone cannot
// show, since time and math are imported for their types and arithmetic.
package deptest

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Module is certmesh's module path.
const Module = "github.com/certmesh/certmesh"

// Deps lists every package that pkg (a path relative to the module root,
// such as "crdt" or "router/...") depends on, even indirectly; with tests,
// its tests' dependencies too. It skips the test where no go command is
// found, and under -short.
func Deps(t testing.TB, pkg string, tests bool) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list packages with")
		}
	}
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	if tests {
		args = append(args, "-test")
	}
	cmd := exec.Command(gobin, append(args, Module+"/"+pkg)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, stderr.String())
	}
	var deps []string
	for _, l := range strings.Split(string(out), "\n") {
		if l, _, _ = strings.Cut(l, " "); l != "" { // "pkg [pkg.test]"
			deps = append(deps, l)
		}
	}
	if len(deps) < 2 {
		t.Fatalf("go list %s found only %v", pkg, deps)
	}
	return deps
}

// Forbid fails the test for each dependency of pkg (see Deps) that is one
// of banned or below one of them. A banned path that starts with "./" is
// relative to the module.
func Forbid(t testing.TB, pkg string, tests bool, banned ...string) {
	t.Helper()
	for i, b := range banned {
		if rest, ok := strings.CutPrefix(b, "./"); ok {
			banned[i] = Module + "/" + rest
		}
	}
	for _, d := range Deps(t, pkg, tests) {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("%s depends on %s", pkg, d)
			}
		}
	}
}

// bannedTime are the functions of package time that read the clock or
// wait on it.
var bannedTime = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "AfterFunc": true,
	"Tick": true, "NewTimer": true, "NewTicker": true,
}

// CheckPure scans the non-test Go files of the current directory that keep
// says to check (nil: all) and fails the test for any that reads the clock,
// draws random numbers, or imports networking or memberlist: such a
// package takes time and randomness as arguments and does no I/O. what
// names the package in messages.
func CheckPure(t testing.TB, what string, keep func(file string) bool) {
	t.Helper()
	CheckPureExcept(t, what, Except{Keep: keep})
}

// Except relaxes CheckPure for a package that is deterministic but not
// pure throughout, such as the simulator: seeded random sources, and a few
// files that measure the machine rather than the model.
type Except struct {
	// Keep says which files to check (nil: all).
	Keep func(file string) bool
	// Seeded allows math/rand/v2 for seeded sources only: a file may
	// import it and call these of its functions (New, NewPCG), never the
	// global ones.
	Seeded []string
	// Files maps a file that may read the clock and import os or runtime
	// to the reason; everything else in it is still checked.
	Files map[string]string
	// Imports maps an import otherwise banned to the reason it is used
	// without I/O (memberlist's broadcast queue in the simulator's
	// baseline, say).
	Imports map[string]string
}

// CheckPureExcept is CheckPure with the exceptions of ex.
func CheckPureExcept(t testing.TB, what string, ex Except) {
	t.Helper()
	keep := ex.Keep
	bannedImports := map[string]bool{
		"math/rand": true, "math/rand/v2": len(ex.Seeded) == 0, "crypto/rand": true, "os": true, "os/exec": true,
		"net": true, "net/http": true, "github.com/hashicorp/memberlist": true,
	}
	seeded := map[string]bool{}
	for _, f := range ex.Seeded {
		seeded[f] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scanned := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || keep != nil && !keep(name) {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		_, excepted := ex.Files[name]
		local := map[string]string{} // local name → import path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if _, ok := ex.Imports[path]; ok || excepted && (path == "os" || path == "runtime") {
				local[importName(imp, path)] = path
				continue
			}
			if bannedImports[path] || strings.HasPrefix(path, "net/") {
				t.Errorf("%s imports %s: %s does no I/O", fset.Position(imp.Pos()), path, what)
			}
			n := importName(imp, path)
			if n == "." {
				t.Errorf("%s dot-imports %s", fset.Position(imp.Pos()), path)
			}
			local[n] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch path := local[x.Name]; {
			case path == "time" && bannedTime[sel.Sel.Name] && !excepted:
				t.Errorf("%s: time.%s: %s takes time as an argument", fset.Position(sel.Pos()), sel.Sel.Name, what)
			case path == "math/rand/v2" && seeded[sel.Sel.Name]:
				// A seeded source, or the type of one.
			case path == "math/rand" || path == "math/rand/v2" || path == "crypto/rand":
				t.Errorf("%s: %s.%s: %s draws no random numbers", fset.Position(sel.Pos()), x.Name, sel.Sel.Name, what)
			}
			return true
		})
	}
	if scanned < 3 {
		t.Fatalf("scanned %d files of %s: wrong directory?", scanned, what)
	}
}

// importName is the name a file refers to an import by.
func importName(imp *ast.ImportSpec, path string) string {
	if imp.Name != nil {
		return imp.Name.Name
	}
	if path == "math/rand/v2" {
		return "rand"
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}
