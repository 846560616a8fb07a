package docs

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/internal/refdoc"
)

// startCluster runs a development cluster (one controller and router per
// region) and walks a client through it, so that the series made on first
// use (API requests, members, pulls) exist.
func startCluster(t *testing.T) *devcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cl, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), RoutersPerRegion: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.Walk(ctx, io.Discard); err != nil {
		t.Fatalf("walk: %v", err)
	}
	return cl
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// operatorRoutes are served by every node's metrics listener (api.Operator).
var operatorRoutes = []string{api.PathHealthz, api.PathReadyz, api.PathMetrics, api.PathStatus}

func TestReferenceLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a development cluster")
	}
	cl := startCluster(t)
	ctrl, rtr := cl.Controllers[0], cl.Routers[0]

	t.Run("routes", func(t *testing.T) {
		tab := refdoc.Table{Header: []string{"route", "auth", "answers"}, Hand: map[int]bool{1: true, 2: true}}
		for _, r := range ctrl.Routes() {
			tab.Rows = append(tab.Rows, []string{refdoc.Code(r), "", ""})
		}
		refdoc.Check(t, filepath.Join("reference", "http-api.md"), "api-routes", tab, *update, regen)

		tab = refdoc.Table{Header: []string{"route", "answers"}, Hand: map[int]bool{1: true}}
		for _, p := range operatorRoutes {
			for _, addr := range []string{ctrl.MetricsAddr(), rtr.MetricsAddr().String()} {
				if code, body := get(t, "http://"+addr+p); code == http.StatusNotFound {
					t.Errorf("GET %s on %s: 404 %s", p, addr, body)
				}
			}
			tab.Rows = append(tab.Rows, []string{refdoc.Code("GET " + p), ""})
		}
		refdoc.Check(t, filepath.Join("reference", "http-api.md"), "operator-routes", tab, *update, regen)
	})

	t.Run("metrics", func(t *testing.T) {
		_, ctext := get(t, "http://"+ctrl.MetricsAddr()+api.PathMetrics)
		_, rtext := get(t, "http://"+rtr.MetricsAddr().String()+api.PathMetrics)
		cfam, rfam := families(ctext), families(rtext)
		names := map[string]bool{}
		for n := range cfam {
			names[n] = true
		}
		for n := range rfam {
			names[n] = true
		}
		var sorted []string
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		tab := refdoc.Table{Header: []string{"metric", "type", "labels", "on", "meaning"}, Hand: map[int]bool{4: true}}
		for _, n := range sorted {
			f := cfam[n]
			on := "controller, router"
			switch {
			case cfam[n] == nil:
				f, on = rfam[n], "router"
			case rfam[n] == nil:
				on = "controller"
			default:
				f.merge(rfam[n])
			}
			tab.Rows = append(tab.Rows, []string{refdoc.Code(n), f.typ, f.labelList(), on, f.help})
		}
		refdoc.Check(t, filepath.Join("reference", "metrics.md"), "metrics", tab, *update, regen)
	})
}

// family is one metric family of a Prometheus text exposition.
type family struct {
	typ, help string
	labels    map[string]bool
}

func (f *family) merge(o *family) {
	for l := range o.labels {
		f.labels[l] = true
	}
	if f.help == "" {
		f.help = o.help
	}
}

func (f *family) labelList() string {
	var ls []string
	for l := range f.labels {
		ls = append(ls, refdoc.Code(l))
	}
	sort.Strings(ls)
	return strings.Join(ls, ", ")
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? `)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)

// families reads the certmesh_ metric families of a Prometheus text
// exposition: their type (from # TYPE, else from the series' shape), label
// names and help (from # HELP, if the exposition has it).
func families(text string) map[string]*family {
	out := map[string]*family{}
	help, typ := map[string]string{}, map[string]string{}
	buckets := map[string]bool{}
	type sample struct{ name, labels string }
	var samples []sample
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			n, h, _ := strings.Cut(rest, " ")
			help[n] = h
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			n, ty, _ := strings.Cut(rest, " ")
			typ[n] = ty
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "certmesh_") {
			continue
		}
		samples = append(samples, sample{m[1], m[2]})
		if base, ok := strings.CutSuffix(m[1], "_bucket"); ok && strings.Contains(m[2], `le="`) {
			buckets[base] = true
		}
	}
	for _, s := range samples {
		name := s.name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && buckets[base] {
				name = base
			}
		}
		f := out[name]
		if f == nil {
			f = &family{labels: map[string]bool{}, help: help[name], typ: typ[name]}
			if f.typ == "" {
				switch {
				case buckets[name]:
					f.typ = "histogram"
				case strings.HasSuffix(name, "_total"):
					f.typ = "counter"
				default:
					f.typ = "gauge"
				}
			}
			out[name] = f
		}
		for _, l := range labelRE.FindAllStringSubmatch(s.labels, -1) {
			if l[1] != "le" && l[1] != "vmrange" {
				f.labels[l[1]] = true
			}
		}
	}
	return out
}
