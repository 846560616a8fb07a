package trust_test

import (
	"crypto"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

func TestVerifierAcceptsGenuineRecordsAndRefusesForgeries(t *testing.T) {
	testVerifierForgeries(t, false)
}

// Every forgery of a record signed alone, made again on records signed in
// a batch (of one), is refused for the same reason.
func TestVerifierRefusesBatchSignedForgeries(t *testing.T) {
	testVerifierForgeries(t, true)
}

func testVerifierForgeries(t *testing.T, batched bool) {
	newAuthor := func(name string, key crypto.Signer, hlc func() crdt.Timestamp) *trusttest.Author {
		w := trusttest.NewAuthor(t, name, key, hlc)
		w.Batched = batched
		return w
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a", "ctrl-b"}, []string{"edge-1"})
	other := trusttest.NewPKI(t, now, []string{"ctrl-a"}, nil)
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	hlc := trusttest.FixedHLC(now)
	a := newAuthor("ctrl-a", p.Ctrl["ctrl-a"].Key, hlc)
	b := newAuthor("ctrl-b", p.Ctrl["ctrl-b"].Key, hlc)

	merge := func(r crdt.Record) {
		t.Helper()
		if err := crdt.Verify(r, v); err != nil {
			t.Fatalf("genuine %v %v refused: %v", r.Kind(), r.Head().Dot(), err)
		}
		if _, err := store.MergeVerified(r); err != nil {
			t.Fatal(err)
		}
	}
	// Before its signer record, a controller's records wait.
	s0, _ := a.Session(now)
	if err := crdt.Verify(s0, v); !errors.Is(err, trust.ErrUnknownSigner) {
		t.Fatalf("record before its signer: %v, want trust.ErrUnknownSigner", err)
	}
	merge(a.Signer(p.Ctrl["ctrl-a"]))
	merge(b.Signer(p.Ctrl["ctrl-b"]))
	merge(s0)
	s1, c1 := a.Session(now)
	merge(s1)
	merge(c1)

	// A rotated key: the new signer record and records signed with either
	// key verify.
	rotated, err := pki.NewController(p.Root, trusttest.TrustDomain, "ctrl-a", time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a.Key = rotated.Key // a signer record is signed by the key it publishes
	merge(a.Signer(rotated))
	s2, _ := a.Session(now)
	merge(s2)

	router := p.Routers["edge-1"]
	tests := []struct {
		name string
		rec  func() crdt.Record
		want error
	}{
		{"router writes as itself", func() crdt.Record {
			s, _ := newAuthor("edge-1", router.Key, hlc).Session(now)
			return s
		}, trust.ErrUnknownSigner},
		{"router signs as a controller", func() crdt.Record {
			s, _ := newAuthor("ctrl-b", router.Key, hlc).Session(now)
			return s
		}, trust.ErrBadSignature},
		{"altered controller record", func() crdt.Record {
			s, c := b.Session(now)
			_ = s
			forged := *c
			forged.Identity = "mallory"
			return &forged
		}, trust.ErrBadSignature},
		{"signer record with a router certificate", func() crdt.Record {
			r, _ := trust.NewSignerRecord(p.Ctrl["ctrl-b"].Cert, trusttest.TrustDomain)
			r.Cert = router.Cert.Raw
			r.KeyID, _ = pki.KeyID(router.Cert.PublicKey)
			return newAuthor("ctrl-b", router.Key, hlc).Sign(r)
		}, trust.ErrBadSigner},
		{"signer record from another root", func() crdt.Record {
			return newAuthor("ctrl-a", other.Ctrl["ctrl-a"].Key, hlc).Signer(other.Ctrl["ctrl-a"])
		}, trust.ErrBadSigner},
		{"controller publishes another's key", func() crdt.Record {
			return newAuthor("ctrl-a", p.Ctrl["ctrl-b"].Key, hlc).Signer(p.Ctrl["ctrl-b"])
		}, trust.ErrBadSigner},
		{"signer record with a wrong key id", func() crdt.Record {
			r, _ := trust.NewSignerRecord(p.Ctrl["ctrl-b"].Cert, trusttest.TrustDomain)
			r.KeyID[0] ^= 1
			return newAuthor("ctrl-b", p.Ctrl["ctrl-b"].Key, hlc).Sign(r)
		}, trust.ErrBadSigner},
		{"signer record outliving its certificate", func() crdt.Record {
			r, _ := trust.NewSignerRecord(p.Ctrl["ctrl-b"].Cert, trusttest.TrustDomain)
			r.NotAfter += 1000
			return newAuthor("ctrl-b", p.Ctrl["ctrl-b"].Key, hlc).Sign(r)
		}, trust.ErrBadSigner},
		{"signer record signed by another key", func() crdt.Record {
			return newAuthor("ctrl-b", p.Ctrl["ctrl-a"].Key, hlc).Signer(p.Ctrl["ctrl-b"])
		}, trust.ErrBadSignature},
		{"controller writes another controller's session", func() crdt.Record {
			theirs, _ := a.Session(now)
			mine, _ := b.Session(now)
			mine.ID = theirs.ID
			return b.Sign(mine)
		}, trust.ErrNotCreator},
		{"controller writes another controller's certificate", func() crdt.Record {
			_, theirs := a.Session(now)
			_, mine := b.Session(now)
			mine.Serial = theirs.Serial
			return b.Sign(mine)
		}, trust.ErrNotCreator},
		{"controller writes a session with an untagged id", func() crdt.Record {
			mine, _ := b.Session(now)
			mine.ID = crdt.SessionID{1, 2, 3}
			return b.Sign(mine)
		}, trust.ErrNotCreator},
		{"record written after its key expired", func() crdt.Record {
			late := newAuthor("ctrl-b", p.Ctrl["ctrl-b"].Key, trusttest.FixedHLC(now.Add(13*time.Hour)))
			s, _ := late.Session(now)
			return s
		}, trust.ErrSignerExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := crdt.Verify(tt.rec(), v)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// Checked ahead of the merge, the same answer.
			r := tt.rec()
			v.Precheck([]crdt.Record{r})
			if err := v.VerifyShared(r); !errors.Is(err, tt.want) {
				t.Fatalf("prechecked: err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierChecksControllerRevocations(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a", "ctrl-b"}, nil)
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	hlc := trusttest.FixedHLC(now)
	a := trusttest.NewAuthor(t, "ctrl-a", p.Ctrl["ctrl-a"].Key, hlc)
	if _, err := store.MergeVerified(a.Signer(p.Ctrl["ctrl-a"])); err != nil {
		t.Fatal(err)
	}
	at := now.Add(-time.Minute)
	blob, err := pki.SignControllerRevocation(p.Root.Key, trusttest.TrustDomain, "ctrl-b", at)
	if err != nil {
		t.Fatal(err)
	}
	byController, _ := pki.SignControllerRevocation(p.Ctrl["ctrl-a"].Key, trusttest.TrustDomain, "ctrl-b", at)

	revocation := func(w *trusttest.Author, blob []byte, edit func(*crdt.SignerRecord)) crdt.Record {
		r := &crdt.SignerRecord{Controller: "ctrl-b", Revoked: true, RevokedAt: crdt.MillisOf(at), RootSig: blob}
		if edit != nil {
			edit(r)
		}
		return w.Sign(r)
	}
	rev, err := trust.CheckRevocation(p.Root.Cert, trusttest.TrustDomain, blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := crdt.Verify(a.Sign(rev.Record(nil)), v); err != nil {
		t.Fatalf("genuine revocation refused: %v", err)
	}
	tests := []struct {
		name string
		rec  crdt.Record
		want error
	}{
		{"signed by a controller instead of the root", revocation(a, byController, nil), trust.ErrBadRevocation},
		{"root revoked another controller", revocation(a, blob, func(r *crdt.SignerRecord) { r.Controller = "ctrl-c" }), trust.ErrBadRevocation},
		{"another time", revocation(a, blob, func(r *crdt.SignerRecord) { r.RevokedAt++ }), trust.ErrBadRevocation},
		{"published by an unknown author", revocation(trusttest.NewAuthor(t, "ctrl-b", p.Ctrl["ctrl-b"].Key, hlc), blob, nil), trust.ErrUnknownSigner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := crdt.Verify(tt.rec, v); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			v.Precheck([]crdt.Record{tt.rec})
			if err := v.VerifyShared(tt.rec); !errors.Is(err, tt.want) {
				t.Fatalf("prechecked: err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := trust.CheckRevocation(p.Root.Cert, trusttest.TrustDomain, byController); err == nil {
		t.Error("CheckRevocation accepted a revocation signed by a controller")
	}
}

func BenchmarkVerifierRecord(b *testing.B) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(b, now, []string{"ctrl-a"}, nil)
	store := crdt.NewStore()
	v, _ := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	a := trusttest.NewAuthor(b, "ctrl-a", p.Ctrl["ctrl-a"].Key, trusttest.FixedHLC(now))
	store.MergeVerified(a.Signer(p.Ctrl["ctrl-a"]))
	_, c := a.Session(now)
	b.ReportAllocs()
	for b.Loop() {
		if err := crdt.Verify(c, v); err != nil {
			b.Fatal(err)
		}
	}
}
