package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
)

// joinRoundsAfterTimeout waits until m has tried its seeds at least twice
// after its JoinTimeout: by then a lone-node rule would have made it ready.
func joinRoundsAfterTimeout(t *testing.T, m *Mesh) {
	t.Helper()
	var atTimeout uint64
	testutil.Eventually(t, 10*time.Second, "join rounds after the join timeout", func() bool {
		if m.clock().Sub(m.started) < m.cfg.JoinTimeout {
			return false
		}
		if atTimeout == 0 {
			atTimeout = m.joins.Load()
		}
		return m.joins.Load() >= atTimeout+2
	})
}

// A node with another gossip key or label reaches its seeds, which drop
// what it sends: it can never exchange anything, so it must never be
// ready, controller or router, with a snapshot or without.
func TestWrongKeyOrLabelIsNeverReady(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east", "ctrl-b": "east"},
		map[string]string{"r-key": "east", "r-label": "east", "r-snap": "east"})
	c.start("ctrl-a", func(cfg *Config) { cfg.Join = []string{cfg.Bind} }) // the first node
	c.publish("ctrl-a", 2)
	snapshot := crdt.NewStore()
	c.meshes["ctrl-a"].View(func(s *crdt.Store) {
		s.Range(func(r crdt.Record) bool {
			if _, err := snapshot.MergeVerified(r); err != nil {
				t.Fatal(err)
			}
			return true
		})
	})
	wrongKey := func(cfg *Config) { cfg.Keys = [][]byte{gossipKey(t)} }
	nodes := map[string]*Mesh{
		"ctrl-b":  c.start("ctrl-b", wrongKey),
		"r-key":   c.start("r-key", wrongKey),
		"r-label": c.start("r-label", func(cfg *Config) { cfg.Label = "another-mesh" }),
		"r-snap":  c.startWith("r-snap", wrongKey, snapshot),
	}
	for name, m := range nodes {
		joinRoundsAfterTimeout(t, m)
		err := m.Readiness()
		if err == nil {
			t.Errorf("%s is ready though its seed refuses it", name)
			continue
		}
		if !strings.Contains(err.Error(), "mesh.key_file") {
			t.Errorf("%s: the reason does not point at the key: %v", name, err)
		}
	}
	if !c.meshes["ctrl-a"].Ready() {
		t.Error("the first node, joining only itself, is not ready")
	}
}

// A lone router has nothing to admit from: unlike a lone controller, it is
// not ready while no seed answers, until a controller has exchanged with
// it.
func TestRouterWithoutStateIsNotReady(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east"})
	r := c.start("r1", nil) // ctrl-a, its seed, is not up
	joinRoundsAfterTimeout(t, r)
	if err := r.Readiness(); err == nil || !strings.Contains(err.Error(), "no snapshot") {
		t.Fatalf("a router without state: readiness %v", err)
	}
	c.start("ctrl-a", nil)
	c.publish("ctrl-a", 1)
	testutil.Eventually(t, 10*time.Second, "router ready after an exchange with the controller", r.Ready)
	if got := r.digest(); got.len != 3 {
		t.Errorf("router ready holding %d records, want 3", got.len)
	}
}

// An exchange with another router does not make a router ready: that
// router's state may be as empty as its own.
func TestRouterSyncedOnlyWithARouterIsNotReady(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east", "r2": "east"})
	a, r1 := c.start("ctrl-a", nil), c.start("r1", nil)
	c.publish("ctrl-a", 1)
	testutil.Eventually(t, 10*time.Second, "r1 ready", r1.Ready)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	delete(c.meshes, "ctrl-a")
	testutil.Eventually(t, 10*time.Second, "r1 sees ctrl-a gone", func() bool { return len(alive(r1)) == 1 })
	r2 := c.start("r2", func(cfg *Config) { cfg.Join = []string{c.addrs["r1"]} })
	c.converged(t, 3, "r1", "r2") // r2 holds all r1 has, through exchanges with r1
	if r2.core.Config().Role != gossip.RoleRouter {
		t.Fatal("r2 is not a router")
	}
	if err := r2.Readiness(); err == nil {
		t.Error("a router that exchanged only with a router is ready")
	}
}

// A router restarted with a snapshot admits from it at once, even while no
// controller answers (a restart during a control-plane outage).
func TestRouterWithSnapshotIsReadyAtOnce(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east"})
	a := c.start("ctrl-a", nil)
	recs := c.publish("ctrl-a", 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	delete(c.meshes, "ctrl-a")
	snapshot := crdt.NewStore()
	for _, r := range recs {
		if _, err := snapshot.MergeVerified(r); err != nil {
			t.Fatal(err)
		}
	}
	r := c.startWith("r1", nil, snapshot)
	if err := r.Readiness(); err != nil {
		t.Errorf("a router with a snapshot, its controllers down: %v", err)
	}
}
