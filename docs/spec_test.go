package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// specRE finds a reference to the spec: SPEC.md, "SPEC section 3", "see SPEC".
var specRE = regexp.MustCompile(`\bSPEC\b`)

// TestNothingPointsToTheSpec checks that no file of the repository (code,
// help text, comments, alert rules, docs, scripts) sends a reader to
// SPEC.md, which is not in it: the reference in docs/reference/ is the
// users' documentation.
func TestNothingPointsToTheSpec(t *testing.T) {
	root := ".."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yml", ".yaml", ".sh", ".json", ".txt", ".service", "":
		default:
			return nil
		}
		if path == filepath.Join(root, "docs", "spec_test.go") {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return err // a binary someone built here, not a text of ours
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if specRE.MatchString(line) {
				t.Errorf("%s:%d points to the spec, which is not in the repository: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
