// Command meshsim runs certmesh's latency experiments (docs/meshsim.md,
// docs/meshsim-model.md): a topology and workload file (or the built-in
// default topology), settings from the file and --set, one run per strategy
// (or a sweep over settings and seeds), a table on stdout, and optionally
// the JSON report, SVG charts of the end-to-end delay and CSV/JSONL exports.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration;
// errors are one line on stderr naming the file, field or flag at fault.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/internal/version"
	"github.com/certmesh/certmesh/sim"
	"github.com/certmesh/certmesh/sim/live"
)

// usageError marks errors that exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main with its streams and exit code, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(args, stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "meshsim: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newApp builds the command; args are the arguments it will run with, for
// the report's provenance.
func newApp(args []string, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "meshsim",
		Usage: "simulate certmesh's dissemination against baselines and report sync delays",
		Description: "With no flags, runs the built-in default topology (3 regions, 1 controller and 100 routers each,\n" +
			"50 events/s for 60s) with the strategies mesh and gossip, and prints a table.",
		Version:         version.String(),
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true, // meshsim has no commands to ask about
		// --set and --sweep values hold commas (--sweep loss=1%,5%).
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "topology", Usage: "topology and workload `FILE` (docs/meshsim-model.md); default: the built-in topology"},
			&cli.StringFlag{Name: "strategy", Value: "mesh,gossip", Usage: "comma `LIST` of mesh, gossip, raft"},
			&cli.StringFlag{Name: "mode", Value: "model", Usage: "model (deterministic virtual time) or live (real memberlist meshes over the simulated network, wall clock; mesh strategy only)"},
			&cli.Int64Flag{Name: "seed", Usage: "seed `N`; overrides the topology's seed"},
			&cli.StringFlag{Name: "json", Usage: "write the report to `FILE`; - for stdout (the table then goes to stderr)"},
			&cli.StringFlag{Name: "plot", Usage: "write an SVG chart of the sync delay CDFs to `FILE.svg`"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress bar (it is only shown when stderr is a terminal)"},
			&cli.IntFlag{Name: "workers", Usage: "goroutines that step the simulated nodes of the mesh strategy in model mode (default: one per CPU); the report does not depend on it"},
			&cli.IntFlag{Name: "eager-trees", Value: 2, Usage: "`N` of the mesh strategy's two region trees that carry the records, in model mode: 2, or 1 for a lazy second tree (as --set mesh.eager_trees=N)"},
			&cli.StringSliceFlag{Name: "set", Usage: "override a setting, `KEY=VALUE` (repeatable): loss=5%, mesh.fanout=8, raft.reconnect=etcd; --list-settings lists them"},
			&cli.StringSliceFlag{Name: "sweep", Usage: "run every value of a setting, `KEY=V1,V2,...` (repeatable: the grid of all combinations), and aggregate over --seeds"},
			&cli.StringFlag{Name: "seeds", Usage: "run each point with several seeds: `N` (from --seed or the topology's), A..B, or a list A,B,C; the table and JSON give means with 95% confidence intervals"},
			&cli.IntFlag{Name: "jobs", Value: 1, Usage: "with --sweep or --seeds, `N` runs at once (each mesh run already uses every core)"},
			&cli.StringFlag{Name: "plot-cdf", Usage: "with --sweep or --seeds, write the overlay of end-to-end CDFs (seed-averaged), one per point and strategy, to `FILE.svg`"},
			&cli.StringFlag{Name: "plot-metric", Value: "end_to_end_ms.p99", Usage: "with --sweep, the `METRIC` that --plot draws against the first swept setting"},
			&cli.StringFlag{Name: "export", Usage: "write CDF points, per region pair figures and counters of every run to `FILE.csv` or FILE.jsonl"},
			&cli.BoolFlag{Name: "list-settings", Usage: "list every setting --set and a topology's parameters section take, with its default, and exit"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the exit code
		Action: func(c *cli.Context) error {
			return action(c, args, stdout, stderr)
		},
	}
}

func action(c *cli.Context, args []string, stdout, stderr io.Writer) error {
	if c.Bool("list-settings") {
		return listSettings(stdout)
	}
	if c.NArg() > 0 {
		return usagef("unexpected argument %q (meshsim takes only flags; see --help)", c.Args().First())
	}
	mode := c.String("mode")
	if mode != "model" && mode != "live" {
		return usagef("--mode: %q is neither model nor live", mode)
	}
	strategies, err := parseStrategies(c.String("strategy"))
	if err != nil {
		return err
	}
	if mode == "live" {
		// Live mode runs certmesh's own protocol over real memberlist
		// meshes; the baselines exist only in the model.
		if c.IsSet("strategy") && !slices.Equal(strategies, []string{"mesh"}) {
			return usagef("--strategy: --mode live runs only the mesh strategy (real memberlist meshes), not %s",
				strings.Join(strategies, ","))
		}
		strategies = []string{"mesh"}
	}
	top := sim.DefaultTopology()
	if path := c.String("topology"); path != "" {
		if top, err = sim.LoadTopology(path); err != nil {
			return usageError{err}
		}
	}
	var sets []override
	for _, s := range c.StringSlice("set") {
		o, err := parseOverride("--set", s)
		if err != nil {
			return err
		}
		if err := checkApplies("--set", o.key, strategies, mode); err != nil {
			return err
		}
		sets = append(sets, o)
	}
	if c.IsSet("eager-trees") && !slices.Contains(strategies, "mesh") {
		return usagef("--eager-trees: applies to the mesh strategy, which --strategy %s does not run", strings.Join(strategies, ","))
	}
	params := top.Params
	if top, params, err = applyOverrides("--set", top, params, sets); err != nil {
		return err
	}
	if mode == "live" {
		if err := live.Supports(top); err != nil {
			return usageError{err}
		}
	}
	seed := top.Seed
	if c.IsSet("seed") {
		seed = c.Int64("seed")
	}
	jsonPath, plotPath := c.String("json"), c.String("plot")
	for _, f := range []string{"plot", "plot-cdf"} {
		if err := checkSVGPath("--"+f, c.String(f)); err != nil {
			return err
		}
	}
	showProgress := !c.Bool("quiet") && isTerminal(os.Stderr)
	workers := c.Int("workers")
	if workers < 0 {
		return usagef("--workers: %d is negative", workers)
	}
	eager := c.Int("eager-trees")
	if eager != 1 && eager != 2 {
		return usagef("--eager-trees: %d is neither 1 nor 2", eager)
	}
	if eager != 2 && mode == "live" {
		return usagef("--eager-trees: model mode only")
	}
	if c.IsSet("eager-trees") {
		params.Mesh.EagerTrees = eager
		if err := params.Validate(top); err != nil {
			return usagef("--eager-trees: %w", err)
		}
	}

	exportPath := c.String("export")
	var exportFmt string
	if exportPath != "" {
		if exportFmt, err = exportFormat("--export", exportPath); err != nil {
			return err
		}
	}
	if c.IsSet("sweep") || c.IsSet("seeds") {
		return sweep(c, args, stdout, stderr, sweepInputs{top: top, params: params, sets: sets, strategies: strategies,
			mode: mode, seed: seed, workers: workers, exportFmt: exportFmt, showProgress: showProgress})
	}
	for _, f := range []string{"plot-cdf", "jobs"} {
		if c.IsSet(f) {
			return usagef("--%s: needs --sweep or --seeds", f)
		}
	}
	var results []*sim.Result
	for _, name := range strategies {
		cfg := sim.DefaultConfig()
		cfg.Seed = seed
		cfg.Workers = workers
		cfg.Params = params
		if showProgress {
			cfg.Progress = newProgress(stderr, name, cfg.MaxDrain)
		}
		var res *sim.Result
		if mode == "live" {
			lc := live.DefaultConfig()
			lc.Config = cfg
			// Warnings only: the machine could not keep the latency model.
			lc.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			res, err = live.Run(top, lc)
		} else {
			res, err = sim.Run(top, name, cfg)
		}
		if showProgress {
			fmt.Fprint(stderr, "\r\033[K")
		}
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	rep := sim.NewReport(top, seed, mode, results)
	rep.Machine.Workers = workers
	rep.Provenance = provenance(c, args, top, params, sets)

	table := stdout
	if jsonPath == "-" {
		table = stderr
		if err := rep.WriteJSON(stdout); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	} else if jsonPath != "" {
		if err := writeFile(jsonPath, rep.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if plotPath != "" {
		if err := writeFile(plotPath, rep.WritePlot); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if exportPath != "" {
		rows := sim.ExportRows(rep, "")
		if err := writeFile(exportPath, func(w io.Writer) error { return sim.WriteExport(w, exportFmt, rows) }); err != nil {
			return fmt.Errorf("--export: %w", err)
		}
	}
	return rep.WriteTable(table)
}

// provenance says how a run was made: the code, the topology as read, the
// settings and the arguments that shape the result.
func provenance(c *cli.Context, args []string, top *sim.Topology, params sim.Params, sets []override) *sim.Provenance {
	source := top.Source
	if c.String("topology") == "" {
		source = sim.DefaultTopologyYAML()
	}
	var set []string
	for _, o := range sets {
		set = append(set, o.key+"="+o.value)
	}
	return sim.NewProvenance(commit(), c.String("topology"), source, resultArgs(args[1:]), set,
		sim.SettingValues(&params, top))
}

// parseStrategies checks a --strategy list against the registered ones.
func parseStrategies(list string) ([]string, error) {
	var names []string
	available := sim.Strategies()
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case slices.Contains(names, name):
			return nil, usagef("--strategy: %s is listed twice", name)
		case slices.Contains(available, name):
			names = append(names, name)
		default:
			return nil, usagef("--strategy: unknown strategy %q (available: %s)", name, strings.Join(available, ", "))
		}
	}
	if len(names) == 0 {
		return nil, usagef("--strategy: empty list")
	}
	return names, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// checkSVGPath refuses an output path that is not an .svg file: the
// charts are SVG, and SVG written into chart.png opens nowhere.
func checkSVGPath(flag, path string) error {
	switch {
	case path == "":
		return nil
	case path == "-":
		return usagef("%s: give a file name", flag)
	case !strings.EqualFold(filepath.Ext(path), ".svg"):
		return usagef("%s: %s: meshsim draws SVG only; name the file .svg (convert it with rsvg-convert or inkscape for another format)", flag, path)
	}
	return nil
}

// newProgress returns a Progress callback drawing a progress line on w
// once a run has taken a second, redrawn at most ten times a second.
func newProgress(w io.Writer, name string, maxDrain time.Duration) func(now, end time.Duration) {
	began := time.Now()
	var last time.Time
	return func(now, end time.Duration) {
		t := time.Now()
		if t.Sub(began) < time.Second || t.Sub(last) < 100*time.Millisecond {
			return
		}
		last = t
		fmt.Fprint(w, "\r\033[K"+progressLine(name, now, end, maxDrain, t.Sub(began)))
	}
}

// progressLine is the progress line at virtual time now of a run whose
// workload and faults end at end, followed by a drain of at most maxDrain.
// The bar tracks the workload, then the drain: a full workload bar that
// sat still while the run waited for the last writes to arrive everywhere
// said nothing.
func progressLine(name string, now, end, maxDrain, wall time.Duration) string {
	const width = 30
	bar := func(frac float64) string {
		done := int(min(1, max(0, frac)) * width)
		return "[" + strings.Repeat("#", done) + strings.Repeat(".", width-done) + "]"
	}
	if now <= end || maxDrain <= 0 {
		return fmt.Sprintf("%-8s %s workload %.1fs of %.0fs simulated, %.0fs wall",
			name, bar(float64(now)/float64(end)), now.Seconds(), end.Seconds(), wall.Seconds())
	}
	drained := now - end
	return fmt.Sprintf("%-8s %s draining: %.1fs after the workload, until every write is applied everywhere (at most %.0fs), %.0fs wall",
		name, bar(float64(drained)/float64(maxDrain)), drained.Seconds(), maxDrain.Seconds(), wall.Seconds())
}
