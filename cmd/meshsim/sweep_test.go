package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSweepOverSeeds: a grid of two loss values over three seeds, two
// strategies: the table gives means with CIs, the JSON has every point and
// run, the plots and the export are written, and the JSON does not depend
// on --jobs.
func TestSweepOverSeeds(t *testing.T) {
	top := writeTemp(t, "tiny.yaml", tinyTopology)
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	code, stdout, stderr := meshsim("--topology", top, "--strategy", "mesh,raft", "--sweep", "loss=0%,10%", "--seeds", "3",
		"--json", out("a.json"), "--plot", out("p.svg"), "--plot-cdf", out("c.svg"), "--export", out("e.csv"), "--jobs", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "cli-tiny (seeds 1-3, model mode): mean [95% CI] over 3 seeds") ||
		!regexp.MustCompile(`loss=10%\s+raft\s+[\d.]+ \[`).MatchString(stdout) {
		t.Errorf("table:\n%s", stdout)
	}
	var rep struct {
		Sweep struct {
			Keys   []string   `json:"keys"`
			Values [][]string `json:"values"`
			Seeds  []int64    `json:"seeds"`
		} `json:"sweep"`
		Points []struct {
			Label    string `json:"label"`
			Strategy string `json:"strategy"`
			Seeds    int    `json:"seeds"`
			Metrics  map[string]struct {
				Mean, CILow, CIHigh float64
			} `json:"metrics"`
		} `json:"points"`
		Runs []struct {
			Seed   int64 `json:"seed"`
			Report struct {
				Results []struct{ Strategy string } `json:"results"`
			} `json:"report"`
		} `json:"runs"`
	}
	data, err := os.ReadFile(out("a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Sweep.Keys, ",") != "loss" || len(rep.Sweep.Seeds) != 3 || len(rep.Points) != 4 || len(rep.Runs) != 6 ||
		rep.Points[3].Label != "loss=10%" || rep.Points[3].Strategy != "raft" || rep.Points[3].Seeds != 3 ||
		len(rep.Runs[5].Report.Results) != 2 || rep.Runs[5].Seed != 3 {
		t.Errorf("sweep report %+v", rep)
	}
	for _, f := range []string{"p.svg", "c.svg", "e.csv"} {
		if st, err := os.Stat(out(f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	svg, _ := os.ReadFile(out("p.svg"))
	if !strings.Contains(string(svg), "end_to_end_ms.p99 against loss") {
		t.Error("metric plot lacks its title")
	}

	// One job at a time gives the same JSON but for the machine and wall times.
	if code, _, stderr := meshsim("--topology", top, "--strategy", "mesh,raft", "--sweep", "loss=0%,10%", "--seeds", "3",
		"--json", out("b.json"), "--jobs", "1"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(out("b.json"))
	strip := regexp.MustCompile(`(?s)"wall_seconds": [0-9.]+|"machine": \{[^}]*\}|"command": \[[^]]*\]`)
	if strip.ReplaceAllString(string(data), "") != strip.ReplaceAllString(string(b), "") {
		t.Error("the sweep's JSON depends on --jobs")
	}
}

func TestSweepErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sweep", "loss=1%,1%"}, "--sweep loss: 1% is listed twice"},
		{[]string{"--sweep", "loss=1%", "--sweep", "loss=2%"}, "--sweep loss: swept twice"},
		{[]string{"--sweep", "loss=1%", "--set", "loss=2%"}, "--sweep loss: also given by --set"},
		{[]string{"--sweep", "loss=1%,lots"}, `--sweep loss: want a percentage such as 10%, got "lots"`},
		{[]string{"--sweep", "mesh.fanout=2,4", "--strategy", "raft"}, "--sweep mesh.fanout: applies to the mesh strategy"},
		{[]string{"--seeds", "0"}, `--seeds: "0" is not a count`},
		{[]string{"--seeds", "5..1"}, `--seeds: "5..1" is not a count`},
		{[]string{"--seeds", "3", "--plot", "x.svg"}, "--plot: with --seeds alone there is no setting to plot against"},
		{[]string{"--sweep", "loss=1%", "--plot-metric", "speed"}, `--plot-metric: unknown metric "speed"`},
		{[]string{"--export", "x.txt"}, `--export: "x.txt" must end in .csv or .jsonl`},
		{[]string{"--jobs", "2"}, "--jobs: needs --sweep or --seeds"},
		{[]string{"--strategy", "mesh", "--seeds", "2", "--mode", "live"}, "--sweep and --seeds: model mode only"},
	} {
		args := tc.args
		if !slices.Contains(args, "--strategy") {
			args = append([]string{"--strategy", "raft"}, args...)
		}
		code, _, stderr := meshsim(append([]string{"--quiet"}, args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("meshsim %v: exit %d, stderr %q; want exit 2 and one line containing %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestExportOfOneRun(t *testing.T) {
	top := writeTemp(t, "tiny.yaml", tinyTopology)
	path := filepath.Join(t.TempDir(), "e.jsonl")
	if code, _, stderr := meshsim("--topology", top, "--strategy", "raft", "--export", path); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var first struct{ Kind, Strategy, Name string }
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Kind != "cdf" || first.Strategy != "raft" || first.Name != "end_to_end_ms" {
		t.Errorf("first row %s (%v)", lines[0], err)
	}
	if !strings.Contains(string(data), `"kind":"region_pair","seed":1,"strategy":"raft","from":"a","to":"b","name":"pairs"`) {
		t.Error("no region pair rows")
	}
}
