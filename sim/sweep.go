package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// A sweep runs a grid of settings (the cartesian product of each swept
// key's values) over a range of seeds, every strategy at every point, and
// aggregates each metric over the seeds: mean, a 95% confidence interval
// of the mean (Student's t), min and max. meshsim --sweep and --seeds
// build it (cmd/meshsim/sweep.go); this file holds what it reports.

// SweepReport is the JSON of a sweep: its design, the aggregates by point
// and strategy, and every run's report.
type SweepReport struct {
	Topology string       `json:"topology"`
	Mode     string       `json:"mode"`
	Sweep    SweepDesign  `json:"sweep"`
	Points   []SweepPoint `json:"points"`
	Runs     []SweepRun   `json:"runs"`
	Machine  Machine      `json:"machine"`
	// Provenance is that of the sweep as a whole: its settings are the
	// base, before each point's values.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// SweepDesign is what was swept.
type SweepDesign struct {
	Keys       []string   `json:"keys"`   // swept settings, in flag order
	Values     [][]string `json:"values"` // each key's values, in order
	Seeds      []int64    `json:"seeds"`
	Strategies []string   `json:"strategies"`
	// Confidence is the level of the intervals, 0.95.
	Confidence float64 `json:"confidence"`
}

// SweepPoint is one strategy at one point of the grid, over the seeds.
type SweepPoint struct {
	Settings map[string]string  `json:"settings"` // the swept keys' values
	Label    string             `json:"label"`    // key=value,... in key order; "" without --sweep
	Strategy string             `json:"strategy"`
	Seeds    int                `json:"seeds"`
	Metrics  map[string]Summary `json:"metrics"`
	// EndToEndCDF is the seeds' end-to-end delay CDFs averaged by rank
	// (the mean of their quantiles at each fraction), PhysicalCDF the
	// same of the physical bound; for plots.
	EndToEndCDF []CDFPoint `json:"-"`
	PhysicalCDF []CDFPoint `json:"-"`
}

// SweepRun is one run of a sweep: a point, a seed, its report.
type SweepRun struct {
	Settings map[string]string `json:"settings"`
	Seed     int64             `json:"seed"`
	Report   *Report           `json:"report"`
}

// Summary aggregates a metric over seeds.
type Summary struct {
	Mean float64 `json:"mean"`
	// CILow and CIHigh bound the 95% confidence interval of the mean:
	// mean ± t(0.975, n-1) · sd / √n; equal to the mean for one seed.
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
	SD     float64 `json:"sd"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// sweepMetrics are the metrics a sweep aggregates, by their report names.
var sweepMetrics = []struct {
	Name string
	Get  func(*Result) float64
}{
	{"end_to_end_ms.p50", func(r *Result) float64 { return r.EndToEndMs.P50 }},
	{"end_to_end_ms.p90", func(r *Result) float64 { return r.EndToEndMs.P90 }},
	{"end_to_end_ms.p99", func(r *Result) float64 { return r.EndToEndMs.P99 }},
	{"end_to_end_ms.max", func(r *Result) float64 { return r.EndToEndMs.Max }},
	{"end_to_end_stretch_physical.p99", func(r *Result) float64 {
		if r.EndToEndStretchPhysical == nil {
			return math.NaN()
		}
		return r.EndToEndStretchPhysical.P99
	}},
	{"physical_ms.p99", func(r *Result) float64 {
		if r.PhysicalMs == nil {
			return math.NaN()
		}
		return r.PhysicalMs.P99
	}},
	{"sync_delay_ms.p50", func(r *Result) float64 { return r.SyncDelayMs.P50 }},
	{"sync_delay_ms.p99", func(r *Result) float64 { return r.SyncDelayMs.P99 }},
	{"excess_ms.p99", func(r *Result) float64 { return r.ExcessMs.P99 }},
	{"catch_up_ms.p99", func(r *Result) float64 { return r.CatchUpMs.P99 }},
	{"issue_latency_ms.p99", func(r *Result) float64 { return r.IssueLatencyMs.P99 }},
	{"convergence_after_last_fault_ms", func(r *Result) float64 { return r.ConvergenceAfterLastFaultMs }},
	{"bytes_per_event_per_node", func(r *Result) float64 { return r.BytesPerEventPerNode }},
	{"bytes_sent_per_event_per_node", func(r *Result) float64 { return r.BytesSentPerEventPerNode }},
	{"messages_per_event_per_node", func(r *Result) float64 { return r.MessagesPerEventPerNode }},
	{"writes_unavailable", func(r *Result) float64 { return float64(r.WritesUnavailable) }},
	{"refused_requests", func(r *Result) float64 { return float64(r.RefusedRequests) }},
	{"undelivered", func(r *Result) float64 { return float64(r.Undelivered) }},
	{"false_rejects", func(r *Result) float64 { return float64(r.FalseRejects) }},
	{"revoked_accepts", func(r *Result) float64 { return float64(r.RevokedAccepts) }},
	{"converged", func(r *Result) float64 {
		if r.Converged {
			return 1
		}
		return 0
	}},
}

// HasSweepMetric reports whether name is one of sweepMetrics.
func HasSweepMetric(name string) bool {
	for _, m := range sweepMetrics {
		if m.Name == name {
			return true
		}
	}
	return false
}

// SweepMetricNames lists sweepMetrics' names.
func SweepMetricNames() string {
	var names []string
	for _, m := range sweepMetrics {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

// tQuantile975 is Student's t at 0.975 by degrees of freedom (1 to 30);
// beyond, the normal 1.96 is within 2%.
var tQuantile975 = []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}

// summarize aggregates values over seeds; NaNs (metrics a run lacks) are
// left out, and all NaN gives a NaN summary.
func summarize(values []float64) Summary {
	var xs []float64
	for _, v := range values {
		if !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	n := len(xs)
	if n == 0 {
		nan := math.NaN()
		return Summary{nan, nan, nan, nan, nan, nan}
	}
	s := Summary{Min: xs[0], Max: xs[0]}
	for _, x := range xs {
		s.Mean += x
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	s.Mean /= float64(n)
	if n > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(ss / float64(n-1))
	}
	t := 1.96
	if n-1 < len(tQuantile975) {
		t = tQuantile975[n-1]
	}
	half := t * s.SD / math.Sqrt(float64(n))
	s.CILow, s.CIHigh = s.Mean-half, s.Mean+half
	for _, p := range []*float64{&s.Mean, &s.CILow, &s.CIHigh, &s.SD, &s.Min, &s.Max} {
		*p = round(*p)
	}
	return s
}

// NewSweepPoint aggregates one strategy's results at one point.
func NewSweepPoint(settings map[string]string, label, strategy string, results []*Result) SweepPoint {
	p := SweepPoint{Settings: settings, Label: label, Strategy: strategy, Seeds: len(results), Metrics: map[string]Summary{}}
	for _, m := range sweepMetrics {
		vals := make([]float64, len(results))
		for i, r := range results {
			vals[i] = m.Get(r)
		}
		if s := summarize(vals); !math.IsNaN(s.Mean) {
			p.Metrics[m.Name] = s
		}
	}
	var e2e, phys [][]CDFPoint
	for _, r := range results {
		e2e = append(e2e, r.EndToEndCDF)
		if r.PhysicalCDF != nil {
			phys = append(phys, r.PhysicalCDF)
		}
	}
	p.EndToEndCDF = averageCDF(e2e, cdfPoints)
	p.PhysicalCDF = averageCDF(phys, cdfPoints)
	return p
}

// averageCDF averages CDFs by rank: at each of points fractions, the mean
// of every CDF's quantile there.
func averageCDF(cdfs [][]CDFPoint, points int) []CDFPoint {
	var nonEmpty [][]CDFPoint
	for _, c := range cdfs {
		if len(c) > 0 {
			nonEmpty = append(nonEmpty, c)
		}
	}
	if len(nonEmpty) == 0 {
		return nil
	}
	out := make([]CDFPoint, 0, points)
	idx := make([]int, len(nonEmpty))
	for i := 1; i <= points; i++ {
		f := float64(i) / float64(points)
		sum := 0.0
		for j, c := range nonEmpty {
			for idx[j] < len(c)-1 && c[idx[j]].Frac < f-1e-12 {
				idx[j]++
			}
			sum += c[idx[j]].Ms
		}
		out = append(out, CDFPoint{Ms: sum / float64(len(nonEmpty)), Frac: f})
	}
	return out
}

// WriteJSON writes the sweep report as indented JSON.
func (s *SweepReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable writes one row per point and strategy: the mean and 95%
// confidence interval over the seeds of the headline metrics.
func (s *SweepReport) WriteTable(w io.Writer) error {
	d := s.Sweep
	seeds := fmt.Sprint(d.Seeds[0])
	if n := len(d.Seeds); n > 1 {
		seeds = fmt.Sprintf("%d-%d", d.Seeds[0], d.Seeds[n-1])
	}
	if _, err := fmt.Fprintf(w, "%s (seeds %s, %s mode): mean [95%% CI] over %d seeds\n", s.Topology, seeds, s.Mode, len(d.Seeds)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"setting", "strategy", "e2e p50", "e2e p99", "e2e/light p99", "sync p99", "catch-up p99",
		"B/ev/node", "sent", "undeliv", "conv"}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, p := range s.Points {
		label := p.Label
		if label == "" {
			label = "-"
		}
		ci := func(name string) string {
			m, ok := p.Metrics[name]
			if !ok {
				return "n/a"
			}
			if len(d.Seeds) == 1 {
				return ms(m.Mean)
			}
			return fmt.Sprintf("%s [%s, %s]", ms(m.Mean), ms(m.CILow), ms(m.CIHigh))
		}
		mean := func(name, format string) string {
			m, ok := p.Metrics[name]
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf(format, m.Mean)
		}
		row := []string{label, p.Strategy, ci("end_to_end_ms.p50"), ci("end_to_end_ms.p99"),
			mean("end_to_end_stretch_physical.p99", "%.2f"), ci("sync_delay_ms.p99"), ci("catch_up_ms.p99"),
			mean("bytes_per_event_per_node", "%.0f"), mean("bytes_sent_per_event_per_node", "%.0f"),
			mean("undelivered", "%g"), mean("converged", "%.2f")}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "times in ms; e2e: request reaching a controller to enforceable at the router; light: light in fibre; conv: fraction of seeds converged")
	return err
}
