package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/auth"
)

const specExample = `
node:
  name: ctrl-us            # unique in the mesh
  region: us-east
  data_dir: ./data/ctrl-us # durable state (bbolt)
mesh:
  bind: 127.0.0.1:7946
  advertise: ""            # optional host:port
  join: ["127.0.0.1:7947"]
  key_file: ../pki/gossip.key
  join_timeout: 5s
pki:
  ca: ../pki/ca.pem
  cert: ../pki/ctrl-us/cert.pem
  key: ../pki/ctrl-us/key.pem
  trust_domain: certmesh
api:
  listen: 127.0.0.1:8443
  hosts: []
  rate_limit: 50
auth:
  oidc:
    - issuer: http://127.0.0.1:5556
      audience: certmesh
      identity_claim: sub
  jwt:
    - name: corp
      issuer: corp-signer
      audience: certmesh
      keys_file: corp.pem
      identity_claim: sub
certs:
  ttl: 1h
  rotation_grace: 5m
session:
  max_lifetime: 24h
metrics:
  listen: 127.0.0.1:9100
`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) (string, bool) { return "", false }

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadSpecExample(t *testing.T) {
	file := writeFile(t, "ctrl.yaml", specExample)
	dir := filepath.Dir(file)
	c := DefaultController()
	if err := Load(&c, Loader{File: file, LookupEnv: noEnv}); err != nil {
		t.Fatal(err)
	}
	want := Controller{
		Node: Node{Name: "ctrl-us", Region: "us-east", DataDir: filepath.Join(dir, "data/ctrl-us")},
		Mesh: Mesh{Bind: "127.0.0.1:7946", Join: []string{"127.0.0.1:7947"},
			KeyFile: filepath.Join(dir, "../pki/gossip.key"), JoinTimeout: 5 * time.Second, EagerTrees: 2},
		PKI: PKI{CA: filepath.Join(dir, "../pki/ca.pem"), Cert: filepath.Join(dir, "../pki/ctrl-us/cert.pem"),
			Key: filepath.Join(dir, "../pki/ctrl-us/key.pem"), TrustDomain: "certmesh"},
		API: API{Listen: "127.0.0.1:8443", Hosts: []string{}, RateLimit: 50},
		Auth: auth.Config{
			OIDC: []auth.OIDCConfig{{Issuer: "http://127.0.0.1:5556", Audience: "certmesh", IdentityClaim: "sub"}},
			JWT: []auth.JWTConfig{{Name: "corp", Issuer: "corp-signer", Audience: "certmesh",
				KeysFile: filepath.Join(dir, "corp.pem"), IdentityClaim: "sub"}},
		},
		Certs:   Certs{TTL: time.Hour, RotationGrace: 5 * time.Minute},
		Session: Session{MaxLifetime: 24 * time.Hour},
		Metrics: Metrics{Listen: "127.0.0.1:9100"},
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "ctrl.yaml", specExample)
	c := DefaultController()
	err := Load(&c, Loader{
		File: file,
		LookupEnv: env(map[string]string{
			"CERTMESH_API_LISTEN":     "127.0.0.1:1111",
			"CERTMESH_API_RATE_LIMIT": "7",
			"CERTMESH_MESH_JOIN":      "a:1, b:2",
			"CERTMESH_PKI_CA":         "rel/ca.pem",
		}),
		Flags: map[string]string{
			"api.listen":           "127.0.0.1:2222",
			"certs.ttl":            "2h",
			"auth.oidc":            `[{issuer: "https://idp.example", audience: x}]`,
			"session.max_lifetime": "48h",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Listen != "127.0.0.1:2222" {
		t.Errorf("flag must beat env: api.listen = %q", c.API.Listen)
	}
	if c.API.RateLimit != 7 {
		t.Errorf("env must beat file: api.rate_limit = %v", c.API.RateLimit)
	}
	if d := cmp.Diff([]string{"a:1", "b:2"}, c.Mesh.Join); d != "" {
		t.Errorf("mesh.join (-want +got)\n%s", d)
	}
	if c.PKI.CA != "rel/ca.pem" {
		t.Errorf("a path from the environment stays relative to the working directory, got %q", c.PKI.CA)
	}
	if c.Certs.TTL != 2*time.Hour || c.Session.MaxLifetime != 48*time.Hour {
		t.Errorf("durations from flags: %v %v", c.Certs.TTL, c.Session.MaxLifetime)
	}
	if len(c.Auth.OIDC) != 1 || c.Auth.OIDC[0].Issuer != "https://idp.example" {
		t.Errorf("auth.oidc from a flag: %+v", c.Auth.OIDC)
	}
	if c.Certs.RotationGrace != 5*time.Minute {
		t.Errorf("file value lost: %v", c.Certs.RotationGrace)
	}
}

func TestDefaultsAndDerived(t *testing.T) {
	file := writeFile(t, "c.yaml", `
node: {name: c1}
mesh: {key_file: g.key}
pki: {ca: ca.pem, cert: c1/cert.pem, key: c1/key.pem}
auth: {jwt: [{name: corp, issuer: corp, audience: certmesh, jwks_url: "https://x/keys"}]}
`)
	c := DefaultController()
	if err := Load(&c, Loader{File: file, LookupEnv: noEnv}); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(file), "data", "c1"); c.Node.DataDir != want {
		t.Errorf("data_dir = %q, want %q", c.Node.DataDir, want)
	}
	if c.API.RateLimit != 50 || c.Certs.TTL != time.Hour || c.Certs.RotationGrace != 5*time.Minute ||
		c.Mesh.JoinTimeout != 5*time.Second || c.PKI.TrustDomain != "certmesh" || c.Node.Region != "default" {
		t.Errorf("defaults not kept: %+v", c)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		flags      map[string]string
		env        map[string]string
		want       []string // substrings of the message
	}{
		{name: "typo", yaml: "node:\n  name: c1\n  regoin: x\n", want: []string{"c.yaml:3", "node.regoin", `unknown setting "regoin"`, "region"}},
		{name: "unknown section", yaml: "nodes: {}\n", want: []string{"c.yaml:1", `unknown setting "nodes"`}},
		{name: "bad duration", yaml: "certs:\n  ttl: 1x\n", want: []string{"c.yaml:2", "certs.ttl", "not a duration"}},
		{name: "bare number duration", yaml: "certs:\n  ttl: 60\n", want: []string{"certs.ttl", "not a duration"}},
		{name: "bad int", yaml: "api:\n  rate_limit: lots\n", want: []string{"c.yaml:2", "api.rate_limit", "not a number"}},
		{name: "twice", yaml: "api:\n  listen: a:1\n  listen: b:2\n", want: []string{"c.yaml:3", "api.listen", "set twice"}},
		{name: "not a mapping", yaml: "api: 5\n", want: []string{"c.yaml:1", "api", "want a mapping"}},
		{name: "auth typo", yaml: "auth:\n  oidc:\n    - issuer: http://x\n      audiance: y\n", want: []string{"c.yaml:4", "auth.oidc[0].audiance"}},
		{name: "invalid yaml", yaml: "api: [\n", want: []string{"c.yaml", "not valid YAML"}},
		{name: "missing name", yaml: "mesh: {key_file: k}\n", want: []string{"c.yaml", "node.name", "is required"}},
		{name: "negative rate", yaml: "node: {name: c1}\nmesh: {key_file: k}\npki: {ca: a, cert: b, key: c}\napi:\n  rate_limit: -1\n",
			want: []string{"c.yaml:5", "api.rate_limit", "negative"}},
		{name: "auth validation", yaml: "node: {name: c1}\nmesh: {key_file: k}\npki: {ca: a, cert: b, key: c}\nauth:\n  oidc: [{issuer: http://x}]\n",
			want: []string{"c.yaml:5", "auth.oidc[0].audience", "is required"}},
		{name: "bad flag", yaml: "node: {name: c1}\n", flags: map[string]string{"certs.ttl": "soon"},
			want: []string{"--certs.ttl", "not a duration"}},
		{name: "unknown flag", yaml: "", flags: map[string]string{"certs.tll": "1h"}, want: []string{"--certs.tll", "no such setting"}},
		{name: "bad env", yaml: "", env: map[string]string{"CERTMESH_API_RATE_LIMIT": "x"},
			want: []string{"$CERTMESH_API_RATE_LIMIT", "not a number"}},
		{name: "validation names flag", yaml: "node: {name: c1}\nmesh: {key_file: k}\npki: {ca: a, cert: b, key: c}\n",
			flags: map[string]string{"api.listen": "nowhere"}, want: []string{"--api.listen", "not host:port"}},
		{name: "join entry", yaml: "node: {name: c1}\nmesh:\n  key_file: k\n  join: [a:1, b]\n",
			want: []string{"c.yaml:4", "mesh.join[1]"}},
		{name: "session longer than the mesh allows", yaml: "node: {name: c1}\nmesh: {key_file: k}\npki: {ca: a, cert: b, key: c}\nauth:\n  oidc: [{issuer: http://x, audience: a}]\nsession:\n  max_lifetime: 721h\n",
			want: []string{"c.yaml:7", "session.max_lifetime", "longer than 720h"}},
		{name: "eager trees", yaml: "node: {name: c1}\nmesh:\n  key_file: k\n  eager_trees: 3\npki: {ca: a, cert: b, key: c}\n",
			want: []string{"c.yaml:4", "mesh.eager_trees", "want 2", "or 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "c.yaml", tc.yaml)
			c := DefaultController()
			err := Load(&c, Loader{File: file, LookupEnv: env(tc.env), Flags: tc.flags})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message spans lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	c := DefaultController()
	err := Load(&c, Loader{File: filepath.Join(t.TempDir(), "nope.yaml"), LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestRouter(t *testing.T) {
	file := writeFile(t, "r.yaml", `
node: {name: edge-us-1, region: us-east, data_dir: ./data/edge-us-1}
mesh: {bind: 127.0.0.1:7950, join: [127.0.0.1:7946], key_file: ../pki/gossip.key}
pki: {ca: ../pki/ca.pem, cert: ../pki/edge-us-1/cert.pem, key: ../pki/edge-us-1/key.pem, trust_domain: certmesh}
listen: 127.0.0.1:3022
upstream: 127.0.0.1:8080
admission:
  mode: strict
  pull_timeout: 2s
metrics: {listen: 127.0.0.1:9101}
`)
	r := DefaultRouter()
	if err := Load(&r, Loader{File: file, LookupEnv: env(map[string]string{"CERTMESH_ADMISSION_MODE": "verified"}),
		Flags: map[string]string{"upstream": "127.0.0.1:9090"}}); err != nil {
		t.Fatal(err)
	}
	if r.Admission.Mode != "verified" || r.Upstream != "127.0.0.1:9090" || r.Admission.PullTimeout != 2*time.Second {
		t.Errorf("got %+v", r)
	}
	if r.PKI.Cert != filepath.Join(filepath.Dir(file), "../pki/edge-us-1/cert.pem") {
		t.Errorf("pki.cert = %q", r.PKI.Cert)
	}
	r = DefaultRouter()
	err := Load(&r, Loader{File: file, LookupEnv: noEnv, Flags: map[string]string{"admission.mode": "lax"}})
	if err == nil || !strings.Contains(err.Error(), "--admission.mode") {
		t.Errorf("got %v", err)
	}
	if d := DefaultRouter().Handshake; d.FlightTimeout != 5*time.Second || d.MaxPending != 4096 || d.MaxPendingPerSource != 64 {
		t.Errorf("handshake defaults %+v", d)
	}
	for key, bad := range map[string]string{"handshake.flight_timeout": "0s", "handshake.max_pending": "0", "handshake.max_pending_per_source": "-1"} {
		r = DefaultRouter()
		err := Load(&r, Loader{File: file, LookupEnv: noEnv, Flags: map[string]string{key: bad}})
		if err == nil || !strings.Contains(err.Error(), "--"+key) {
			t.Errorf("%s %s: got %v", key, bad, err)
		}
	}
	r = DefaultRouter()
	if err := Load(&r, Loader{File: file, LookupEnv: env(map[string]string{"CERTMESH_HANDSHAKE_MAX_PENDING_PER_SOURCE": "0"})}); err != nil || r.Handshake.MaxPendingPerSource != 0 {
		t.Errorf("max_pending_per_source 0 from the environment: %v, %+v", err, r.Handshake)
	}
}

func TestSettingsListEveryField(t *testing.T) {
	got := map[string]Setting{}
	for _, s := range Settings(DefaultController()) {
		got[s.Path] = s
		if s.Help == "" {
			t.Errorf("%s has no help", s.Path)
		}
	}
	for path, def := range map[string]string{
		"node.name": `""`, "node.region": "default", "node.data_dir": `""`,
		"mesh.bind": "127.0.0.1:7946", "mesh.advertise": `""`, "mesh.join": "[]", "mesh.key_file": `""`, "mesh.join_timeout": "5s",
		"mesh.eager_trees": "2",
		"pki.ca":           `""`, "pki.cert": `""`, "pki.key": `""`, "pki.trust_domain": "certmesh",
		"api.listen": "127.0.0.1:8443", "api.hosts": "[]", "api.rate_limit": "50",
		"auth.oidc": "[]", "auth.jwt": "[]",
		"certs.ttl": "1h", "certs.rotation_grace": "5m", "session.max_lifetime": "24h",
		"session.bind_to_token": "false", "metrics.listen": "127.0.0.1:9100",
	} {
		s, ok := got[path]
		if !ok {
			t.Errorf("setting %s missing", path)
			continue
		}
		if s.Default != def {
			t.Errorf("%s default %q, want %q", path, s.Default, def)
		}
		if want := "CERTMESH_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_")); s.Env != want {
			t.Errorf("%s env %q, want %q", path, s.Env, want)
		}
	}
	if len(got) != 23 {
		t.Errorf("%d settings, want 23", len(got))
	}
	if n := len(Flags(DefaultRouter())); n != 22 {
		t.Errorf("%d router flags, want 22", n)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 5 * time.Minute: "5m", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m",
		5 * time.Second: "5s", 250 * time.Millisecond: "250ms", time.Hour + time.Second: "1h0m1s", 0: "0s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// ca_file of both kinds of auth entry is relative to the config file, like
// keys_file, and session.bind_to_token reads as a bool (default false).
func TestAuthCAFileAndBindToToken(t *testing.T) {
	body := strings.Replace(specExample, "      identity_claim: sub\n  jwt:", "      identity_claim: sub\n      ca_file: sso-ca.pem\n  jwt:", 1)
	body = strings.Replace(body, "      keys_file: corp.pem", "      jwks_url: https://keys.corp.example/jwks.json\n      ca_file: ../pki/corp-ca.pem", 1)
	body = strings.Replace(body, "  max_lifetime: 24h", "  max_lifetime: 24h\n  bind_to_token: true", 1)
	file := writeFile(t, "ctrl.yaml", body)
	dir := filepath.Dir(file)
	c := DefaultController()
	if err := Load(&c, Loader{File: file, LookupEnv: noEnv}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Auth.OIDC[0].CAFile, filepath.Join(dir, "sso-ca.pem"); got != want {
		t.Errorf("auth.oidc[0].ca_file = %q, want %q", got, want)
	}
	if got, want := c.Auth.JWT[0].CAFile, filepath.Join(dir, "../pki/corp-ca.pem"); got != want {
		t.Errorf("auth.jwt[0].ca_file = %q, want %q", got, want)
	}
	if !c.Session.BindToToken {
		t.Error("session.bind_to_token: true read as false")
	}
	if DefaultController().Session.BindToToken {
		t.Error("session.bind_to_token defaults to true")
	}
}
