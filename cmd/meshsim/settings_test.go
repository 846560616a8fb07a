package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestListSettings(t *testing.T) {
	code, stdout, _ := meshsim("--list-settings")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"loss ", "mesh.fanout ", "gossip.push_pull_interval ", "raft.reconnect ", "hashicorp", "raft.leader "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--list-settings lacks %q", want)
		}
	}
}

// TestSetAndProvenance: --set changes the run, and the report says how it
// was made: commit, topology text and hash, every setting, the --set
// given, the arguments without --workers or output paths.
func TestSetAndProvenance(t *testing.T) {
	top := writeTemp(t, "tiny.yaml", tinyTopology+"parameters:\n  raft: {reconnect: etcd}\n")
	code, stdout, stderr := meshsim("--topology", top, "--strategy", "raft", "--workers", "1", "--json", "-",
		"--set", "loss=3%", "--set", "raft.redial_interval=250ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Provenance struct {
			Commit         string            `json:"commit"`
			Command        []string          `json:"command"`
			TopologyFile   string            `json:"topology_file"`
			Topology       string            `json:"topology_yaml"`
			TopologySHA256 string            `json:"topology_sha256"`
			Settings       map[string]string `json:"settings"`
			Set            []string          `json:"set"`
		} `json:"provenance"`
		Machine struct {
			Workers int `json:"workers"`
		} `json:"machine"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	p := rep.Provenance
	if p.Commit == "" || p.TopologyFile != top || !strings.Contains(p.Topology, "name: cli-tiny") ||
		!regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.TopologySHA256) {
		t.Errorf("provenance %+v", p)
	}
	if s := p.Settings; s["loss"] != "3%" || s["raft.reconnect"] != "etcd" || s["raft.redial_interval"] != "250ms" || s["mesh.fanout"] != "16" {
		t.Errorf("settings %v", s)
	}
	if got := strings.Join(p.Command, " "); got != "--topology "+top+" --strategy raft --set loss=3% --set raft.redial_interval=250ms" {
		t.Errorf("command %q", got)
	}
	if strings.Join(p.Set, " ") != "loss=3% raft.redial_interval=250ms" || rep.Machine.Workers != 1 {
		t.Errorf("set %v, workers %d", p.Set, rep.Machine.Workers)
	}
	if !strings.Contains(stderr, "e2e p50") || !strings.Contains(stderr, "light p99") {
		t.Errorf("table lacks the end-to-end columns: %s", stderr)
	}
}

// TestLiveModeRefusesModelOnlySettings: live mode runs real memberlist
// meshes with gossip's defaults, so a topology's mesh parameters are an
// error there, not silently ignored.
func TestLiveModeRefusesModelOnlySettings(t *testing.T) {
	top := writeTemp(t, "p.yaml", tinyTopology+"parameters:\n  mesh: {fanout: 4}\n")
	code, _, stderr := meshsim("--topology", top, "--mode", "live")
	if code != 2 || !strings.Contains(stderr, "live mode: parameters.mesh:") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = meshsim("--topology", top, "--strategy", "mesh", "--set", "mesh.trees=1", "--set", "mesh.eager_trees=1", "--eager-trees", "2")
	if code != 2 || !strings.Contains(stderr, "--eager-trees: mesh.eager_trees: 2 is more than mesh.trees (1)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
