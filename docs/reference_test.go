// Package docs holds no code: its tests check the reference in
// docs/reference/ against the code, so that it cannot drift (package
// internal/refdoc). Rewrite the generated tables with
//
//	go test ./docs ./cmd/certmesh ./cmd/meshsim -run Reference -update
package docs

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/refdoc"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/reference from the code")

const regen = "go test ./docs -run Reference -update"

func settingsTable(defaults any) refdoc.Table {
	tab := refdoc.Table{Header: []string{"setting", "default", "flag", "environment", "meaning"}}
	for _, s := range config.Settings(defaults) {
		tab.Rows = append(tab.Rows, []string{refdoc.Code(s.Path), refdoc.Code(s.Default), refdoc.Code("--" + s.Path), refdoc.Code(s.Env), s.Help})
	}
	return tab
}

func TestReferenceConfig(t *testing.T) {
	file := filepath.Join("reference", "config.md")
	refdoc.Check(t, file, "controller-settings", settingsTable(config.DefaultController()), *update, regen)
	refdoc.Check(t, file, "router-settings", settingsTable(config.DefaultRouter()), *update, regen)
	for _, entry := range []struct {
		name string
		typ  any
	}{{"auth.oidc", auth.OIDCConfig{}}, {"auth.jwt", auth.JWTConfig{}}} {
		refdoc.Check(t, file, entry.name+"-fields", fieldsTable(t, entry.name, entry.typ), *update, regen)
	}
}

// fieldsTable lists the YAML fields of an auth entry type, with their doc
// comments from the auth package's source.
func fieldsTable(t *testing.T, section string, v any) refdoc.Table {
	docs := fieldDocs(t, filepath.Join("..", "auth"), reflect.TypeOf(v).Name())
	tab := refdoc.Table{Header: []string{"field", "meaning"}}
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		doc := docs[f.Name]
		if doc == "" {
			t.Errorf("auth.%s.%s (%s[].%s) has no doc comment to document it by", typ.Name(), f.Name, section, name)
		}
		tab.Rows = append(tab.Rows, []string{refdoc.Code(section + "[]." + name), doc})
	}
	return tab
}

// fieldDocs reads the doc comments of the fields of struct typeName in the
// Go package in dir.
func fieldDocs(t *testing.T, dir, typeName string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok || ts.Name.Name != typeName {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				for _, fl := range st.Fields.List {
					text := strings.TrimSpace(fl.Doc.Text())
					if text == "" {
						text = strings.TrimSpace(fl.Comment.Text())
					}
					for _, n := range fl.Names {
						// "Name names the entry; ..." reads "names the entry; ..." in a
						// table, "X, when set, ..." "when set, ...".
						doc := strings.TrimPrefix(strings.TrimPrefix(text, n.Name+" "), n.Name+", ")
						out[n.Name] = strings.Join(strings.Fields(doc), " ")
					}
				}
				return false
			})
		}
	}
	return out
}

// TestReferenceErrorCodes lists the API's error codes from package api's
// source: each constant of type Code, its status (Code.HTTPStatus) and
// its comment.
func TestReferenceErrorCodes(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, filepath.Join("..", "api"), func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	tab := refdoc.Table{Header: []string{"code", "status", "meaning"}}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" || len(vs.Values) != 1 {
						continue
					}
					lit, ok := vs.Values[0].(*ast.BasicLit)
					if !ok {
						continue
					}
					code, _ := strconv.Unquote(lit.Value)
					meaning := strings.TrimSpace(vs.Comment.Text())
					// "400: why" gives the status, which the table has:
					// the why is the meaning. "403; 401 when ..." keeps
					// what it says beside the status.
					if len(meaning) > 5 && strings.Trim(meaning[:3], "0123456789") == "" && meaning[3:5] == ": " {
						meaning = meaning[5:]
					}
					st := api.Code(code).HTTPStatus()
					tab.Rows = append(tab.Rows, []string{refdoc.Code(code), fmt.Sprint(st), meaning})
				}
			}
		}
	}
	sort.Slice(tab.Rows, func(i, j int) bool { return tab.Rows[i][0] < tab.Rows[j][0] })
	if len(tab.Rows) < 10 {
		t.Fatalf("found %d error codes in package api; the parser no longer finds them", len(tab.Rows))
	}
	refdoc.Check(t, filepath.Join("reference", "http-api.md"), "error-codes", tab, *update, regen)
}
