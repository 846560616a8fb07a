package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary YAML bytes, and an arbitrary command-line value
// for one setting, to Load for a controller and for a router. Whatever the
// input, Load returns nil or an *Error whose message is one line, and never
// panics. The seed corpus (the controller example of docs/deploy.md, the router example, and the
// malformed files of the table tests) runs in plain go test:
//
//	go test ./config/ -run '^$' -fuzz FuzzLoad -fuzztime 60s
func FuzzLoad(f *testing.F) {
	router := "node: {name: edge-us-1, region: us-east, data_dir: ./data/edge-us-1}\n" +
		"mesh: {bind: 127.0.0.1:7950, join: [127.0.0.1:7946], key_file: ../pki/gossip.key}\n" +
		"pki: {ca: ../pki/ca.pem, cert: ../pki/edge/cert.pem, key: ../pki/edge/key.pem, trust_domain: certmesh}\n" +
		"listen: 127.0.0.1:3022\nupstream: 127.0.0.1:8080\nadmission: {mode: strict, pull_timeout: 2s}\n" +
		"metrics: {listen: 127.0.0.1:9101}\n"
	for _, s := range []struct {
		file    string
		setting uint8
		value   string
	}{
		{specExample, 0, ""},
		{router, 3, "127.0.0.1:7000"},
		{"node:\n  name: c1\n  nmae: x\n", 0, ""},
		{"node: [1, 2]\n", 0, ""},
		{"mesh:\n  join: &j [a, b]\n  bind: *j\n", 0, ""},
		{"certs: {ttl: forever}\n", 0, ""},
		{"api: {rate_limit: -1e999}\n", 0, ""},
		{"a: &a [*a]\n", 0, ""},
		{"node: {name: x}\nnode: {name: y}\n", 0, ""},
		{"\xff\xfe\x00", 0, ""},
		{"", 7, "[1, {a: b}]"},
		{"", 12, "{issuer: x"},
		{"---\n...\n---\nnode: {}\n", 20, "1h1h"},
	} {
		f.Add([]byte(s.file), s.setting, s.value)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "certmesh.yaml")
	f.Fuzz(func(t *testing.T, data []byte, setting uint8, value string) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, dst := range []interface {
			Config
		}{ptr(DefaultController()), ptr(DefaultRouter())} {
			flags := map[string]string{}
			if value != "" {
				all := settings(reflect.ValueOf(dst).Elem())
				flags[all[int(setting)%len(all)].path] = value
			}
			err := Load(dst, Loader{File: path, LookupEnv: noEnv, Flags: flags})
			if err == nil {
				continue
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load returned %T, not *config.Error: %v", err, err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error of more than one line: %q", msg)
			}
			if !strings.HasPrefix(msg, "config: ") {
				t.Fatalf("error does not start with config: %q", msg)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
