package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestDocsCommandsUseCurrentFlags checks every certmesh command line in the
// shell blocks of README.md and docs/*.md against the command definitions:
// the subcommand exists and takes every flag the line gives it, and none of
// those flags is a hidden alias kept for earlier releases. An operator
// copies these lines; one that names a flag the help does not list (as
// `login --out` did in identity-providers.md) teaches what --help cannot
// explain.
func TestDocsCommandsUseCurrentFlags(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	app := newApp(nil, nil)
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range shellLines(string(data)) {
			for _, args := range certmeshInvocations(line) {
				checked++
				if msg := checkInvocation(app, args); msg != "" {
					t.Errorf("%s: %q: %s", filepath.Base(file), line, msg)
				}
			}
		}
	}
	t.Logf("%d certmesh command lines checked", checked)
	if checked < 15 {
		t.Fatalf("found only %d certmesh command lines in the docs: the scanner no longer sees them", checked)
	}
}

// shellLines returns the lines of the ```sh blocks of a Markdown text, with
// continuation lines (a trailing backslash) joined and comments removed.
func shellLines(md string) []string {
	var lines []string
	in, pending := false, ""
	for _, l := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			in = !in && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```shell")
			pending = ""
			continue
		}
		if !in {
			continue
		}
		if i := strings.Index(trimmed, " #"); i >= 0 {
			trimmed = strings.TrimSpace(trimmed[:i])
		}
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			pending += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		lines = append(lines, pending+trimmed)
		pending = ""
	}
	return lines
}

var shellSeparators = regexp.MustCompile(`\|\||&&|[|;]|\$\(|\)`)

// certmeshInvocations returns the arguments after each certmesh binary
// (`certmesh`, `/usr/local/bin/certmesh`, `go run ./cmd/certmesh`) in a shell line.
func certmeshInvocations(line string) [][]string {
	var out [][]string
	for _, part := range shellSeparators.Split(line, -1) {
		fields := strings.Fields(part)
		for i, f := range fields {
			if f == "certmesh" || strings.HasSuffix(f, "/certmesh") && !strings.Contains(f, "github.com") {
				if i > 0 && fields[i-1] == "-o" { // go build -o certmesh
					continue
				}
				out = append(out, fields[i+1:])
				break
			}
		}
	}
	return out
}

// checkInvocation says what is wrong with args for app, or "".
func checkInvocation(app *cli.App, args []string) string {
	cmds, flags, path := app.Commands, app.Flags, "certmesh"
	for _, a := range args {
		if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "$") {
			break
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			if len(cmds) > 0 && path == "certmesh" {
				return "no command " + a
			}
			break // a positional argument
		}
		cmds, flags, path = next.Subcommands, next.Flags, path+" "+a
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || a == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if name == "help" || name == "version" {
			continue
		}
		var found cli.Flag
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					found = f
				}
			}
		}
		if found == nil {
			return path + " has no flag --" + name
		}
		if v, ok := found.(cli.VisibleFlag); ok && !v.IsVisible() {
			return path + " --" + name + " is a hidden alias kept for earlier releases: use the flag its --help lists"
		}
	}
	return ""
}
