package crdt

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

// The dependency rules of ARCHITECTURE.md, enforced in the style of
// tailscale's tstest/deptest: crdt is pure (no networking, no clock, no
// randomness), and router and issuer never depend on each other.

const modulePath = "github.com/certmesh/certmesh"

// goList runs go list in the module root and returns one line per result.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list packages with")
		}
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	return strings.Fields(string(out))
}

// TestCrdtImportsNoNetworking checks every package crdt depends on, even
// indirectly.
func TestCrdtImportsNoNetworking(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	deps := goList(t, "-deps", "-f", "{{.ImportPath}}", modulePath+"/crdt")
	banned := []string{
		"net",                             // and net/http, net/netip, ...
		"crypto/tls",                      // transport
		"github.com/hashicorp/memberlist", // the mesh is gossip's business
		"go.etcd.io/bbolt",                // persistence is the issuer's
		"os/exec",
		modulePath + "/gossip", modulePath + "/router", modulePath + "/issuer", modulePath + "/sim", modulePath + "/cmd",
	}
	for _, d := range deps {
		for _, b := range banned {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("crdt depends on %s", d)
			}
		}
	}
	if len(deps) < 5 {
		t.Fatalf("go list found only %v", deps)
	}
}

// TestCrdtReadsNoClockAndDrawsNoRandomness scans crdt's own source: time
// and identities come in as arguments.
func TestCrdtReadsNoClockAndDrawsNoRandomness(t *testing.T) {
	bannedImports := map[string]bool{
		"math/rand": true, "math/rand/v2": true, "crypto/rand": true,
		"net": true, "net/http": true, "github.com/hashicorp/memberlist": true,
	}
	bannedTime := map[string]bool{
		"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "AfterFunc": true,
		"Tick": true, "NewTimer": true, "NewTicker": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scanned := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		local := map[string]string{} // local name → import path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if bannedImports[path] || strings.HasPrefix(path, "net/") {
				t.Errorf("%s imports %s", fset.Position(imp.Pos()), path)
			}
			n := path[strings.LastIndexByte(path, '/')+1:]
			if path == "math/rand/v2" {
				n = "rand"
			}
			if imp.Name != nil {
				n = imp.Name.Name
			}
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
			case path == "time" && bannedTime[sel.Sel.Name]:
				t.Errorf("%s: time.%s: crdt takes time as an argument", fset.Position(sel.Pos()), sel.Sel.Name)
			case path == "math/rand" || path == "math/rand/v2" || path == "crypto/rand":
				t.Errorf("%s: %s.%s: crdt draws no random numbers", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
			}
			return true
		})
	}
	if scanned < 5 {
		t.Fatalf("scanned %d files: wrong directory?", scanned)
	}
}

// TestRouterAndIssuerDoNotDependOnEachOther: both depend on gossip and
// crdt, and cmd wires them. Skipped while either does not exist.
func TestRouterAndIssuerDoNotDependOnEachOther(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pair := range [][2]string{{"router", "issuer"}, {"issuer", "router"}} {
		from, to := pair[0], pair[1]
		if _, err := os.Stat(filepath.Join("..", from)); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("..", to)); err != nil {
			continue
		}
		// Tests included: a test helper must not pull the other side in
		// either.
		deps := goList(t, "-deps", "-test", "-f", "{{.ImportPath}}", "./"+from+"/...")
		for _, d := range deps {
			d, _, _ = strings.Cut(d, " ") // "pkg [pkg.test]"
			if d == modulePath+"/"+to || strings.HasPrefix(d, modulePath+"/"+to+"/") {
				t.Errorf("%s depends on %s", from, d)
			}
		}
	}
}
