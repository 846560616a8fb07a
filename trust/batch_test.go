package trust_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// batchFixture is a verifier with ctrl-a's signer record merged, and a
// batch of n of ctrl-a's sessions and certificates.
func batchFixture(t testing.TB, n int) (*trust.Verifier, *trusttest.PKI, *trusttest.Author, []crdt.Record) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a", "ctrl-b"}, []string{"edge-1"})
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	a := trusttest.NewAuthor(t, "ctrl-a", p.Ctrl["ctrl-a"].Key, trusttest.FixedHLC(now))
	if _, err := store.MergeVerified(a.Signer(p.Ctrl["ctrl-a"])); err != nil {
		t.Fatal(err)
	}
	b := trusttest.NewAuthor(t, "ctrl-b", p.Ctrl["ctrl-b"].Key, trusttest.FixedHLC(now))
	if _, err := store.MergeVerified(b.Signer(p.Ctrl["ctrl-b"])); err != nil {
		t.Fatal(err)
	}
	return v, p, a, batchOfSessions(t, a, n, now)
}

func batchOfSessions(t testing.TB, a *trusttest.Author, n int, now time.Time) []crdt.Record {
	recs := make([]crdt.Record, 0, n)
	for len(recs) < n {
		s, c := a.Session(now) // fresh ids and serials tagged with a's name
		recs = append(recs, s, c)
	}
	a.Seq -= uint64(len(recs))
	return a.SignBatch(recs[:n]...)
}

// A record of a batch verifies alone, as signed and off the wire, by
// Verify and by Precheck then VerifyShared; and alongside records signed
// alone (a cluster of old and new controllers, a store written before).
func TestVerifierAcceptsBatchSignedRecordsAlone(t *testing.T) {
	v, p, a, recs := batchFixture(t, 37)
	for _, r := range recs {
		alone, err := crdt.DecodeRecord(crdt.AppendRecord(nil, r))
		if err != nil {
			t.Fatal(err)
		}
		if err := crdt.Verify(alone, v); err != nil {
			t.Fatalf("%v decoded alone: %v", alone.Head().Dot(), err)
		}
		again, _ := crdt.DecodeRecord(crdt.AppendRecord(nil, r))
		if got := v.Precheck([]crdt.Record{again}); len(got) != 1 {
			t.Fatalf("%v not prechecked", again.Head().Dot())
		}
		if err := v.VerifyShared(again); err != nil {
			t.Fatalf("%v prechecked: %v", again.Head().Dot(), err)
		}
	}
	s, c := a.Session(p.Now)
	for _, r := range []crdt.Record{s, c} {
		if r.Head().Batch != nil {
			t.Fatal("record signed alone carries a batch")
		}
		if err := crdt.Verify(r, v); err != nil {
			t.Fatalf("record signed alone: %v", err)
		}
	}
}

// Roots are remembered only when they verified: a batch signed with a
// router's key, then the same records under ctrl-a's name again, are
// refused each time; a genuine root under another signature is verified
// in full and refused.
func TestVerifierBatchRootCacheTakesOnlyVerifiedRoots(t *testing.T) {
	v, p, _, recs := batchFixture(t, 8)
	now := p.Now
	forger := trusttest.NewAuthor(t, "ctrl-a", p.Routers["edge-1"].Key, trusttest.FixedHLC(now))
	forger.Seq = 100
	forged := batchOfSessions(t, forger, 8, now)
	for range 2 {
		for _, r := range forged {
			if err := crdt.Verify(r, v); !errors.Is(err, trust.ErrBadSignature) {
				t.Fatalf("batch signed by a router: %v, want %v", err, trust.ErrBadSignature)
			}
			v.Precheck([]crdt.Record{r})
			if err := v.VerifyShared(r); !errors.Is(err, trust.ErrBadSignature) {
				t.Fatalf("batch signed by a router, prechecked: %v", err)
			}
		}
	}
	// The genuine batch, verified (its root now remembered), then one of
	// its records under another signature (the router's of its own batch).
	for _, r := range recs {
		if err := crdt.Verify(r, v); err != nil {
			t.Fatal(err)
		}
	}
	genuine, forgedSig := recs[2].Head().Sig(), forged[0].Head().Sig()
	wire := crdt.AppendRecord(nil, recs[2])
	i := bytes.Index(wire, genuine[:])
	bad, err := crdt.DecodeRecord(append(append(append([]byte{}, wire[:i]...), forgedSig[:]...), wire[i+len(genuine):]...))
	if err != nil {
		t.Fatal(err)
	}
	if err := crdt.Verify(bad, v); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("remembered root under another signature: %v, want %v", err, trust.ErrBadSignature)
	}
	// A body changed under a remembered root's proof and signature.
	changed := *recs[4].(*crdt.SessionRecord)
	changed.Identity = "mallory"
	if err := crdt.Verify(&changed, v); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("changed body under a remembered root: %v, want %v", err, trust.ErrBadSignature)
	}
	// A record of another author under ctrl-a's batch: another author,
	// another message signed.
	moved := *recs[4].(*crdt.SessionRecord)
	moved.Author.Name = "ctrl-b"
	if err := crdt.Verify(&moved, v); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("record moved to another author: %v, want %v", err, trust.ErrBadSignature)
	}
}

// BenchmarkVerifierBatchRecord is the verification of one record of a
// batch of 64 decoded together, the batch's root verified once per 64.
func BenchmarkVerifierBatchRecord(b *testing.B) {
	v, _, a, _ := batchFixture(b, 1)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	n := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		recs := batchOfSessions(b, a, 64, now)
		b.StartTimer()
		for _, r := range recs {
			if err := crdt.Verify(r, v); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		n += len(recs)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "us/record")
}

// A copy of a verified record, the same bytes under the same signature
// but with a bogus proof, does not take the verdict of the genuine one:
// it would be relayed with its proof.
func TestPrecheckRefusesACopyUnderABogusProof(t *testing.T) {
	v, _, _, recs := batchFixture(t, 8)
	if err := crdt.Verify(recs[0], v); err != nil { // the author's key, checked against the root
		t.Fatal(err)
	}
	wire := crdt.AppendRecord(nil, recs[3])
	genuine, err := crdt.DecodeRecord(wire)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Precheck([]crdt.Record{genuine}); len(got) != 1 {
		t.Fatal("genuine record not prechecked")
	}
	bogus := bytes.Clone(wire)
	bogus[len(bogus)-1] ^= 1 // the last hash of its proof
	copyRec, err := crdt.DecodeRecord(bogus)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Precheck([]crdt.Record{copyRec}); len(got) != 0 {
		t.Fatal("a copy under a bogus proof was prechecked")
	}
	if err := v.VerifyShared(copyRec); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("copy under a bogus proof: %v, want %v", err, trust.ErrBadSignature)
	}
}
