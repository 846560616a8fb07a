package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/sim"
)

// maxSeeds and maxSweepRuns bound what one command may ask for.
const (
	maxSeeds     = 1000
	maxSweepRuns = 100000
)

// sweepAxis is one --sweep key and its values.
type sweepAxis struct {
	key    string
	values []string
}

// parseSweep reads a --sweep KEY=V1,V2,...
func parseSweep(s string) (sweepAxis, error) {
	o, err := parseOverride("--sweep", s)
	if err != nil {
		return sweepAxis{}, err
	}
	var vals []string
	for _, v := range strings.Split(o.value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return sweepAxis{}, usagef("--sweep %s: empty value in %q", o.key, o.value)
		}
		if slices.Contains(vals, v) {
			return sweepAxis{}, usagef("--sweep %s: %s is listed twice", o.key, v)
		}
		vals = append(vals, v)
	}
	return sweepAxis{o.key, vals}, nil
}

// parseSeeds reads --seeds: N (N seeds from base), A..B, or a comma list.
func parseSeeds(s string, base int64) ([]int64, error) {
	bad := usagef("--seeds: %q is not a count (10), a range (1..10) or a list (1,5,9)", s)
	var seeds []int64
	switch {
	case strings.Contains(s, ".."):
		a, b, _ := strings.Cut(s, "..")
		lo, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		hi, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err1 != nil || err2 != nil || hi < lo {
			return nil, bad
		}
		if hi-lo >= maxSeeds {
			return nil, usagef("--seeds: %d seeds, more than %d", hi-lo+1, maxSeeds)
		}
		for v := lo; v <= hi; v++ {
			seeds = append(seeds, v)
		}
	case strings.Contains(s, ","):
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || slices.Contains(seeds, v) {
				return nil, bad
			}
			seeds = append(seeds, v)
		}
	default:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, bad
		}
		if n > maxSeeds {
			return nil, usagef("--seeds: %d seeds, more than %d", n, maxSeeds)
		}
		for i := range n {
			seeds = append(seeds, base+int64(i))
		}
	}
	if len(seeds) > maxSeeds {
		return nil, usagef("--seeds: %d seeds, more than %d", len(seeds), maxSeeds)
	}
	return seeds, nil
}

// sweepPlan is a sweep to run: the base topology and parameters (--set
// applied), the grid and the seeds.
type sweepPlan struct {
	top        *sim.Topology
	params     sim.Params
	axes       []sweepAxis
	seeds      []int64
	strategies []string
	workers    int
	jobs       int
	progress   io.Writer // nil: quiet
}

// point is one combination of the grid's values.
type point struct {
	ovs   []override
	label string
	top   *sim.Topology
	par   sim.Params
}

// points returns the grid's points, the first axis outermost, each with
// its topology and parameters; an invalid combination is a usage error.
func (p *sweepPlan) points() ([]point, error) {
	pts := []point{{}}
	for _, ax := range p.axes {
		var next []point
		for _, pt := range pts {
			for _, v := range ax.values {
				next = append(next, point{ovs: append(slices.Clone(pt.ovs), override{ax.key, v})})
			}
		}
		pts = next
	}
	for i := range pts {
		t, par, err := applyOverrides("--sweep", p.top, p.params, pts[i].ovs)
		if err != nil {
			return nil, err
		}
		pts[i].top, pts[i].par, pts[i].label = t, par, describe(pts[i].ovs)
	}
	return pts, nil
}

// run runs every (point, seed, strategy), jobs at a time, and aggregates.
func (p *sweepPlan) run() (*sim.SweepReport, error) {
	pts, err := p.points()
	if err != nil {
		return nil, err
	}
	if n := len(pts) * len(p.seeds) * len(p.strategies); n > maxSweepRuns {
		return nil, usagef("--sweep: %d runs, more than %d", n, maxSweepRuns)
	}
	type job struct{ pt, seed, strat int }
	var jobs []job
	for i := range pts {
		for j := range p.seeds {
			for k := range p.strategies {
				jobs = append(jobs, job{i, j, k})
			}
		}
	}
	results := make([]*sim.Result, len(jobs))
	errs := make([]error, len(jobs))
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range max(1, p.jobs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				jb := jobs[i]
				cfg := sim.DefaultConfig()
				cfg.Seed = p.seeds[jb.seed]
				cfg.Workers = p.workers
				cfg.Params = pts[jb.pt].par
				results[i], errs[i] = sim.Run(pts[jb.pt].top, p.strategies[jb.strat], cfg)
				if p.progress != nil {
					mu.Lock()
					done++
					fmt.Fprintf(p.progress, "\r\033[Krun %d/%d: %s seed %d %s", done, len(jobs),
						pts[jb.pt].label, p.seeds[jb.seed], p.strategies[jb.strat])
					mu.Unlock()
				}
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if p.progress != nil {
		fmt.Fprint(p.progress, "\r\033[K")
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	rep := &sim.SweepReport{Topology: p.top.Name, Mode: "model", Sweep: sim.SweepDesign{
		Seeds: p.seeds, Strategies: p.strategies, Confidence: 0.95,
	}}
	for _, ax := range p.axes {
		rep.Sweep.Keys = append(rep.Sweep.Keys, ax.key)
		rep.Sweep.Values = append(rep.Sweep.Values, ax.values)
	}
	var all []*sim.Result
	for i, pt := range pts {
		settings := map[string]string{}
		for _, o := range pt.ovs {
			settings[o.key] = o.value
		}
		for j, seed := range p.seeds {
			base := (i*len(p.seeds) + j) * len(p.strategies)
			runRep := sim.NewReport(pt.top, seed, "model", results[base:base+len(p.strategies)])
			runRep.Machine = sim.Machine{} // the sweep's machine figures are at its top level
			rep.Runs = append(rep.Runs, sim.SweepRun{Settings: settings, Seed: seed, Report: runRep})
		}
		for k, strat := range p.strategies {
			var rs []*sim.Result
			for j := range p.seeds {
				rs = append(rs, results[(i*len(p.seeds)+j)*len(p.strategies)+k])
			}
			rep.Points = append(rep.Points, sim.NewSweepPoint(settings, pt.label, strat, rs))
		}
	}
	for _, r := range results {
		all = append(all, r)
	}
	m := sim.NewReport(p.top, 0, "model", all).Machine
	m.Workers = p.workers
	rep.Machine = m
	return rep, nil
}

// exportFormat returns the export format a file name asks for.
func exportFormat(flag, path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return sim.ExportCSV, nil
	case ".jsonl", ".ndjson":
		return sim.ExportJSONL, nil
	}
	return "", usagef("%s: %q must end in .csv or .jsonl", flag, path)
}

// sweepRows returns the export rows of every run of a sweep.
func sweepRows(rep *sim.SweepReport) []sim.ExportRow {
	var rows []sim.ExportRow
	for _, r := range rep.Runs {
		var parts []string
		for _, k := range rep.Sweep.Keys {
			parts = append(parts, k+"="+r.Settings[k])
		}
		rows = append(rows, sim.ExportRows(r.Report, strings.Join(parts, ","))...)
	}
	return rows
}

// sweepInputs are what action has parsed and checked for a sweep.
type sweepInputs struct {
	top          *sim.Topology
	params       sim.Params
	sets         []override
	strategies   []string
	mode         string
	seed         int64
	workers      int
	exportFmt    string
	showProgress bool
}

// sweep runs --sweep and --seeds: the grid times the seeds, every
// strategy, then the table, JSON, plots and export of the aggregate.
func sweep(c *cli.Context, args []string, stdout, stderr io.Writer, in sweepInputs) error {
	if in.mode != "model" {
		return usagef("--sweep and --seeds: model mode only (a live run is neither deterministic nor fast)")
	}
	plan := &sweepPlan{top: in.top, params: in.params, strategies: in.strategies, workers: in.workers, jobs: c.Int("jobs"),
		seeds: []int64{in.seed}}
	if plan.jobs < 1 {
		return usagef("--jobs: %d must be at least 1", plan.jobs)
	}
	if c.IsSet("seeds") {
		seeds, err := parseSeeds(c.String("seeds"), in.seed)
		if err != nil {
			return err
		}
		plan.seeds = seeds
	}
	for _, s := range c.StringSlice("sweep") {
		ax, err := parseSweep(s)
		if err != nil {
			return err
		}
		if err := checkApplies("--sweep", ax.key, in.strategies, in.mode); err != nil {
			return err
		}
		for _, a := range plan.axes {
			if a.key == ax.key {
				return usagef("--sweep %s: swept twice", ax.key)
			}
		}
		for _, o := range in.sets {
			if o.key == ax.key {
				return usagef("--sweep %s: also given by --set", ax.key)
			}
		}
		plan.axes = append(plan.axes, ax)
	}
	metric := c.String("plot-metric")
	if !sim.HasSweepMetric(metric) {
		return usagef("--plot-metric: unknown metric %q (metrics: %s)", metric, sim.SweepMetricNames())
	}
	if c.String("plot") != "" && len(plan.axes) == 0 {
		return usagef("--plot: with --seeds alone there is no setting to plot against; use --plot-cdf, or --sweep")
	}
	if in.showProgress {
		plan.progress = stderr
	}
	rep, err := plan.run()
	if err != nil {
		return err
	}
	rep.Provenance = provenance(c, args, in.top, in.params, in.sets)

	table := stdout
	if jsonPath := c.String("json"); jsonPath == "-" {
		table = stderr
		if err := rep.WriteJSON(stdout); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	} else if jsonPath != "" {
		if err := writeFile(jsonPath, rep.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if path := c.String("plot"); path != "" {
		if err := writeFile(path, func(w io.Writer) error { return rep.WriteMetricPlot(w, metric) }); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if path := c.String("plot-cdf"); path != "" {
		if err := writeFile(path, rep.WriteCDFPlot); err != nil {
			return fmt.Errorf("--plot-cdf: %w", err)
		}
	}
	if path := c.String("export"); path != "" {
		rows := sweepRows(rep)
		if err := writeFile(path, func(w io.Writer) error { return sim.WriteExport(w, in.exportFmt, rows) }); err != nil {
			return fmt.Errorf("--export: %w", err)
		}
	}
	return rep.WriteTable(table)
}
