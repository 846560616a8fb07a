package mesh

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// Node authentication over real memberlist where not every node proves:
// a rolling upgrade from 1.0 (nodes that neither write nor read proofs),
// and meshes without identities (tools and tests).
//
//	go test ./gossip/mesh/ -run 'TestMeshProofs' -v

// A 1.1 node proves its frames only to peers that announce 1.1: a 1.0 node
// refuses a frame with a trailer. Among 1.0 nodes, where no peer proves
// itself, it becomes ready on an exchange with a member it cannot
// authenticate, as 1.0 nodes do; the rest of the mesh converges as before.
func TestMeshProofsDuringAnUpgradeFrom10(t *testing.T) {
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "east"},
		map[string]string{"r1": "east", "r2": "east"})
	old := []string{"ctrl-a", "r1", "r2"}
	for _, n := range old {
		c.start(n, func(cfg *Config) { cfg.protocol = gossip.ProtocolMajor << 4 }) // announces and writes 1.0
	}
	for _, n := range old {
		testutil.Eventually(t, 5*time.Second, n+" sees the 1.0 members", func() bool { return len(alive(c.meshes[n])) == len(old) })
	}
	c.publish("ctrl-a", 3)
	c.converged(t, 7, old...)
	upgraded := c.start("ctrl-b", nil)
	all := append(old, "ctrl-b")
	testutil.Eventually(t, 10*time.Second, "the upgraded node is ready", upgraded.Ready)
	if upgraded.Stats().Synced {
		t.Error("the upgraded node counts a proven exchange; no 1.0 peer proves")
	}
	c.publish("ctrl-b", 2)
	c.converged(t, 7+5, all...)
	for _, n := range old {
		if c.meshes[n].provenSeen.Load() {
			t.Errorf("the 1.1 node sent a proof to %s, which announces 1.0", n)
		}
		if r := c.meshes[n].Stats().Rejected["malformed"]; r != 0 {
			t.Errorf("%s refused %d frames as malformed", n, r)
		}
	}
}

// Without NodeAuth a node proves nothing and takes no sender as proven:
// no clock estimate, no authoritative answer; it still replicates, and is
// ready after the join timeout on an exchange with a member.
func TestMeshProofsAbsent(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east", "r2": "west"})
	all := []string{"ctrl-a", "r1", "r2"}
	for _, n := range all {
		c.start(n, func(cfg *Config) { cfg.Auth = nil })
	}
	for _, n := range all {
		testutil.Eventually(t, 5*time.Second, n+" sees every member", func() bool { return len(alive(c.meshes[n])) == len(all) })
		testutil.Eventually(t, 10*time.Second, n+" ready", c.meshes[n].Ready)
	}
	c.publish("ctrl-a", 3)
	c.converged(t, 7, all...)
	if off, ok := c.meshes["ctrl-a"].ClockOffset(); ok {
		t.Errorf("a clock estimate of %v from senders nobody proved", off)
	}
	res, err := c.meshes["r2"].Want(t.Context(), crdt.Serial{0xde, 0xad}, "ctrl-a")
	if err != nil || res.Found || res.Authoritative {
		t.Errorf("an unproven \"never issued\" settled a pull: %+v, %v", res, err)
	}
}

// A mesh takes the NodeAuth of its own node only (the rest of
// TestNodeAuthIdentityMustBeThisNodes, in gossip).
func TestMeshRefusesTheNodeAuthOfAnotherNode(t *testing.T) {
	p := trusttest.NewPKI(t, time.Now(), nil, []string{"r2"})
	auth, err := gossip.NewNodeAuth(p.Root.Cert, trusttest.TrustDomain, "r2", gossip.RoleRouter)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.SetIdentity(p.Routers["r2"].Cert, p.Routers["r2"].Key); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Core: gossip.DefaultConfig(), Bind: "127.0.0.1:0", Auth: auth}
	cfg.Core.Name, cfg.Core.Role, cfg.Core.Region = "r1", gossip.RoleRouter, "east"
	if _, err := cfg.withDefaults(); err == nil {
		t.Error("a mesh took the NodeAuth of another node")
	}
}
