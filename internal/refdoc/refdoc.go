// Package refdoc keeps the generated tables of the reference
// (docs/reference/) in step with the code. Each table sits in a Markdown
// file between two markers,
//
//	<!-- BEGIN GENERATED name -->
//	| key | ... |
//	<!-- END GENERATED name -->
//
// with prose written by hand around it. A test builds the table from the
// code (config structs, the API's routes, a live node's /metrics, the
// command definitions) and calls Check: it fails naming every row that is
// missing, stale or changed, or with -update rewrites the block. The first
// column of a table is its key.
//
// It is imported by tests only.
package refdoc

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Table is a Markdown table whose first column is the key of each row.
type Table struct {
	Header []string
	Rows   [][]string
	// Hand marks the columns written by hand in the doc (what a route
	// answers, say): a row's empty cell there is taken from the doc, so
	// that -update keeps the prose, and a new row's stays empty, which
	// Check reports.
	Hand map[int]bool
}

// Markdown renders t; cells have their pipes and newlines escaped.
func (t Table) Markdown() string {
	var b strings.Builder
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + Cell(c) + " |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	b.WriteString("|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		row(r)
	}
	return b.String()
}

// Cell escapes s for a table cell: pipes, and angle brackets outside code
// spans ("data/<node.name>" would be taken for an HTML tag).
func Cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	s = strings.Join(parts, "`")
	return strings.Join(strings.Fields(s), " ")
}

func markers(name string) (begin, end string) {
	return "<!-- BEGIN GENERATED " + name + " -->\n", "<!-- END GENERATED " + name + " -->"
}

// Block returns the text between the markers of name in the file's
// content, and its offsets.
func Block(content, name string) (block string, start, stop int, ok bool) {
	begin, end := markers(name)
	i := strings.Index(content, begin)
	if i < 0 {
		return "", 0, 0, false
	}
	start = i + len(begin)
	j := strings.Index(content[start:], end)
	if j < 0 {
		return "", 0, 0, false
	}
	return content[start : start+j], start, start + j, true
}

// ParseRows reads the rows of the Markdown table in block, key first,
// cells unescaped as Cell wrote them (header and rule excluded).
func ParseRows(block string) map[string][]string {
	rows := map[string][]string{}
	for i, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if i < 2 || !strings.HasPrefix(line, "|") {
			continue
		}
		line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
		line = strings.ReplaceAll(line, `\|`, "\x00")
		var cells []string
		for _, c := range strings.Split(line, "|") {
			cells = append(cells, strings.ReplaceAll(strings.TrimSpace(c), "\x00", "|"))
		}
		rows[cells[0]] = cells
	}
	return rows
}

// Check compares table name in file with want. With update, it rewrites
// the block instead; regen is the command that does so, for the failure
// message.
func Check(t testing.TB, file, name string, want Table, update bool, regen string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	content := string(data)
	block, start, stop, ok := Block(content, name)
	if !ok {
		begin, end := markers(name)
		t.Fatalf("%s: no table %s: add the lines %q and %q where it goes, then run %s", file, name, strings.TrimSpace(begin), end, regen)
	}
	have := ParseRows(block)
	for _, r := range want.Rows {
		for col := range want.Hand {
			if r[col] != "" {
				continue
			}
			if old, ok := have[Cell(r[0])]; ok && col < len(old) {
				r[col] = old[col]
			}
			if r[col] == "" {
				t.Errorf("%s, table %s: %s has no %q: write it in the doc (run %s first to add the row)", file, name, r[0], want.Header[col], regen)
			}
		}
	}
	md := want.Markdown()
	if block == md {
		return
	}
	if update {
		content = content[:start] + md + content[stop:]
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: table %s rewritten", file, name)
		return
	}
	wantKeys := map[string]bool{}
	problems := 0
	report := func(format string, args ...any) {
		t.Helper()
		problems++
		t.Errorf(format, args...)
	}
	for _, r := range want.Rows {
		key := Cell(r[0])
		wantKeys[key] = true
		got, ok := have[key]
		switch {
		case !ok:
			report("%s, table %s: missing %s (the code has it: %s)", file, name, key, strings.Join(r[1:], " | "))
		case Cell(strings.Join(got, "|")) != Cell(strings.Join(escapeAll(r), "|")):
			report("%s, table %s: %s is stale:\n\thave %s\n\twant %s", file, name, key, strings.Join(got, " | "), strings.Join(r, " | "))
		}
	}
	for key := range have {
		if !wantKeys[key] {
			report("%s, table %s: %s is not in the code any more", file, name, key)
		}
	}
	if problems == 0 {
		t.Errorf("%s, table %s: rows in a different order or format than generated", file, name)
	}
	t.Errorf("%s, table %s: to rewrite it from the code, run %s", file, name, regen)
}

// escapeAll returns r's cells as ParseRows reads them back.
func escapeAll(r []string) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = Cell(c)
		out[i] = strings.ReplaceAll(out[i], `\|`, "|")
	}
	return out
}

// Code formats s as inline code, or "" for an empty s.
func Code(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("`%s`", s)
}
