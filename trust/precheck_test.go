package trust_test

import (
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// precheckFixture is a verifier whose store holds ctrl-a's signer record.
func precheckFixture(t *testing.T) (*trust.Verifier, *trusttest.PKI, *trusttest.Author, *crdt.Store, time.Time) {
	t.Helper()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a"}, nil)
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	a := trusttest.NewAuthor(t, "ctrl-a", p.Ctrl["ctrl-a"].Key, trusttest.FixedHLC(now))
	sr := a.Signer(p.Ctrl["ctrl-a"])
	v.Precheck([]crdt.Record{sr}) // learns the key, checked against the root
	if err := crdt.Verify(sr, v); err != nil {
		t.Fatal(err)
	}
	if _, err := store.MergeVerified(sr); err != nil {
		t.Fatal(err)
	}
	return v, p, a, store, now
}

// Prechecked, a genuine record is confirmed from the store alone: no
// signature is verified again under the store owner's lock, which shows
// in what it allocates.
func TestVerifyShared_PrecheckedRecordSkipsTheSignature(t *testing.T) {
	v, _, a, _, now := precheckFixture(t)
	_, c := a.Session(now)
	full := testing.AllocsPerRun(20, func() {
		if err := crdt.Verify(c, v); err != nil {
			t.Fatal(err)
		}
	})
	v.Precheck([]crdt.Record{c})
	fast := testing.AllocsPerRun(20, func() {
		if err := v.VerifyShared(c); err != nil {
			t.Fatal(err)
		}
	})
	if fast >= full/4 {
		t.Fatalf("VerifyShared after Precheck allocates %v, Verify %v: the signature was verified again", fast, full)
	}
}

// A verdict belongs to the record object checked: a copy with another
// body under the same genuine signature is verified in full, and refused.
func TestVerifyShared_VerdictIsNotBorrowedByAnAlteredCopy(t *testing.T) {
	v, _, a, _, now := precheckFixture(t)
	_, c := a.Session(now)
	v.Precheck([]crdt.Record{c})
	forged := *c
	forged.Identity = "mallory"
	if err := v.VerifyShared(&forged); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("altered copy of a prechecked record: %v, want trust.ErrBadSignature", err)
	}
	if err := v.VerifyShared(c); err != nil {
		t.Fatalf("the genuine record: %v", err)
	}
}

// A verdict made under a root the verifier no longer trusts, or for a key
// its author has no active signer record for here, does not count.
func TestVerifyShared_StaleVerdictsFallBackToVerify(t *testing.T) {
	t.Run("root replaced", func(t *testing.T) {
		v, _, a, _, now := precheckFixture(t)
		_, c := a.Session(now)
		v.Precheck([]crdt.Record{c})
		other := trusttest.NewPKI(t, now, []string{"ctrl-a"}, nil)
		if err := v.SetRoot(other.Root.Cert); err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyShared(c); !errors.Is(err, trust.ErrBadSigner) {
			t.Fatalf("after the root changed: %v, want trust.ErrBadSigner", err)
		}
	})
	t.Run("key not in the store", func(t *testing.T) {
		v, p, a, _, now := precheckFixture(t)
		_, c := a.Session(now)
		v.Precheck([]crdt.Record{c})
		// Another verifier, same root, whose store never saw the signer
		// record: its Precheck learns the key from the record alone.
		empty := crdt.NewStore()
		v2, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return empty })
		if err != nil {
			t.Fatal(err)
		}
		v2.Precheck([]crdt.Record{a.Signer(p.Ctrl["ctrl-a"]), c})
		if err := v2.VerifyShared(c); !errors.Is(err, trust.ErrUnknownSigner) {
			t.Fatalf("key known, signer record not held: %v, want trust.ErrUnknownSigner", err)
		}
	})
}

// Precheck reads no store: it runs concurrently with the store's owner.
func TestPrecheckRunsBesideTheStoreOwner(t *testing.T) {
	v, _, a, store, now := precheckFixture(t)
	var recs []crdt.Record
	for range 50 {
		s, c := a.Session(now)
		recs = append(recs, s, c)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Precheck(recs)
	}()
	for _, r := range recs {
		if err := v.VerifyShared(r); err != nil {
			t.Fatal(err)
		}
		if _, err := store.MergeVerified(r); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// A copy of a record verified a moment ago (it came down another tree, or
// again in anti-entropy) takes its verdict without a second signature
// verification; a copy with another body does not.
func TestPrecheck_CopiesOfAVerifiedRecord(t *testing.T) {
	v, _, a, _, now := precheckFixture(t)
	_, c := a.Session(now)
	var fresh []crdt.Record // a record never seen for each run
	for range 25 {
		_, f := a.Session(now)
		fresh = append(fresh, f)
	}
	v.Precheck([]crdt.Record{c})
	cp := *c
	same := testing.AllocsPerRun(20, func() {
		if got := v.Precheck([]crdt.Record{&cp}); len(got) != 1 {
			t.Fatal("the copy was not taken")
		}
	})
	full := testing.AllocsPerRun(20, func() {
		r := fresh[0]
		fresh = fresh[1:]
		if got := v.Precheck([]crdt.Record{r}); len(got) != 1 {
			t.Fatal("a genuine record was not verified")
		}
	})
	if same >= full/2 {
		t.Fatalf("a copy allocates %v, a record verified %v: the copy's signature was verified again", same, full)
	}
	if err := v.VerifyShared(&cp); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	altered := *c
	altered.Identity = "mallory"
	if got := v.Precheck([]crdt.Record{&altered}); len(got) != 0 {
		t.Fatal("an altered copy took the genuine record's verdict")
	}
	if err := v.VerifyShared(&altered); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("altered copy: %v, want trust.ErrBadSignature", err)
	}
}
