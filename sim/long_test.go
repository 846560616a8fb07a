package sim

import (
	"flag"
	"path/filepath"
	"runtime"
	"testing"
)

// long enables the runs that reproduce docs/meshsim-model.md's figures:
// minutes each, so not part of go test ./... .
var long = flag.Bool("meshsim.long", false, "run the documented long runs (seven regions, the region cut, the loss sweep's extremes)")

func loadExample(t *testing.T, name string) *Topology {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	top, err := LoadTopology(filepath.Join(filepath.Dir(file), "..", "examples", "topologies", name))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// TestDocumentedRuns checks what docs/meshsim-model.md section 10 says of
// its runs: no strategy beats light in fibre, mesh's end-to-end p99 is
// below raft's and raft's below gossip's, mesh delivers everything and
// converges, and on the region cut raft catches up in seconds with one
// TCP connection and in under a second with hashicorp/raft's transport.
// go test ./sim -run TestDocumentedRuns -meshsim.long -v (under a minute on 2 cores).
func TestDocumentedRuns(t *testing.T) {
	if !*long {
		t.Skip("long: go test ./sim -run TestDocumentedRuns -meshsim.long")
	}
	runAll := func(top *Topology, seed int64, set map[string]string) map[string]*Result {
		t.Helper()
		out := map[string]*Result{}
		for _, name := range []string{"mesh", "gossip", "raft"} {
			p, tt := top.Params, *top
			for k, v := range set {
				if err := ApplySetting(&p, &tt, k, v); err != nil {
					t.Fatal(err)
				}
			}
			cfg := DefaultConfig().withSeed(seed)
			cfg.Params = p
			res, err := Run(&tt, name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = res
			if res.PhysicalMs == nil || res.PairsBelowPhysical != 0 || res.EndToEndMs.P99 < res.PhysicalMs.P99 {
				t.Errorf("%s %s: end to end %+v against light %v, %d pairs below", top.Name, name, res.EndToEndMs, res.PhysicalMs, res.PairsBelowPhysical)
			}
			t.Logf("%s %v %s: e2e p50 %v p99 %v, light p99 %v, catch-up p99 %v, undelivered %d, converged %v",
				top.Name, set, name, res.EndToEndMs.P50, res.EndToEndMs.P99, res.PhysicalMs.P99, res.CatchUpMs.P99, res.Undelivered, res.Converged)
		}
		m, g, r := out["mesh"], out["gossip"], out["raft"]
		if !(m.EndToEndMs.P99 < r.EndToEndMs.P99 && r.EndToEndMs.P99 < g.EndToEndMs.P99) {
			t.Errorf("%s %v: end-to-end p99 mesh %v, raft %v, gossip %v; want mesh < raft < gossip", top.Name, set,
				m.EndToEndMs.P99, r.EndToEndMs.P99, g.EndToEndMs.P99)
		}
		if m.Undelivered != 0 || !m.Converged {
			t.Errorf("%s %v: mesh undelivered %d, converged %v", top.Name, set, m.Undelivered, m.Converged)
		}
		return out
	}
	runAll(loadExample(t, "seven-regions.yaml"), 1, nil)
	cut := loadExample(t, "seven-regions-leader-cut.yaml")
	hashicorp := runAll(cut, 1, nil)["raft"]
	cfg := DefaultConfig().withSeed(1)
	cfg.Params = cut.Params
	cfg.Params.Raft.Reconnect = defaultReconnect(ReconnectTCP)
	tcp, err := Run(cut, "raft", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tcp.CatchUpMs.P99 < 3000 || hashicorp.CatchUpMs.P99 > 1000 {
		t.Errorf("region cut: raft catch-up p99 %v with tcp (want seconds), %v with hashicorp (want under 1s)",
			tcp.CatchUpMs.P99, hashicorp.CatchUpMs.P99)
	}
	for _, loss := range []string{"0%", "10%"} {
		runAll(DefaultTopology(), 1, map[string]string{"loss": loss, "duration": "20s"})
	}
}
