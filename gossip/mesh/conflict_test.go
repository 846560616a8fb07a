package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/internal/testutil"
)

// A second node started under a member's name stops and says why; the
// member keeps running. Before, memberlist logged the conflict and both ran.
func TestMeshNewcomerWithATakenNameStops(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"edge-1": "east"})
	c.start("ctrl-a", nil)
	first := c.start("edge-1", nil)
	testutil.Eventually(t, 10*time.Second, "ctrl-a sees edge-1", sees(c.meshes["ctrl-a"], "edge-1"))
	testutil.Eventually(t, 10*time.Second, "edge-1 is ready", first.Ready)

	second := c.start("edge-1", func(cfg *Config) { cfg.Bind = testutil.FreeAddr(t) })
	c.meshes["edge-1 (second)"], c.meshes["edge-1"] = second, first
	select {
	case err := <-second.NameConflict():
		if !strings.Contains(err.Error(), "another live member of the mesh is named edge-1") || !strings.Contains(err.Error(), first.Addr()) {
			t.Errorf("conflict: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second edge-1 did not stop within 10s")
	}
	testutil.Eventually(t, 5*time.Second, "the second edge-1 to leave memberlist", func() bool { return second.closed.Load() })
	select {
	case err := <-first.NameConflict():
		t.Fatalf("the member stopped: %v", err)
	default:
	}
	if first.closed.Load() || !sees(c.meshes["ctrl-a"], "edge-1")() {
		t.Fatal("the member that held the name is gone")
	}
	c.publish("ctrl-a", 1)
	c.converged(t, 3, "ctrl-a", "edge-1")
}

// A node restarted on a new address while the mesh still holds its old
// one is not a duplicate: the old address does not answer to the name.
func TestMeshRestartOnANewAddressIsNotAConflict(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"edge-1": "east"})
	c.start("ctrl-a", nil)
	c.start("edge-1", nil)
	testutil.Eventually(t, 10*time.Second, "ctrl-a sees edge-1", sees(c.meshes["ctrl-a"], "edge-1"))
	c.crash("edge-1")

	again := c.start("edge-1", func(cfg *Config) { cfg.Bind = testutil.FreeAddr(t) })
	testutil.Eventually(t, 10*time.Second, "the old address to be probed", func() bool { return again.probes.Load() > 0 })
	select {
	case err := <-again.NameConflict():
		t.Fatalf("a restart on a new address stopped: %v", err)
	default:
	}
	if again.closed.Load() {
		t.Fatal("the restarted node left the mesh")
	}
}
