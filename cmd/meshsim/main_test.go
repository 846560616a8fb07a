package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tinyTopology = `
name: cli-tiny
duration: 3s
regions:
  - {name: a, controllers: 1, routers: 3}
  - {name: b, controllers: 1, routers: 3}
latency: {intra: 1ms, links: [[a, b, 20ms]]}
workload: {rate: 5/s}
`

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func meshsim(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"meshsim"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestErrorsExitTwoWithOneLine(t *testing.T) {
	bad := writeTemp(t, "bad.yaml", "regions: [{name: a, controllers: 1, routers: 1}]\nlatency: {links: [[a, z, 1ms]]}\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"--seed", "x"}, 2, `invalid value "x" for flag -seed`},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--strategy", "paxos"}, 2, `--strategy: unknown strategy "paxos" (available: `},
		{[]string{"--strategy", "raft,raft"}, 2, "--strategy: raft is listed twice"},
		{[]string{"--mode", "fast", "--strategy", "raft"}, 2, `--mode: "fast" is neither model nor live`},
		{[]string{"--workers", "-1", "--strategy", "raft"}, 2, "--workers: -1 is negative"},
		{[]string{"--eager-trees", "3", "--strategy", "mesh"}, 2, "--eager-trees: 3 is neither 1 nor 2"},
		{[]string{"--eager-trees", "1", "--strategy", "gossip"}, 2, "--eager-trees: applies to the mesh strategy, which --strategy gossip does not run"},
		{[]string{"--strategy", "gossip,raft", "--set", "mesh.fanout=4"}, 2, "--set mesh.fanout: applies to the mesh strategy, which --strategy gossip,raft does not run"},
		{[]string{"--strategy", "raft", "--set", "mesh.fanuot=4"}, 2, `--set: unknown setting "mesh.fanuot" (settings: loss, `},
		{[]string{"--strategy", "raft", "--set", "loss"}, 2, `--set: "loss" is not key=value`},
		{[]string{"--strategy", "raft", "--set", "loss=lots"}, 2, `--set loss: want a percentage such as 10%, got "lots"`},
		{[]string{"--strategy", "raft", "--set", "loss=100%"}, 2, `--set loss: 100% is out of range [0%, 100%)`},
		{[]string{"--strategy", "raft", "--set", "raft.leader=controller/mars/0"}, 2, `--set raft.leader: "controller/mars/0": unknown region "mars"`},
		{[]string{"--strategy", "raft", "--set", "raft.redial_interval=50ms"}, 2, `--set raft.redial_interval: applies to raft.reconnect etcd, not hashicorp`},
		{[]string{"--strategy", "mesh", "--set", "mesh.eager_trees=3"}, 2, `--set mesh.eager_trees: 3 is more than mesh.trees (2)`},
		{[]string{"--mode", "live", "--set", "mesh.fanout=4"}, 2, "--set mesh.fanout: strategy parameters apply in model mode only"},
		{[]string{"--strategy", "raft", "--set", "network.bandwidth=fast"}, 2, `--set network.bandwidth: want a rate such as 100Mbit/s`},
		{[]string{"--mode", "live", "--set", "network.jitter_model=pareto"}, 2, "live mode: network: bursty loss, Pareto jitter and bandwidth are simulated in model mode only"},
		{[]string{"--eager-trees", "1", "--mode", "live"}, 2, "--eager-trees: model mode only"},
		{[]string{"--mode", "live", "--strategy", "raft"}, 2, "--strategy: --mode live runs only the mesh strategy"},
		{[]string{"--strategy", "raft", "--topology", "/does/not/exist.yaml"}, 2, "no such file or directory"},
		{[]string{"--strategy", "raft", "--topology", bad}, 2, `bad.yaml: latency.links[0]: unknown region "z"`},
	} {
		code, _, stderr := meshsim(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 ||
			!strings.HasPrefix(stderr, "meshsim: ") {
			t.Errorf("meshsim %v: exit %d, stderr %q; want exit %d and one line containing %q",
				tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := meshsim("--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"--topology", "--strategy", "--mode", "--seed", "--json", "--plot", "--quiet", "--workers", "--eager-trees", "--set", "--list-settings"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("--help lacks %s", flag)
		}
	}
}

func TestRunWritesJSONTableAndPlot(t *testing.T) {
	top := writeTemp(t, "tiny.yaml", tinyTopology)
	plot := filepath.Join(t.TempDir(), "cdf.svg")
	code, stdout, stderr := meshsim("--topology", top, "--strategy", "raft,gossip", "--seed", "9", "--json", "-", "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Topology string `json:"topology"`
		Seed     int64  `json:"seed"`
		Mode     string `json:"mode"`
		Results  []struct {
			Strategy string `json:"strategy"`
			Events   int    `json:"events"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if rep.Topology != "cli-tiny" || rep.Seed != 9 || rep.Mode != "model" || len(rep.Results) != 2 ||
		rep.Results[0].Strategy != "raft" || rep.Results[1].Strategy != "gossip" || rep.Results[0].Events != 15 {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(stderr, "strategy") || !strings.Contains(stderr, "gossip") {
		t.Errorf("with --json -, the table goes to stderr; got %q", stderr)
	}
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", ">raft<", ">gossip<", "End-to-end delay CDF", "modelled direct path", "p99", "issue p50", "</svg>"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("plot lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte("@import")) || bytes.Contains(svg, []byte("http://fonts")) {
		t.Error("plot refers to external fonts")
	}

	// Without --json, the table goes to stdout.
	code, stdout, stderr = meshsim("--topology", top, "--strategy", "raft", "--quiet")
	if code != 0 || !strings.Contains(stdout, "cli-tiny (seed 1, model mode)") || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestLiveMode(t *testing.T) {
	if testing.Short() {
		t.Skip("a live run takes its duration in wall time (about 6s)")
	}
	top := writeTemp(t, "tiny.yaml", tinyTopology)
	code, stdout, stderr := meshsim("--topology", top, "--mode", "live", "--json", "-", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Mode    string `json:"mode"`
		Results []struct {
			Strategy    string  `json:"strategy"`
			Events      int     `json:"events"`
			Undelivered int     `json:"undelivered"`
			Converged   bool    `json:"converged"`
			WallSeconds float64 `json:"wall_seconds"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	// Without --strategy, live mode runs mesh alone (the baselines exist
	// only in the model), in wall time.
	if rep.Mode != "live" || len(rep.Results) != 1 || rep.Results[0].Strategy != "mesh" || rep.Results[0].Events != 15 ||
		rep.Results[0].Undelivered != 0 || !rep.Results[0].Converged || rep.Results[0].WallSeconds < 3 {
		t.Errorf("report %+v", rep)
	}
	if !strings.Contains(stderr, "cli-tiny (seed 1, live mode)") {
		t.Errorf("with --json -, the table goes to stderr; got %q", stderr)
	}

	skewed := writeTemp(t, "skew.yaml", tinyTopology+"clocks: [{node: controller/a/0, offset: 3s}]\n")
	code, _, stderr = meshsim("--topology", skewed, "--mode", "live")
	if code != 2 || !strings.Contains(stderr, "live mode: clocks:") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("live mode with skewed clocks: exit %d, stderr %q; want exit 2 and one line naming clocks", code, stderr)
	}
}
