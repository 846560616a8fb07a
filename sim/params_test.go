package sim

import (
	"strings"
	"testing"
	"time"
)

func TestParametersSection(t *testing.T) {
	top := mustTopology(t, tiny+`
parameters:
  mesh: {fanout: 8, eager_trees: 1, lazy_delay: 10ms}
  gossip: {interval: 100ms, nodes: 4}
  raft: {redial_interval: 50ms, reconnect: etcd, leader: a}
`)
	p := top.Params
	want := DefaultParams()
	want.Mesh.Fanout, want.Mesh.EagerTrees, want.Mesh.LazyDelay = 8, 1, 10*time.Millisecond
	want.Gossip.Interval, want.Gossip.Nodes = 100*time.Millisecond, 4
	want.Raft.Leader = "a"
	want.Raft.Reconnect = defaultReconnect(ReconnectEtcd)
	want.Raft.Reconnect.RedialInterval = 50 * time.Millisecond // applied after reconnect, whatever the order
	if p != want {
		t.Errorf("params\n got %+v\nwant %+v", p, want)
	}
	vals := SettingValues(&p, top)
	if vals["mesh.fanout"] != "8" || vals["raft.reconnect"] != "etcd" || vals["raft.redial_interval"] != "50ms" ||
		vals["raft.leader"] != "a" || vals["loss"] != "0%" || vals["raft.backoff_base"] != "" {
		t.Errorf("setting values %v", vals)
	}
}

func TestParametersSectionErrors(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"parameters:\n  mesh: {fanuot: 8}\n", "line 10: parameters.mesh.fanuot: unknown mesh parameter (mesh parameters: mesh.fanout, mesh.trees,"},
		{"parameters:\n  paxos: {fanout: 8}\n", "line 10: parameters.paxos: unknown strategy"},
		{"parameters:\n  mesh: {loss: 5%}\n", "parameters.mesh.loss: unknown mesh parameter"},
		{"parameters:\n  mesh: {fanout: many}\n", `line 10: parameters.mesh.fanout: want an integer, got "many"`},
		{"parameters:\n  mesh: {fanout: [1, 2]}\n", "parameters.mesh.fanout: want a single value"},
		{"parameters:\n  mesh: {trees: 1}\n", "parameters: mesh.eager_trees: 2 is more than mesh.trees (1)"},
		{"parameters:\n  raft: {backoff_base: 1s}\n  mesh: {}\n", ""},
		{"parameters:\n  raft: {reconnect: tcp, backoff_base: 1s}\n", "parameters.raft.backoff_base: applies to raft.reconnect hashicorp, not tcp"},
		{"parameters:\n  raft: {leader: router/a/0}\n", `parameters.raft.leader: "router/a/0" is not a controller`},
		{"parameters:\n  raft: {leader: b}\n", "parameters.raft.leader: region b has no controller"},
		{"parameters: 5\n", "line 9: parameters: want a map of strategies"},
	} {
		_, err := ParseTopology("p.yaml", []byte(tiny+tc.section))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.section, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want one containing %q", tc.section, err, tc.want)
		}
	}
}

// TestSettingsChangeTheRun: a parameter reaches the strategy: the mesh
// with one eager tree receives fewer bytes, and under loss its nodes send
// more than they receive; raft led from eu-west commits sooner there.
func TestSettingsChangeTheRun(t *testing.T) {
	top := mustTopology(t, located)
	run := func(strategy, key, value string) *Result {
		t.Helper()
		p, tt := DefaultParams(), *top
		if key != "" {
			if err := ApplySetting(&p, &tt, key, value); err != nil {
				t.Fatal(err)
			}
		}
		cfg := DefaultConfig().withSeed(1)
		cfg.Params = p
		res, err := Run(&tt, strategy, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if two, one := run("mesh", "", ""), run("mesh", "mesh.eager_trees", "1"); one.BytesPerEventPerNode >= two.BytesPerEventPerNode {
		t.Errorf("bytes/event/node: one eager tree %v, two %v", one.BytesPerEventPerNode, two.BytesPerEventPerNode)
	}
	if lossy := run("mesh", "loss", "20%"); lossy.BytesSentPerEventPerNode <= lossy.BytesPerEventPerNode {
		t.Errorf("at 20%% loss, sent %v not above received %v", lossy.BytesSentPerEventPerNode, lossy.BytesPerEventPerNode)
	}
	if us, eu := run("raft", "", ""), run("raft", "raft.leader", "eu-west"); eu.IssueLatencyMs.P50 >= us.IssueLatencyMs.P50 {
		t.Errorf("issue p50 led from eu-west (2 of 3 controllers) %v, from us-east %v", eu.IssueLatencyMs.P50, us.IssueLatencyMs.P50)
	}
	if err := ApplySetting(new(Params), new(Topology), "mesh.fanout", "0"); err == nil || err.Error() != "mesh.fanout: 0 is out of range [1, 1024]" {
		t.Errorf("fanout 0: %v", err)
	}
}
