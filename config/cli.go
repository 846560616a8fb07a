package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// FlagCategory groups the generated flags in --help.
const FlagCategory = "settings (flag > $CERTMESH_… > file > default)"

// Setting describes one configuration setting, for help and docs.
type Setting struct {
	Path    string // YAML path and flag name: api.rate_limit
	Env     string // CERTMESH_API_RATE_LIMIT
	Default string // the default, as text
	Help    string
}

// Settings lists the settings of defaults (a struct such as
// DefaultController(), or a pointer to one) with their defaults.
func Settings(defaults any) []Setting {
	v := reflect.ValueOf(defaults)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	var out []Setting
	for _, f := range settings(cp) {
		out = append(out, Setting{Path: f.path, Env: f.env, Default: formatValue(f.v), Help: f.help})
	}
	return out
}

// Flags returns one urfave/cli string flag per setting of defaults, named
// by its YAML path, whose help gives its default and environment variable.
// The flags carry no values of their own: pass FlagValues to Load.
func Flags(defaults any) []cli.Flag {
	var out []cli.Flag
	for _, s := range Settings(defaults) {
		out = append(out, &cli.StringFlag{
			Name:        s.Path,
			Usage:       fmt.Sprintf("%s [$%s]", s.Help, s.Env),
			DefaultText: s.Default,
			Category:    FlagCategory,
		})
	}
	return out
}

// FlagValues returns the settings of defaults given on c's command line,
// for Loader.Flags.
func FlagValues(c *cli.Context, defaults any) map[string]string {
	m := make(map[string]string)
	for _, s := range Settings(defaults) {
		if c.IsSet(s.Path) {
			m[s.Path] = c.String(s.Path)
		}
	}
	return m
}

// formatValue renders a default as flag text.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return FormatDuration(time.Duration(v.Int()))
	case v.Kind() == reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if v.Len() == 0 {
			return "[]"
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = v.Index(i).String()
		}
		return strings.Join(parts, ",")
	case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case v.Kind() == reflect.Slice && v.Len() == 0:
		return "[]"
	}
	switch v.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprint(v.Interface())
	}
	b, err := yaml.Marshal(v.Interface())
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// FormatDuration writes d as Go does, without zero minutes and seconds:
// 1h, 5m, 24h, 1h30m, 250ms.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
