package config

import (
	"strings"
	"testing"
)

// default_service names a replicated service; it excludes upstream, and
// with neither set a router still starts (clients must name a service).
func TestRouterDefaultService(t *testing.T) {
	base := `
node: {name: edge-1}
mesh: {key_file: k}
pki: {ca: ca.pem, cert: c.pem, key: k.pem}
listen: 127.0.0.1:3022
`
	for _, tt := range []struct {
		extra, wantErr string
	}{
		{"default_service: echo\n", ""},
		{"", ""},
		{"upstream: 127.0.0.1:8080\n", ""},
		{"upstream: 127.0.0.1:8080\ndefault_service: echo\n", "not both"},
		{"default_service: Echo_1\n", "default_service"},
	} {
		r := DefaultRouter()
		err := Load(&r, Loader{File: writeFile(t, "r.yaml", base+tt.extra), LookupEnv: noEnv})
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: %v, want %q", tt.extra, err, tt.wantErr)
		}
	}
}
