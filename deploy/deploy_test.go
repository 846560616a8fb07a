package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certmesh/certmesh/config"
)

func noEnv(string) (string, bool) { return "", false }

// TestExampleConfigsLoad loads every example config as the binaries would.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) != 6 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	names := map[string]bool{}
	for _, f := range files {
		var name string
		switch base := filepath.Base(f); {
		case strings.HasPrefix(base, "ctrl-"):
			c := config.DefaultController()
			if err := config.Load(&c, config.Loader{File: f, LookupEnv: noEnv}); err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			name = c.Node.Name
			if len(c.Auth.OIDC) != 1 || c.Certs.TTL.String() != "1h0m0s" {
				t.Errorf("%s: auth %+v, ttl %v", f, c.Auth, c.Certs.TTL)
			}
			if c.PKI.CA != filepath.Join("examples", "pki", "ca.pem") {
				t.Errorf("%s: pki.ca %q not resolved beside the file", f, c.PKI.CA)
			}
		case strings.HasPrefix(base, "edge-"):
			r := config.DefaultRouter()
			if err := config.Load(&r, config.Loader{File: f, LookupEnv: noEnv}); err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			name = r.Node.Name
			if r.Admission.Mode != config.AdmissionStrict {
				t.Errorf("%s: admission mode %q", f, r.Admission.Mode)
			}
		default:
			t.Errorf("%s: neither a controller nor a router example", f)
		}
		if names[name] {
			t.Errorf("%s: node name %q used twice", f, name)
		}
		names[name] = true
	}
}

// TestAlertRules checks the rules file's structure, and runs promtool on it
// when promtool is installed (Debian's prometheus package has it).
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	// The alerts the deployment guide promises, each on a metric the nodes
	// export (or the clock gauge the mesh adds).
	want := map[string]string{
		"CertmeshSyncDelayHigh":                 "certmesh_sync_delay_seconds_bucket",
		"CertmeshMemberGone":                    "certmesh_members",
		"CertmeshRejectedRecords":               "certmesh_rejected_records_total",
		"CertmeshPullTimeouts":                  "certmesh_pull_total",
		"CertmeshClockSkew":                     "certmesh_clock_offset_seconds",
		"CertmeshIdentityProviderMisconfigured": "certmesh_auth_issuer_misconfigured",
		"CertmeshIdentityProviderKeysStale":     "certmesh_auth_issuer_key_refresh_timestamp_seconds",
		"CertmeshNodeDown":                      `up{job="certmesh"}`,
	}
	duration := regexp.MustCompile(`^[0-9]+[smhd]$`)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if r.For != "" && !duration.MatchString(r.For) {
				t.Errorf("%s: for %q is not a duration", r.Alert, r.For)
			}
			if seen[r.Alert] {
				t.Errorf("%s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if m, ok := want[r.Alert]; ok && !strings.Contains(r.Expr, m) {
				t.Errorf("%s does not use %s: %s", r.Alert, m, r.Expr)
			}
		}
	}
	for a := range want {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
	// The guide's table is where an operator paged by an alert looks it up.
	guide, err := os.ReadFile(filepath.Join("..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for a := range seen {
		if !strings.Contains(string(guide), "| `"+a+"` |") {
			t.Errorf("docs/deploy.md, \"What to watch\": the alert table has no row for %s", a)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: structure checked, PromQL not parsed")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", "alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
