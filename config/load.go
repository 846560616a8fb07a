package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes caps the config file Load reads.
const MaxFileBytes = 1 << 20

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "CERTMESH_"

// Config is what Load fills: a pointer to a struct of yaml-tagged sections
// (*Controller, *Router) that can validate itself.
type Config interface {
	Validate() error
}

// Source says which layer a setting's value came from.
type Source int

const (
	SourceDefault Source = iota
	SourceFile
	SourceEnv
	SourceFlag
)

func (s Source) String() string {
	return [...]string{"default", "file", "environment", "flag"}[s]
}

// Error is every error Load returns: a configuration problem, fixed by
// editing the file, the environment or the command line (exit status 2).
type Error struct {
	File   string // the config file, if any
	Line   int    // line in File, when known
	Field  string // YAML path of the setting, when known
	Source Source // where the value at fault came from
	Origin string // the env variable or flag, for SourceEnv and SourceFlag
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.Source == SourceEnv || e.Source == SourceFlag:
		b.WriteString(e.Origin)
		if e.Field != "" && !strings.Contains(e.Origin, e.Field) {
			b.WriteString(" (" + e.Field + ")")
		}
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		if e.Field != "" {
			b.WriteString(": " + e.Field)
		}
	case e.Field != "":
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Loader says where Load reads from.
type Loader struct {
	// File is the YAML file; empty for none (defaults, env and flags only;
	// relative paths are then relative to the working directory).
	File string
	// LookupEnv reads the environment; default os.LookupEnv. Set it to a
	// function returning false to ignore the environment.
	LookupEnv func(string) (string, bool)
	// Flags maps settings (YAML paths such as "api.listen") to the text
	// given on the command line; FlagValues builds it from urfave/cli.
	Flags map[string]string
}

// Load fills dst, which already holds the defaults, from l's file,
// environment and flags, in that order of precedence, then validates it.
// Every error is an *Error.
func Load(dst Config, l Loader) error {
	root := reflect.ValueOf(dst)
	if root.Kind() != reflect.Pointer || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", dst)
	}
	if l.LookupEnv == nil {
		l.LookupEnv = os.LookupEnv
	}
	fields := settings(root.Elem())
	byPath := make(map[string]*setting, len(fields))
	for i := range fields {
		byPath[fields[i].path] = &fields[i]
	}
	for p := range l.Flags {
		if byPath[p] == nil {
			return &Error{Source: SourceFlag, Origin: "--" + p, Err: errors.New("no such setting")}
		}
	}

	// 1. The file.
	lines := make(map[string]int) // YAML path → line, for errors
	dir := ""
	if l.File != "" {
		dir = filepath.Dir(l.File)
		if err := loadFile(root.Elem(), l.File, byPath, lines); err != nil {
			return err
		}
	}
	// Paths from the defaults and the file are relative to the file.
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range fields {
		if f := &fields[i]; f.isPath {
			f.v.SetString(resolve(f.v.String()))
		}
	}
	if x, ok := dst.(interface{ resolveExtra(func(string) string) }); ok {
		x.resolveExtra(resolve)
	}

	// 2. The environment, 3. the flags.
	for i := range fields {
		f := &fields[i]
		if v, ok := l.LookupEnv(f.env); ok {
			if err := f.set(v); err != nil {
				return &Error{Field: f.path, Source: SourceEnv, Origin: "$" + f.env, Err: err}
			}
			f.source, f.origin = SourceEnv, "$"+f.env
		}
	}
	for i := range fields {
		f := &fields[i]
		if v, ok := l.Flags[f.path]; ok {
			if err := f.set(v); err != nil {
				return &Error{Field: f.path, Source: SourceFlag, Origin: "--" + f.path, Err: err}
			}
			f.source, f.origin = SourceFlag, "--"+f.path
		}
	}

	if x, ok := dst.(interface{ finish(string) }); ok {
		x.finish(dir)
	}
	if err := dst.Validate(); err != nil {
		e := &Error{File: l.File, Err: err}
		var fe *FieldError
		if errors.As(err, &fe) {
			e.Field, e.Err = fe.Field, fe.Err
			// The setting at fault, or the one holding it.
			for p := fe.Field; p != ""; p = parentPath(p) {
				if f := byPath[p]; f != nil {
					e.Source, e.Origin = f.source, f.origin
					break
				}
			}
			if e.Source == SourceFile {
				for p := fe.Field; p != "" && e.Line == 0; p = parentPath(p) {
					e.Line = lines[p]
				}
			}
		}
		return e
	}
	return nil
}

// parentPath strips the last element of a YAML path: mesh.join[2] → mesh.join,
// auth.oidc → auth.
func parentPath(p string) string {
	if i := strings.LastIndexByte(p, '['); i > 0 {
		return p[:i]
	}
	if i := strings.LastIndexByte(p, '.'); i > 0 {
		return p[:i]
	}
	return ""
}

// setting is one leaf of a config struct.
type setting struct {
	path   string        // YAML path: api.rate_limit
	env    string        // CERTMESH_API_RATE_LIMIT
	v      reflect.Value // the field, settable
	help   string
	isPath bool

	source Source
	origin string // env variable or flag
}

var durationType = reflect.TypeFor[time.Duration]()

// settings lists the leaves under v, depth first in field order.
func settings(v reflect.Value) []setting {
	var out []setting
	walk(v, "", &out)
	return out
}

func walk(v reflect.Value, prefix string, out *[]setting) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := yamlName(sf)
		if name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != durationType {
			walk(fv, path, out)
			continue
		}
		help := sf.Tag.Get("help")
		if help == "" {
			help = extraHelp[path]
		}
		*out = append(*out, setting{
			path:   path,
			env:    EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path)),
			v:      fv,
			help:   help,
			isPath: sf.Tag.Get("config") == "path" && fv.Kind() == reflect.String,
		})
	}
}

// extraHelp documents settings whose types live in other packages.
var extraHelp = map[string]string{
	"auth.oidc": "OIDC issuers, a YAML/JSON list of {name, issuer, audience, identity_claim, identity_namespace, ca_file}; name defaults to the issuer's host",
	"auth.jwt":  "external JWT signers, a YAML/JSON list of {name, issuer, audience, keys_file | jwks_url, ca_file, identity_claim, identity_namespace}; with more than one auth entry an identity is <identity_namespace>:<claim>, the namespace defaulting to the entry's name (set the same identity_namespace on entries to map their identities together)",
}

func yamlName(sf reflect.StructField) string {
	tag := sf.Tag.Get("yaml")
	if i := strings.IndexByte(tag, ','); i >= 0 {
		tag = tag[:i]
	}
	if tag == "" {
		return strings.ToLower(sf.Name)
	}
	return tag
}

// set parses text into the setting.
func (f *setting) set(text string) error {
	err := setText(f.v, text, f.path)
	var pe *pathError
	if errors.As(err, &pe) {
		if pe.path == f.path {
			return pe.err
		}
		return fmt.Errorf("%s: %w", pe.path, pe.err)
	}
	return err
}

// setText parses text into v: scalars as Go parses them, lists as comma
// words or YAML, anything else as YAML.
func setText(v reflect.Value, text, path string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s, 5m or 1h", text)
		}
		v.SetInt(int64(d))
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		t := strings.TrimSpace(text)
		if strings.HasPrefix(t, "[") {
			return setYAML(v, t, path)
		}
		var list []string
		for _, w := range strings.Split(t, ",") {
			if w = strings.TrimSpace(w); w != "" {
				list = append(list, w)
			}
		}
		v.Set(reflect.ValueOf(list).Convert(v.Type()))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", text)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(text), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer", text)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(text), v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a number", text)
		}
		v.SetFloat(n)
	default:
		return setYAML(v, text, path)
	}
	return nil
}

// setYAML parses text as a YAML document into v, with the same strictness
// as the file.
func setYAML(v reflect.Value, text, path string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return fmt.Errorf("not valid YAML: %s", yamlMessage(err))
	}
	if len(doc.Content) == 0 {
		v.Set(reflect.Zero(v.Type()))
		return nil
	}
	fresh := reflect.New(v.Type()).Elem()
	if err := decodeNode(doc.Content[0], fresh, path, nil); err != nil {
		return err
	}
	v.Set(fresh)
	return nil
}

// loadFile applies the YAML file at path to root.
func loadFile(root reflect.Value, path string, byPath map[string]*setting, lines map[string]int) error {
	data, err := readFile(path)
	if err != nil {
		return &Error{File: path, Err: err}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{File: path, Err: fmt.Errorf("not valid YAML: %s", yamlMessage(err))}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	err = decodeNode(doc.Content[0], root, "", func(p string, line int) {
		lines[p] = line
		if f := byPath[p]; f != nil {
			f.source = SourceFile
		}
	})
	if err != nil {
		var pe *pathError
		if errors.As(err, &pe) {
			return &Error{File: path, Line: pe.line, Field: pe.path, Source: SourceFile, Err: pe.err}
		}
		return &Error{File: path, Err: err}
	}
	return nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, err
	}
	if b.Len() > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return b.Bytes(), nil
}

// pathError is a decoding error at a YAML path and line.
type pathError struct {
	path string
	line int
	err  error
}

func (e *pathError) Error() string { return fmt.Sprintf("line %d: %s: %v", e.line, e.path, e.err) }

// decodeNode applies YAML node n to v, strictly: unknown and duplicate keys
// and values of the wrong shape are errors naming the path and line. seen,
// if set, is told every leaf setting the node sets.
func decodeNode(n *yaml.Node, v reflect.Value, path string, seen func(path string, line int)) error {
	fail := func(format string, args ...any) error {
		p := path
		if p == "" {
			p = "(top level)"
		}
		return &pathError{path: p, line: n.Line, err: fmt.Errorf(format, args...)}
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.Zero(v.Type()))
		if seen != nil {
			seen(path, n.Line)
		}
		return nil
	}
	switch {
	case v.Kind() == reflect.Struct && v.Type() != durationType:
		if n.Kind != yaml.MappingNode {
			return fail("want a mapping of settings, got %s", nodeKind(n))
		}
		fields := make(map[string]int)
		var names []string
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if name := yamlName(sf); sf.IsExported() && name != "-" {
				fields[name] = i
				names = append(names, name)
			}
		}
		done := make(map[string]int)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			idx, ok := fields[k.Value]
			if !ok {
				sort.Strings(names)
				return &pathError{path: sub, line: k.Line, err: fmt.Errorf("unknown setting %q; known here: %s", k.Value, strings.Join(names, ", "))}
			}
			if prev, dup := done[k.Value]; dup {
				return &pathError{path: sub, line: k.Line, err: fmt.Errorf("set twice (first at line %d)", prev)}
			}
			done[k.Value] = k.Line
			if err := decodeNode(val, v.Field(idx), sub, seen); err != nil {
				return err
			}
		}
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8:
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			// A single word or a comma list, as on the command line.
			if err := setText(v, n.Value, path); err != nil {
				return fail("%v", err)
			}
			break
		}
		if n.Kind != yaml.SequenceNode {
			return fail("want a list, got %s", nodeKind(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decodeNode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), seen); err != nil {
				return err
			}
		}
		v.Set(s)
	case v.Kind() == reflect.Map:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return fail("%s", yamlMessage(err))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return fail("want a single value, got %s", nodeKind(n))
		}
		if err := setText(v, n.Value, path); err != nil {
			return fail("%v", err)
		}
	}
	if seen != nil {
		seen(path, n.Line)
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// yamlMessage flattens a yaml.v3 error to one line.
func yamlMessage(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	return strings.Join(strings.Fields(s), " ")
}
