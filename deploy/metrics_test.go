package deploy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/pki"
)

// scraped is the /metrics output of one running controller and one
// running router, after a login: what Prometheus would store.
type scraped struct {
	controller, router string
}

// scrapedOnce keeps what scrape read, for the tests that follow.
var scrapedOnce struct {
	sync.Mutex
	s *scraped
}

// scrape starts a controller and a router in this process (the dev
// cluster: real memberlist, real listeners), logs a client in, and reads
// both /metrics; once per test binary.
func scrape(t *testing.T) scraped {
	t.Helper()
	scrapedOnce.Lock()
	defer scrapedOnce.Unlock()
	if scrapedOnce.s == nil {
		s := scrapeNodes(t)
		scrapedOnce.s = &s
	}
	return *scrapedOnce.s
}

func scrapeNodes(t *testing.T) scraped {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), Regions: []string{"us-east"}, RoutersPerRegion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roots, err := pki.LoadCerts(filepath.Join(c.PKIDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.DefaultConfig()
	cfg.RootCAs = x509.NewCertPool()
	cfg.RootCAs.AddCert(roots[0])
	cfg.Controllers = []string{"https://" + c.Controllers[0].APIAddr()}
	token, err := c.OIDC.Mint("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Login(ctx, cfg, token); err != nil {
		t.Fatal(err)
	}
	get := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/metrics: %d %v", addr, resp.StatusCode, err)
		}
		return string(b)
	}
	return scraped{controller: get(c.Controllers[0].MetricsAddr()), router: get(c.Routers[0].MetricsAddr().String())}
}

// families returns the metric families of an exposition by their # TYPE
// lines, and every sample name they cover (a histogram's _bucket, _sum
// and _count).
func families(text string) (types map[string]string, names map[string]bool) {
	types, names = map[string]string{}, map[string]bool{}
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			types[f[0]] = f[1]
			names[f[0]] = true
			switch f[1] {
			case "histogram":
				names[f[0]+"_bucket"], names[f[0]+"_sum"], names[f[0]+"_count"] = true, true, true
			case "summary":
				names[f[0]+"_sum"], names[f[0]+"_count"] = true, true
			}
		}
	}
	return types, names
}

// TestMetricsExposition checks the /metrics of a real controller and
// router: every family has a # TYPE and a help text, and promtool check
// metrics (Prometheus's own linter) finds nothing.
func TestMetricsExposition(t *testing.T) {
	s := scrape(t)
	promtool, err := exec.LookPath("promtool")
	for _, node := range []struct{ name, text string }{{"controller", s.controller}, {"router", s.router}} {
		t.Run(node.name, func(t *testing.T) {
			types, _ := families(node.text)
			if len(types) < 10 {
				t.Fatalf("only %d families:\n%s", len(types), node.text)
			}
			help := regexp.MustCompile(`(?m)^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$`)
			withHelp := map[string]bool{}
			for _, m := range help.FindAllStringSubmatch(node.text, -1) {
				if strings.TrimSpace(m[2]) == "" {
					t.Errorf("%s has no help text", m[1])
				}
				withHelp[m[1]] = true
			}
			for f := range types {
				if !withHelp[f] {
					t.Errorf("%s has no # HELP line", f)
				}
			}
			if types["certmesh_sync_delay_seconds"] != "histogram" && node.name == "router" {
				t.Errorf("certmesh_sync_delay_seconds typed %q", types["certmesh_sync_delay_seconds"])
			}
			if err != nil {
				t.Skip("promtool not installed (Debian's prometheus package has it; .ci/run installs it): TYPE and HELP checked, promtool check metrics not run")
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(node.text)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool check metrics: %v\n%s", err, out)
			}
		})
	}
}

// metricNames returns the certmesh_ metric names in text.
func metricNames(text string) []string {
	return regexp.MustCompile(`\bcertmesh_[a-z0-9_]+`).FindAllString(text, -1)
}

// dashboardQueries returns every PromQL query of the Grafana dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Title  string  `json:"title"`
		UID    string  `json:"uid"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has a target without a query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// alertQueries returns every rule expression of alerts.yml.
func alertQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// TestEveryNamedMetricExists checks that every metric the alerting rules,
// the dashboard, the README and the docs name is exported by a running
// controller or router: a renamed metric cannot leave a dead alert or an
// empty panel behind.
func TestEveryNamedMetricExists(t *testing.T) {
	s := scrape(t)
	_, ctrl := families(s.controller)
	_, router := families(s.router)
	sources := map[string]string{}
	add := func(where, text string) {
		for _, n := range metricNames(text) {
			if _, ok := sources[n]; !ok {
				sources[n] = where
			}
		}
	}
	add("alerts.yml", strings.Join(alertQueries(t), "\n"))
	add("grafana-dashboard.json", strings.Join(dashboardQueries(t), "\n"))
	docs, _ := filepath.Glob("../docs/*.md")
	for _, f := range append(docs, "../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add(f, string(b))
	}
	if len(sources) < 10 {
		t.Fatalf("only %d metric names found: %v", len(sources), sources)
	}
	var missing []string
	for n, where := range sources {
		if !ctrl[n] && !router[n] {
			missing = append(missing, fmt.Sprintf("%s (named in %s)", n, where))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics named but exported by neither a controller nor a router:\n%s", strings.Join(missing, "\n"))
	}
}

// TestDashboardAndAlertQueriesParse runs promtool on every query of the
// dashboard and the alerting rules, as recording rules of a temporary
// rules file (promtool has no command for a bare expression).
func TestDashboardAndAlertQueriesParse(t *testing.T) {
	exprs := append(dashboardQueries(t), alertQueries(t)...)
	if len(exprs) < 10 {
		t.Fatalf("only %d queries", len(exprs))
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package has it; .ci/run installs it): queries not parsed")
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("certmesh:query:%d", i), Expr: e})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "queries", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s\n%s", err, out, b)
	}
}

// TestScrapeConfig checks the Prometheus scrape configuration: its job is
// the one the alerts name, it scrapes every example node's metrics.listen
// and nothing else, and promtool accepts it (with alerts.yml).
func TestScrapeConfig(t *testing.T) {
	raw, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "certmesh" {
		t.Fatalf("want one job named certmesh (alerts.yml's up{job=\"certmesh\"}): %+v", cfg.ScrapeConfigs)
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v lacks alerts.yml", cfg.RuleFiles)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs[0].StaticConfigs {
		targets = append(targets, sc.Targets...)
	}
	var want []string
	files, _ := filepath.Glob("examples/*.yaml")
	for _, f := range files {
		var listen string
		if strings.HasPrefix(filepath.Base(f), "ctrl-") {
			c := config.DefaultController()
			if err := config.Load(&c, config.Loader{File: f, LookupEnv: noEnv}); err != nil {
				t.Fatal(err)
			}
			listen = c.Metrics.Listen
		} else {
			r := config.DefaultRouter()
			if err := config.Load(&r, config.Loader{File: f, LookupEnv: noEnv}); err != nil {
				t.Fatal(err)
			}
			listen = r.Metrics.Listen
		}
		want = append(want, listen)
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) || len(want) != 6 {
		t.Errorf("scrape targets %v, want the examples' metrics.listen %v", targets, want)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package has it; .ci/run installs it): promtool check config not run")
	}
	var out bytes.Buffer
	cmd := exec.Command(promtool, "check", "config", "prometheus.yml")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out.String())
	}
}
