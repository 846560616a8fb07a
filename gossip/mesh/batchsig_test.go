package mesh

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/trust"
)

// batchSigned counts the records of author name in m's store that are
// batch-signed, and those signed alone.
func batchSigned(m *Mesh, name string) (batched, alone int) {
	m.View(func(s *crdt.Store) {
		s.Range(func(r crdt.Record) bool {
			if r.Head().Author.Name == name {
				if r.Head().Batch != nil {
					batched++
				} else {
					alone++
				}
			}
			return true
		})
	})
	return batched, alone
}

// Batch-signed records cross a mesh of real memberlist nodes (pushes,
// deltas) and are verified at every node from their proofs; a member of
// protocol 1.1 joining turns batch signing off, and records signed alone
// and in batches then live side by side everywhere.
func TestBatchSignedRecordsCrossTheMesh(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"},
		map[string]string{"r1": "east", "r2": "west", "r-old": "west"})
	nodes := []string{"ctrl-a", "r1", "r2"}
	for _, n := range nodes {
		c.start(n, nil)
	}
	for _, n := range nodes {
		testutil.Eventually(t, 5*time.Second, n+" sees the mesh", func() bool { return len(alive(c.meshes[n])) == len(nodes) })
	}
	ctrl := c.meshes["ctrl-a"]
	testutil.Eventually(t, 5*time.Second, "batch signing allowed", ctrl.BatchSigning)

	w := c.authors["ctrl-a"]
	recs := []crdt.Record{w.Signer(c.pki.Ctrl["ctrl-a"])}
	for range 20 {
		s, cert := w.Session(time.Now())
		recs = append(recs, s, cert)
	}
	for i := 1; i < len(recs); i += 16 { // commits of 16 records
		if err := crdt.SignBatch(recs[i:min(i+16, len(recs))], trust.RecordSigner{Key: w.Key}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctrl.Publish(recs); err != nil {
		t.Fatal(err)
	}
	c.converged(t, len(recs), nodes...)
	for _, n := range nodes[1:] {
		if batched, alone := batchSigned(c.meshes[n], "ctrl-a"); batched != 40 || alone != 1 {
			t.Fatalf("%s holds %d batch-signed and %d records signed alone, want 40 and 1", n, batched, alone)
		}
	}

	old := c.start("r-old", func(cfg *Config) { cfg.protocol = gossip.ProtocolMajor<<4 | (gossip.MinorBatchSig - 1) })
	testutil.Eventually(t, 5*time.Second, "r-old seen", func() bool { return len(alive(ctrl)) == 4 })
	if ctrl.BatchSigning() {
		t.Fatal("batch signing allowed with a member of protocol 1.1")
	}
	c.publish("ctrl-a", 3) // signed alone
	c.converged(t, len(recs)+6, "ctrl-a", "r1", "r2", "r-old")
	// r-old runs this code and so decodes the batches written before it
	// joined; a node of 1.1 would refuse those 40 and hold the rest.
	if batched, alone := batchSigned(old, "ctrl-a"); batched != 40 || alone != 7 {
		t.Fatalf("r-old holds %d batch-signed and %d records signed alone", batched, alone)
	}
}
