package gossip

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

func TestVerifierAcceptsGenuineRecordsAndRefusesForgeries(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newTestPKI(t, now, []string{"ctrl-a", "ctrl-b"}, []string{"edge-1"})
	other := newTestPKI(t, now, []string{"ctrl-a"}, nil)
	store := crdt.NewStore()
	v, err := NewVerifier(p.root.Cert, testTD, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	hlc := fixedHLC(now)
	a := newAuthor(t, "ctrl-a", p.ctrl["ctrl-a"].Key, hlc)
	b := newAuthor(t, "ctrl-b", p.ctrl["ctrl-b"].Key, hlc)

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
	s0, _ := a.session(now)
	if err := crdt.Verify(s0, v); !errors.Is(err, ErrUnknownSigner) {
		t.Fatalf("record before its signer: %v, want ErrUnknownSigner", err)
	}
	merge(a.signer(p.ctrl["ctrl-a"]))
	merge(b.signer(p.ctrl["ctrl-b"]))
	merge(s0)
	s1, c1 := a.session(now)
	merge(s1)
	merge(c1)

	// A rotated key: the new signer record and records signed with either
	// key verify.
	rotated, err := pki.NewController(p.root, testTD, "ctrl-a", time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a.key = rotated.Key // a signer record is signed by the key it publishes
	merge(a.signer(rotated))
	s2, _ := a.session(now)
	merge(s2)

	router := p.routers["edge-1"]
	tests := []struct {
		name string
		rec  func() crdt.Record
		want error
	}{
		{"router writes as itself", func() crdt.Record {
			s, _ := newAuthor(t, "edge-1", router.Key, hlc).session(now)
			return s
		}, ErrUnknownSigner},
		{"router signs as a controller", func() crdt.Record {
			s, _ := newAuthor(t, "ctrl-b", router.Key, hlc).session(now)
			return s
		}, ErrBadSignature},
		{"altered controller record", func() crdt.Record {
			s, c := b.session(now)
			_ = s
			forged := *c
			forged.Identity = "mallory"
			return &forged
		}, ErrBadSignature},
		{"signer record with a router certificate", func() crdt.Record {
			r, _ := NewSignerRecord(p.ctrl["ctrl-b"].Cert, testTD)
			r.Cert = router.Cert.Raw
			r.KeyID, _ = pki.KeyID(router.Cert.PublicKey)
			return newAuthor(t, "ctrl-b", router.Key, hlc).sign(r)
		}, ErrBadSigner},
		{"signer record from another root", func() crdt.Record {
			return newAuthor(t, "ctrl-a", other.ctrl["ctrl-a"].Key, hlc).signer(other.ctrl["ctrl-a"])
		}, ErrBadSigner},
		{"controller publishes another's key", func() crdt.Record {
			return newAuthor(t, "ctrl-a", p.ctrl["ctrl-b"].Key, hlc).signer(p.ctrl["ctrl-b"])
		}, ErrBadSigner},
		{"signer record with a wrong key id", func() crdt.Record {
			r, _ := NewSignerRecord(p.ctrl["ctrl-b"].Cert, testTD)
			r.KeyID[0] ^= 1
			return newAuthor(t, "ctrl-b", p.ctrl["ctrl-b"].Key, hlc).sign(r)
		}, ErrBadSigner},
		{"signer record outliving its certificate", func() crdt.Record {
			r, _ := NewSignerRecord(p.ctrl["ctrl-b"].Cert, testTD)
			r.NotAfter += 1000
			return newAuthor(t, "ctrl-b", p.ctrl["ctrl-b"].Key, hlc).sign(r)
		}, ErrBadSigner},
		{"signer record signed by another key", func() crdt.Record {
			return newAuthor(t, "ctrl-b", p.ctrl["ctrl-a"].Key, hlc).signer(p.ctrl["ctrl-b"])
		}, ErrBadSignature},
		{"controller writes another controller's session", func() crdt.Record {
			theirs, _ := a.session(now)
			mine, _ := b.session(now)
			mine.ID = theirs.ID
			return b.sign(mine)
		}, ErrNotCreator},
		{"controller writes another controller's certificate", func() crdt.Record {
			_, theirs := a.session(now)
			_, mine := b.session(now)
			mine.Serial = theirs.Serial
			return b.sign(mine)
		}, ErrNotCreator},
		{"controller writes a session with an untagged id", func() crdt.Record {
			mine, _ := b.session(now)
			mine.ID = crdt.SessionID{1, 2, 3}
			return b.sign(mine)
		}, ErrNotCreator},
		{"record written after its key expired", func() crdt.Record {
			late := newAuthor(t, "ctrl-b", p.ctrl["ctrl-b"].Key, fixedHLC(now.Add(13*time.Hour)))
			s, _ := late.session(now)
			return s
		}, ErrSignerExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := crdt.Verify(tt.rec(), v)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierChecksControllerRevocations(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newTestPKI(t, now, []string{"ctrl-a", "ctrl-b"}, nil)
	store := crdt.NewStore()
	v, err := NewVerifier(p.root.Cert, testTD, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	hlc := fixedHLC(now)
	a := newAuthor(t, "ctrl-a", p.ctrl["ctrl-a"].Key, hlc)
	if _, err := store.MergeVerified(a.signer(p.ctrl["ctrl-a"])); err != nil {
		t.Fatal(err)
	}
	at := now.Add(-time.Minute)
	blob, err := pki.SignControllerRevocation(p.root.Key, testTD, "ctrl-b", at)
	if err != nil {
		t.Fatal(err)
	}
	byController, _ := pki.SignControllerRevocation(p.ctrl["ctrl-a"].Key, testTD, "ctrl-b", at)

	revocation := func(w *author, blob []byte, edit func(*crdt.SignerRecord)) crdt.Record {
		r := &crdt.SignerRecord{Controller: "ctrl-b", Revoked: true, RevokedAt: crdt.MillisOf(at), RootSig: blob}
		if edit != nil {
			edit(r)
		}
		return w.sign(r)
	}
	genuine, err := NewRevocationRecord(p.root.Cert, testTD, blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := crdt.Verify(a.sign(genuine), v); err != nil {
		t.Fatalf("genuine revocation refused: %v", err)
	}
	tests := []struct {
		name string
		rec  crdt.Record
		want error
	}{
		{"signed by a controller instead of the root", revocation(a, byController, nil), ErrBadRevocation},
		{"root revoked another controller", revocation(a, blob, func(r *crdt.SignerRecord) { r.Controller = "ctrl-c" }), ErrBadRevocation},
		{"another time", revocation(a, blob, func(r *crdt.SignerRecord) { r.RevokedAt++ }), ErrBadRevocation},
		{"published by an unknown author", revocation(newAuthor(t, "ctrl-b", p.ctrl["ctrl-b"].Key, hlc), blob, nil), ErrUnknownSigner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := crdt.Verify(tt.rec, v); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := NewRevocationRecord(p.root.Cert, testTD, byController); err == nil {
		t.Error("NewRevocationRecord accepted a revocation signed by a controller")
	}
}

func BenchmarkVerifierRecord(b *testing.B) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := newTestPKI(b, now, []string{"ctrl-a"}, nil)
	store := crdt.NewStore()
	v, _ := NewVerifier(p.root.Cert, testTD, func() *crdt.Store { return store })
	a := newAuthor(b, "ctrl-a", p.ctrl["ctrl-a"].Key, fixedHLC(now))
	store.MergeVerified(a.signer(p.ctrl["ctrl-a"]))
	_, c := a.session(now)
	b.ReportAllocs()
	for b.Loop() {
		if err := crdt.Verify(c, v); err != nil {
			b.Fatal(err)
		}
	}
}
