package issuer

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// verifyAll checks every record of the controller's store with the
// production verifier, and counts those signed in batches and alone.
func verifyAll(t *testing.T, e *env) (batched, alone int, batches map[*crdt.Batch]int) {
	t.Helper()
	ca, err := pki.LoadCerts(filepath.Join(e.pkiDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	batches = map[*crdt.Batch]int{}
	e.mesh.View(func(s *crdt.Store) {
		v, err := trust.NewVerifier(ca[0], e.cfg.PKI.TrustDomain, func() *crdt.Store { return s })
		if err != nil {
			t.Fatal(err)
		}
		s.Range(func(r crdt.Record) bool {
			if err := crdt.Verify(r, v); err != nil {
				t.Errorf("%v %v: %v", r.Kind(), r.Head().Dot(), err)
			}
			if b := r.Head().Batch; b != nil {
				batched++
				batches[b]++
			} else {
				alone++
			}
			return true
		})
	})
	return batched, alone, batches
}

// A controller whose every member decodes batch signatures signs each
// group commit once; its records verify with the production verifier, as
// committed and again read back from bbolt after a restart. With a member
// of an older minor, it signs each record alone.
func TestWriterSignsGroupCommitsInBatches(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() { e.login(fmt.Sprintf("user-%d", i)) })
	}
	wg.Wait()
	batched, alone, batches := verifyAll(t, e)
	if batched < 24 || alone == 0 {
		t.Fatalf("%d records batch-signed, %d alone; want every login's (24) and the signer record", batched, alone)
	}
	for b, n := range batches {
		if n < 2 || n != b.Count {
			t.Errorf("a batch of %d holds %d records, want its whole commit (a login writes 2)", b.Count, n)
		}
	}

	e.restart() // the store is read back from bbolt, one record at a time
	b2, _, batches2 := verifyAll(t, e)
	if b2 != batched {
		t.Fatalf("after a restart, %d batch-signed records, want %d", b2, batched)
	}
	for b, n := range batches2 {
		if n != b.Count {
			t.Errorf("after a restart, a batch of %d shared by %d records", b.Count, n)
		}
	}

	e.mesh.mu.Lock()
	e.mesh.perRecord = true
	e.mesh.mu.Unlock()
	e.login("late")
	if b, a, _ := verifyAll(t, e); b != batched || a != alone+2 {
		t.Fatalf("with an older member, %d batch-signed and %d alone, want %d and %d", b, a, batched, alone+2)
	}
}
