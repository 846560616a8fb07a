package crdt

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var equateEmpty = cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(sameBatch)}

// sameBatch compares batches by what they sign, not by the hashes each
// keeps to recompute proofs (a batch decoded in parts keeps more).
func sameBatch(a, b *Batch) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.First == b.First && a.Count == b.Count && a.Root == b.Root && a.Sig == b.Sig
}

func TestMergeIsIdempotent(t *testing.T) {
	s := NewStore()
	r := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	if ok, err := s.MergeVerified(r); !ok || err != nil {
		t.Fatalf("first merge: %v, %v", ok, err)
	}
	d := s.Digest()
	for i := 0; i < 3; i++ {
		if ok, err := s.MergeVerified(r); ok || err != nil {
			t.Fatalf("merge again: %v, %v", ok, err)
		}
		// An equal copy is the same dot: ignored too.
		cp := *r
		if ok, err := s.MergeVerified(&cp); ok || err != nil {
			t.Fatalf("merge a copy: %v, %v", ok, err)
		}
	}
	if s.Digest() != d || s.Len() != 1 || s.Counts()[KindSession] != 1 {
		t.Fatalf("after duplicates: digest %x→%x, len %d", d, s.Digest(), s.Len())
	}
	if got := s.Get(r.Dot()); got != r {
		t.Fatalf("Get = %v", got)
	}
	if !s.Has(r.Dot()) || s.Has(Dot{ctrlA, 2}) || s.Has(Dot{ctrlB, 1}) {
		t.Fatal("Has")
	}
	if s.Contiguous(ctrlA) != 1 || s.Contiguous(ctrlB) != 0 {
		t.Fatal("Contiguous")
	}
}

func TestMergeTooFarAheadLeavesStoreUnchanged(t *testing.T) {
	s := NewStore()
	mustMerge(t, s, newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour))
	before := snapshotBytes(t, s)
	ctx := s.Context()
	for _, r := range []Record{
		newSession(ctrlA, 2+MaxSeqAhead, t0, sid(2), "alice", t0+hour), // known author
		newSession(ctrlB, 1+MaxSeqAhead, t0, sid(3), "bob", t0+hour),   // new author
		newSerialRevocation(ctrlC, math.MaxUint64, t0, serial(1), 0),   // new author, absurd seq
	} {
		if ok, err := s.MergeVerified(r); ok || !errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("merge %v: %v, %v, want ErrTooFarAhead", r.Head().Dot(), ok, err)
		}
		if diff := cmp.Diff(ctx, s.Context(), equateEmpty); diff != "" {
			t.Fatalf("context changed (-want +got):\n%s", diff)
		}
		if !bytes.Equal(before, snapshotBytes(t, s)) {
			t.Fatal("snapshot changed")
		}
	}
	// Exactly MaxSeqAhead above is accepted.
	if ok, err := s.MergeVerified(newSession(ctrlA, 1+MaxSeqAhead, t0, sid(2), "alice", t0+hour)); !ok || err != nil {
		t.Fatalf("at the limit: %v, %v", ok, err)
	}
	if ok, err := s.MergeVerified(newSession(ctrlB, MaxSeqAhead, t0, sid(3), "bob", t0+hour)); !ok || err != nil {
		t.Fatalf("new author at the limit: %v, %v", ok, err)
	}
}

func TestMergeRefusesSeqZeroAndTooManyAuthors(t *testing.T) {
	s := NewStore()
	if _, err := s.MergeVerified(newSession(ctrlA, 0, t0, sid(1), "alice", t0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("seq 0: %v", err)
	}
	for i := 0; i < MaxAuthors; i++ {
		mustMerge(t, s, newSession(Author{"ctrl", uint64(i)}, 1, t0, sid(i+1), "alice", t0))
	}
	ctx := s.Context()
	if _, err := s.MergeVerified(newSession(Author{"one-too-many", 1}, 1, t0, sid(1), "alice", t0)); !errors.Is(err, ErrTooManyAuthors) {
		t.Fatalf("author %d: %v", MaxAuthors+1, err)
	}
	if len(s.Context()) != len(ctx) {
		t.Fatal("a refused author was added")
	}
}

func facts(c *CertRecord) CertFacts {
	return CertFacts{Serial: c.Serial, Session: c.Session, Identity: c.Identity, Issuer: c.Issuer(), NotBefore: c.NotBefore, NotAfter: c.NotAfter, Fingerprint: c.Fingerprint}
}

func TestRevocationArrivingFirstStillBinds(t *testing.T) {
	sess := newSession(ctrlA, 1, t0, sid(1), "alice", t0+8*hour)
	cert := newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+hour)
	cert2 := newCert(ctrlA, 3, t0, serial(2), sid(2), "bob", t0+hour)
	s := NewStore()
	mustMerge(t, s,
		newSerialRevocation(ctrlB, 1, t0+minute, serial(1), t0+hour),
		newSessionRevocation(ctrlB, 2, t0+minute, sid(2), 0),
	)
	// Not known yet, refused already, in both modes.
	if v := s.Admission(facts(cert), t0+2*minute, false); v != SerialRevoked {
		t.Fatalf("before the cert arrives: %v", v)
	}
	if v := s.Admission(facts(cert2), t0+2*minute, false); v != SessionRevoked {
		t.Fatalf("before the session arrives: %v", v)
	}
	mustMerge(t, s, sess, cert, cert2)
	if v := s.Admission(facts(cert), t0+2*minute, true); v != SerialRevoked {
		t.Fatalf("after the cert arrives: %v", v)
	}
	if v := s.Live(facts(cert2), t0+2*minute); v != SessionRevoked {
		t.Fatalf("live after the cert arrives: %v", v)
	}
}

func TestAdmission(t *testing.T) {
	s := NewStore()
	alice := newSession(ctrlA, 1, t0, sid(1), "alice", t0+8*hour)
	c1 := newCert(ctrlA, 2, t0+1, serial(1), sid(1), "alice", t0+hour)
	c2 := newRotation(ctrlA, 3, t0+30*minute, serial(2), sid(1), "alice", t0+2*hour, serial(1), 5*minute)
	bob := newSession(ctrlB, 1, t0, sid(2), "bob", t0+8*hour)
	cb := newCert(ctrlB, 2, t0+1, serial(3), sid(2), "bob", t0+hour)
	carol := newSession(ctrlC, 1, t0, sid(3), "carol", t0+8*hour)
	cc := newCert(ctrlC, 2, t0+1, serial(4), sid(3), "carol", t0+hour)
	carolLater := newSession(ctrlC, 3, t0+2*hour, sid(4), "carol", t0+8*hour)
	ccLater := newCert(ctrlC, 4, t0+2*hour, serial(5), sid(4), "carol", t0+3*hour)
	mustMerge(t, s, alice, c1, c2, bob, cb, carol, cc, carolLater, ccLater,
		newIdentityRevocation(ctrlB, 3, t0+hour, "carol", t0+hour, 0),
	)
	unknown := CertFacts{Serial: serial(99), Session: sid(99), Identity: "dave", Issuer: "ctrl-a", NotBefore: t0, NotAfter: t0 + hour}
	now := t0 + 10*minute
	for _, tc := range []struct {
		name   string
		f      CertFacts
		now    Millis
		strict bool
		want   Verdict
		live   Verdict
	}{
		{"valid", facts(c1), now, true, Admit, Admit},
		{"not yet valid", facts(c1), c1.NotBefore - 1, true, NotYetValid, Admit},
		{"expired", facts(c1), c1.NotAfter, true, CertExpired, Admit},
		{"rotated, in grace", facts(c1), c2.SupersedeAt - 1, true, Admit, Admit},
		{"rotated", facts(c1), c2.SupersedeAt, true, Superseded, Admit},
		{"rotation target", facts(c2), c2.SupersedeAt, true, Admit, Admit},
		{"unknown, strict", unknown, now, true, UnknownCert, Admit},
		{"unknown, verified mode", unknown, now, false, Admit, Admit},
		{"session unknown, strict", CertFacts{Serial: serial(1), Session: sid(1), Identity: "alice", Issuer: "ctrl-a", NotBefore: c1.NotBefore, NotAfter: c1.NotAfter}, now, true, Admit, Admit},
		{"wrong session", func() CertFacts { f := facts(c1); f.Session = sid(2); return f }(), now, true, MismatchedFacts, Admit},
		{"wrong identity", func() CertFacts { f := facts(c1); f.Identity = "mallory"; return f }(), now, false, MismatchedFacts, Admit},
		{"wrong issuer", func() CertFacts { f := facts(c1); f.Issuer = "ctrl-b"; return f }(), now, false, MismatchedFacts, Admit},
		{"wrong certificate bytes", func() CertFacts { f := facts(c1); f.Fingerprint[0] ^= 1; return f }(), now, false, MismatchedFacts, Admit},
		{"no fingerprint (simulator)", func() CertFacts { f := facts(c1); f.Fingerprint = [32]byte{}; return f }(), now, true, Admit, Admit},
		{"session expired", facts(c2), alice.Expires, true, CertExpired, SessionExpired},
		{"identity revoked", facts(cc), now, true, IdentityRevoked, IdentityRevoked},
		{"identity revoked, later session", facts(ccLater), t0 + 2*hour + minute, true, Admit, Admit},
		{"identity revoked, no records, not-before", CertFacts{Serial: serial(98), Session: sid(98), Identity: "carol", Issuer: "ctrl-c", NotBefore: t0, NotAfter: t0 + hour}, now, false, IdentityRevoked, IdentityRevoked},
		{"identity revoked, no records, later", CertFacts{Serial: serial(98), Session: sid(98), Identity: "carol", Issuer: "ctrl-c", NotBefore: t0 + hour, NotAfter: t0 + 2*hour}, t0 + hour, false, IdentityRevoked, IdentityRevoked},
	} {
		if got := s.Admission(tc.f, tc.now, tc.strict); got != tc.want {
			t.Errorf("%s: Admission = %v, want %v", tc.name, got, tc.want)
		}
		if got := s.Live(tc.f, tc.now); got != tc.live {
			t.Errorf("%s: Live = %v, want %v", tc.name, got, tc.live)
		}
	}
	// Strict mode wants the session too.
	s2 := NewStore()
	mustMerge(t, s2, c1)
	if v := s2.Admission(facts(c1), now, true); v != UnknownSession {
		t.Errorf("cert without session, strict: %v", v)
	}
	if v := s2.Admission(facts(c1), now, false); v != Admit {
		t.Errorf("cert without session, verified mode: %v", v)
	}
	// The identity revocation is a max register: the later one wins, in
	// either order.
	mustMerge(t, s, newIdentityRevocation(ctrlA, 4, t0+3*hour, "carol", t0+3*hour, 0))
	if at, ok := s.IdentityRevokedBefore("carol"); !ok || at != t0+3*hour {
		t.Errorf("IdentityRevokedBefore = %v, %v", at, ok)
	}
	mustMerge(t, s, newIdentityRevocation(ctrlA, 5, t0+3*hour, "carol", t0+2*hour, 0))
	if at, _ := s.IdentityRevokedBefore("carol"); at != t0+3*hour {
		t.Errorf("IdentityRevokedBefore after an older one = %v", at)
	}
	if v := s.Admission(facts(ccLater), t0+2*hour+minute, true); v != IdentityRevoked {
		t.Errorf("later session after the later revocation: %v", v)
	}
	// superseded_at is a min over rotations.
	mustMerge(t, s, newRotation(ctrlA, 6, t0+20*minute, serial(6), sid(1), "alice", t0+2*hour, serial(1), minute))
	if v := s.Admission(facts(c1), t0+21*minute, true); v != Superseded {
		t.Errorf("after an earlier rotation: %v", v)
	}
	// The issuer's revocation refuses every one of its certificates, even
	// those issued before.
	mustMerge(t, s, newRootRevocation(ctrlB, 4, t0+hour, "ctrl-a", t0+hour, 0))
	if v := s.Admission(facts(c1), now, true); v != IssuerRevoked {
		t.Errorf("issuer revoked: %v", v)
	}
	if v := s.Live(facts(c1), now); v != IssuerRevoked || !v.Revoked() {
		t.Errorf("issuer revoked, live: %v", v)
	}
	if at, ok := s.SignerRevoked("ctrl-a"); !ok || at != t0+hour {
		t.Errorf("SignerRevoked = %v, %v", at, ok)
	}
}

func TestLookups(t *testing.T) {
	s := NewStore()
	c := newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+hour)
	ses := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	k3 := newSigner(ctrlA, 3, t0, "ctrl-a", 3, t0+hour)
	k1 := newSigner(ctrlA, 4, t0, "ctrl-a", 1, t0+hour)
	k2 := newSigner(ctrlA, 5, t0, "ctrl-a", 2, t0+hour)
	kb := newSigner(ctrlB, 1, t0, "ctrl-b", 1, t0+hour)
	mustMerge(t, s, ses, c, k3, k1, k2, kb)
	if got, ok := s.Cert(serial(1)); !ok || got != c {
		t.Error("Cert")
	}
	if _, ok := s.Cert(serial(2)); ok {
		t.Error("Cert of an unknown serial")
	}
	if got, ok := s.Session(sid(1)); !ok || got != ses {
		t.Error("Session")
	}
	got := s.Signers("ctrl-a")
	if len(got) != 3 || got[0] != k1 || got[1] != k2 || got[2] != k3 {
		t.Errorf("Signers(ctrl-a) not sorted by key id: %v", got)
	}
	if r, ok := s.Signer("ctrl-b", [32]byte{1}); !ok || r != kb {
		t.Error("Signer")
	}
	if _, ok := s.SignerRevoked("ctrl-a"); ok {
		t.Error("SignerRevoked")
	}
	if s.Len() != 6 || s.Counts()[KindSigner] != 4 || s.Counts()[KindCert] != 1 {
		t.Errorf("Len %d, Counts %v", s.Len(), s.Counts())
	}
	vv := s.VersionVector()
	if len(vv) != 2 || vv[ctrlA] != 5 || vv[ctrlB] != 1 {
		t.Errorf("VersionVector = %v", vv)
	}
}

// A root revocation of a controller drops the sessions, certificates and
// keys it wrote after the revocation time, whatever the order they arrive
// in, and keeps its revocations.
func TestSignerRevocationDropsLaterRecordsInAnyOrder(t *testing.T) {
	before := newSession(ctrlA, 1, t0, sid(1), "alice", t0+8*hour)
	after := newSession(ctrlA, 2, t0+2*hour, sid(2), "mallory", t0+8*hour)
	afterCert := newCert(ctrlA, 3, t0+2*hour, serial(2), sid(2), "mallory", t0+3*hour)
	afterKey := newSigner(ctrlA, 4, t0+2*hour, "ctrl-a", 9, t0+8*hour)
	afterRevocation := newSerialRevocation(ctrlA, 5, t0+2*hour, serial(7), 0)
	otherIncarnation := newSession(ctrlA2, 1, t0+2*hour, sid(3), "eve", t0+8*hour)
	rev := newRootRevocation(ctrlB, 1, t0+3*hour, "ctrl-a", t0+hour, 0)
	recs := []Record{before, after, afterCert, afterKey, afterRevocation, otherIncarnation, rev}

	var want *Store
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1, 0}, {1, 6, 0, 3, 5, 2, 4}, {3, 2, 6, 1, 0, 4, 5}} {
		s := NewStore()
		for _, i := range order {
			ok, err := s.MergeVerified(recs[i])
			dropped := i == 1 || i == 2 || i == 3 || i == 5
			revFirst := slicesIndex(order, 6) < slicesIndex(order, i)
			switch {
			case dropped && revFirst:
				if ok || !errors.Is(err, ErrAuthorRevoked) {
					t.Fatalf("order %v: record %d after the revocation: %v, %v", order, i, ok, err)
				}
			case err != nil || !ok:
				t.Fatalf("order %v: record %d: %v, %v", order, i, ok, err)
			}
		}
		for i, r := range recs {
			if !s.Has(r.Head().Dot()) {
				t.Errorf("order %v: dot of record %d not covered", order, i)
			}
		}
		if s.Get(after.Dot()) != nil || s.Get(afterCert.Dot()) != nil || s.Get(afterKey.Dot()) != nil || s.Get(otherIncarnation.Dot()) != nil {
			t.Errorf("order %v: a record written after the revocation is held", order)
		}
		if s.Get(before.Dot()) == nil || s.Get(afterRevocation.Dot()) == nil || s.Get(rev.Dot()) == nil {
			t.Errorf("order %v: a record that should stay was dropped", order)
		}
		if _, ok := s.Signer("ctrl-a", [32]byte{9}); ok {
			t.Errorf("order %v: a key published after the revocation is active", order)
		}
		if v := s.Admission(CertFacts{Serial: serial(7), Session: sid(8), Identity: "x", Issuer: "ctrl-b", NotBefore: t0, NotAfter: t0 + 9*hour}, t0+4*hour, false); v != SerialRevoked {
			t.Errorf("order %v: the revoked controller's revocation was dropped: %v", order, v)
		}
		if want == nil {
			want = s
			continue
		}
		if s.Digest() != want.Digest() || s.Len() != want.Len() {
			t.Errorf("order %v: digest %x len %d, first order %x len %d", order, s.Digest(), s.Len(), want.Digest(), want.Len())
		}
		if !bytes.Equal(snapshotBytes(t, s), snapshotBytes(t, want)) {
			t.Errorf("order %v: snapshot differs from the first order's", order)
		}
	}
	// An earlier revocation of the same controller drops more; the
	// record written before both stays dropped only if after the earliest.
	mustMerge(t, want, newRootRevocation(ctrlC, 1, t0+4*hour, "ctrl-a", t0-minute, 0))
	if want.Get(before.Dot()) != nil {
		t.Error("an earlier revocation did not drop the record written after it")
	}
	if at, _ := want.SignerRevoked("ctrl-a"); at != t0-minute {
		t.Errorf("SignerRevoked = %v, want the earliest", at)
	}
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// A peer that never saw the dropped records still covers their dots: they
// travel in deltas as proof, and its context ends equal.
func TestDroppedRecordsTravelSoContextsConverge(t *testing.T) {
	a := NewStore()
	after := newSession(ctrlA, 2, t0+2*hour, sid(2), "mallory", t0+8*hour)
	mustMerge(t, a,
		newSession(ctrlA, 1, t0, sid(1), "alice", t0+8*hour),
		after, // the last thing ctrl-a ever wrote
		newRootRevocation(ctrlB, 1, t0+3*hour, "ctrl-a", t0+hour, 0),
	)
	b := NewStore()
	syncAll(t, a, b, 1<<20, t0+4*hour)
	if diff := cmp.Diff(a.Context(), b.Context(), equateEmpty); diff != "" {
		t.Fatalf("contexts differ (-a +b):\n%s", diff)
	}
	if a.Digest() != b.Digest() || b.Get(after.Dot()) != nil {
		t.Fatal("b holds the dropped record or differs")
	}
	// And through a snapshot.
	snap, err := DecodeSnapshot(bytes.NewReader(snapshotBytes(t, a)))
	if err != nil {
		t.Fatal(err)
	}
	c := NewStore()
	if err := c.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	d := NewStore()
	syncAll(t, c, d, 1<<20, t0+4*hour)
	if diff := cmp.Diff(a.Context(), d.Context(), equateEmpty); diff != "" {
		t.Fatalf("contexts differ after a snapshot hop (-a +d):\n%s", diff)
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, d)) {
		t.Fatal("snapshots differ after a snapshot hop")
	}
}

func TestDeltaSinceSendsRevocationsFirstThenOldestFirst(t *testing.T) {
	s := NewStore()
	mustMerge(t, s,
		newSession(ctrlA, 1, t0+10, sid(1), "alice", t0+hour),
		newSession(ctrlB, 1, t0+20, sid(2), "bob", t0+hour),
		newCert(ctrlA, 2, t0+30, serial(1), sid(1), "alice", t0+hour),
		newCert(ctrlB, 2, t0+15, serial(2), sid(2), "bob", t0+hour), // written before ctrl-b's seq 1 was seen here
		newSerialRevocation(ctrlB, 3, t0+40, serial(1), 0),
		newSession(ctrlA, 3, t0+50, sid(3), "carol", t0+hour),
		newIdentityRevocation(ctrlA, 4, t0+60, "mallory", t0, 0),
	)
	d := s.DeltaSince(nil, 1<<20)
	var got []Dot
	for _, r := range d.Records {
		got = append(got, r.Head().Dot())
	}
	want := []Dot{{ctrlA, 4}, {ctrlB, 3}, {ctrlA, 1}, {ctrlB, 1}, {ctrlB, 2}, {ctrlA, 2}, {ctrlA, 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("order (-want +got):\n%s", diff)
	}
	wantIv := []Interval{{ctrlA, 0, 4}, {ctrlB, 0, 3}}
	if diff := cmp.Diff(wantIv, d.Intervals); diff != "" {
		t.Fatalf("intervals (-want +got):\n%s", diff)
	}
	if d.Truncated {
		t.Fatal("Truncated with room to spare")
	}
	// Nothing for a peer that has it all, not even an interval.
	if d := s.DeltaSince(s.Context(), 1<<20); !d.Empty() {
		t.Fatalf("delta to an equal peer: %+v", d)
	}
}

// The budget cuts a delta in the middle of an author: the interval of that
// author stops right before the first record that did not fit, and a
// revocation sent ahead of the cut is not sent again.
func TestDeltaSinceBudgetCutsMidAuthor(t *testing.T) {
	src := NewStore()
	var recs []Record
	for i := 1; i <= 20; i++ {
		recs = append(recs, newSession(ctrlA, uint64(i), t0+Millis(i), sid(i), "alice", t0+hour))
	}
	recs[14] = newSessionRevocation(ctrlA, 15, t0+15, sid(3), 0)
	mustMerge(t, src, recs...)
	one := EncodedSizeHint(recs[0])
	dst := NewStore()
	d := src.DeltaSince(dst.Context(), 3*one+one/2)
	if len(d.Records) != 3 || !d.Truncated {
		t.Fatalf("%d records, truncated %v", len(d.Records), d.Truncated)
	}
	if d.Records[0].Head().Seq != 15 || d.Records[1].Head().Seq != 1 || d.Records[2].Head().Seq != 2 {
		t.Fatalf("records %v %v %v", d.Records[0].Head().Dot(), d.Records[1].Head().Dot(), d.Records[2].Head().Dot())
	}
	if diff := cmp.Diff([]Interval{{ctrlA, 0, 2}}, d.Intervals); diff != "" {
		t.Fatalf("intervals (-want +got):\n%s", diff)
	}
	applyDelta(t, dst, d, t0)
	if ctx := dst.Context(); ctx[0].Max != 2 || !cmp.Equal(ctx[0].Above, []uint64{15}) {
		t.Fatalf("receiver context %+v", ctx)
	}
	n := 0
	for {
		d := src.DeltaSince(dst.Context(), 3*one+one/2)
		for _, r := range d.Records {
			if r.Head().Seq == 15 {
				t.Fatal("the revocation was sent again")
			}
		}
		if d.Empty() {
			break
		}
		applyDelta(t, dst, d, t0)
		n++
	}
	if n != 6 || dst.Digest() != src.Digest() || dst.Contiguous(ctrlA) != 20 {
		t.Fatalf("after %d more deltas: digest %x vs %x, contiguous %d", n, dst.Digest(), src.Digest(), dst.Contiguous(ctrlA))
	}
	// A revocation that does not fit stops the delta: nothing younger
	// jumps ahead of it.
	big := newIdentityRevocation(ctrlB, 1, t0, "x", t0, 0)
	big.Reason = string(make([]byte, MaxTextLen))
	src2 := NewStore()
	mustMerge(t, src2, recs[0], big)
	d = src2.DeltaSince(nil, EncodedSizeHint(recs[0]))
	if len(d.Records) != 1 || d.Records[0] != Record(big) || !d.Truncated {
		t.Fatalf("%d records, truncated %v", len(d.Records), d.Truncated)
	}
	if diff := cmp.Diff([]Interval{{ctrlB, 0, 1}}, d.Intervals); diff != "" {
		t.Fatalf("intervals (-want +got):\n%s", diff)
	}
}

// A delta never carries what the peer would refuse as too far ahead, so
// that an interval never vouches for a record that bounced.
func TestDeltaSinceStaysWithinMaxSeqAhead(t *testing.T) {
	src := NewStore()
	n := uint64(MaxSeqAhead + 10)
	for seq := uint64(1); seq <= n; seq++ {
		var r Record = newSession(ctrlA, seq, t0+Millis(seq), sid(int(seq)), "alice", t0+hour)
		if seq == n-3 {
			r = newSerialRevocation(ctrlA, seq, t0+Millis(seq), serial(1), 0)
		}
		mustMerge(t, src, r)
	}
	dst := NewStore()
	d := src.DeltaSince(dst.Context(), math.MaxInt)
	for _, r := range d.Records {
		if r.Head().Seq > MaxSeqAhead {
			t.Fatalf("sent seq %d to a peer at 0", r.Head().Seq)
		}
		if _, err := dst.MergeVerified(r); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]Interval{{ctrlA, 0, MaxSeqAhead}}, d.Intervals); diff != "" {
		t.Fatalf("intervals (-want +got):\n%s", diff)
	}
	syncAll(t, src, dst, math.MaxInt, t0)
	if dst.Digest() != src.Digest() || dst.Contiguous(ctrlA) != n {
		t.Fatal("no convergence")
	}
}

func TestCoverIntervalNeedsAProof(t *testing.T) {
	src := NewStore()
	var recs []Record
	for i := 1; i <= 6; i++ {
		recs = append(recs, newSession(ctrlA, uint64(i), t0+Millis(i)*minute, sid(i), "alice", t0+Millis(i)*minute+1))
	}
	mustMerge(t, src, recs...)
	// The peer lost seq 3 and seq 6 (collected, or withheld).
	dst := NewStore()
	mustMerge(t, dst, recs[0], recs[1], recs[3], recs[4])
	iv := Interval{ctrlA, 0, 6}
	// Record 4 is younger than MinRetention: the gap stays.
	dst.CoverInterval(iv, recs[3].Head().HLC.Millis()+addMillis(0, MinRetention)-1)
	if dst.Has(Dot{ctrlA, 3}) {
		t.Fatal("covered a gap younger than MinRetention")
	}
	dst.CoverInterval(iv, recs[3].Head().HLC.Millis()+addMillis(0, MinRetention))
	if !dst.Has(Dot{ctrlA, 3}) || dst.Contiguous(ctrlA) != 5 {
		t.Fatalf("gap proven old not covered: contiguous %d", dst.Contiguous(ctrlA))
	}
	// Nothing above seq 6 proves anything about it, whatever the time.
	dst.CoverInterval(iv, math.MaxInt64)
	if dst.Has(Dot{ctrlA, 6}) {
		t.Fatal("covered the newest seq without a proof")
	}
	// An absurd interval costs nothing and covers nothing.
	start := time.Now()
	dst.CoverInterval(Interval{ctrlA, 0, math.MaxUint64}, math.MaxInt64)
	dst.CoverInterval(Interval{ctrlA, math.MaxUint64 - 1, math.MaxUint64}, math.MaxInt64)
	if time.Since(start) > time.Second || dst.Has(Dot{ctrlA, 6}) || dst.Has(Dot{ctrlA, 1 << 40}) {
		t.Fatal("a huge interval took long or covered something")
	}
	// Unknown author, reversed or empty intervals: nothing.
	dst.CoverInterval(Interval{ctrlB, 0, 10}, math.MaxInt64)
	dst.CoverInterval(Interval{ctrlA, 6, 4}, math.MaxInt64)
	if dst.Has(Dot{ctrlB, 1}) || dst.Has(Dot{ctrlA, 6}) {
		t.Fatal("covered from a meaningless interval")
	}
	// A gap below an out-of-order record: the proof is that record.
	dst2 := NewStore()
	mustMerge(t, dst2, recs[0], recs[5])
	dst2.CoverInterval(Interval{ctrlA, 1, 4}, recs[5].Head().HLC.Millis()+addMillis(0, MinRetention))
	if dst2.Contiguous(ctrlA) != 4 || dst2.Has(Dot{ctrlA, 5}) {
		t.Fatalf("contiguous %d", dst2.Contiguous(ctrlA))
	}
}

func TestCollect(t *testing.T) {
	s := NewStore()
	now := t0 + 2*hour
	old := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	oldCert := newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+hour)
	young := newSession(ctrlA, 3, now-minute, sid(2), "bob", now-minute) // expired, but too young
	forever := newSession(ctrlA, 4, t0, sid(3), "carol", math.MaxInt64)  // must not overflow into the past
	keep := newSerialRevocation(ctrlB, 1, t0, serial(2), 0)              // Until unset: kept forever
	gone := newSerialRevocation(ctrlB, 2, t0, serial(3), t0+hour)
	goneCert := newCert(ctrlA, 5, t0, serial(3), sid(4), "dave", t0+hour) // what gone covers, expired
	signerRev := newRootRevocation(ctrlB, 3, t0, "ctrl-z", t0, 0)
	orphan := newSerialRevocation(ctrlB, 4, t0, serial(4), t0+hour) // its certificate never seen here: kept
	mustMerge(t, s, old, oldCert, young, forever, keep, gone, goneCert, signerRev, orphan)
	if n := s.Collect(now, 10*time.Second, time.Minute); n != 4 {
		t.Fatalf("collected %d, want 4", n)
	}
	for _, r := range []Record{old, oldCert, gone, goneCert} {
		if s.Get(r.Head().Dot()) != nil || !s.Has(r.Head().Dot()) {
			t.Fatalf("%v: held or not covered after Collect", r.Head().Dot())
		}
		if ok, err := s.MergeVerified(r); ok || err != nil {
			t.Fatalf("%v came back: %v, %v", r.Head().Dot(), ok, err)
		}
	}
	for _, r := range []Record{young, forever, keep, signerRev, orphan} {
		if s.Get(r.Head().Dot()) == nil {
			t.Fatalf("%v collected", r.Head().Dot())
		}
	}
	if s.Len() != 5 {
		t.Fatalf("Len %d", s.Len())
	}
	if v := s.Admission(CertFacts{Serial: serial(2), Session: sid(9), Identity: "x", Issuer: "ctrl-a", NotBefore: t0, NotAfter: math.MaxInt64}, math.MaxInt64-1, false); v != SerialRevoked {
		t.Fatalf("revocation without Until: %v", v)
	}
	if _, ok := s.SignerRevoked("ctrl-z"); !ok {
		t.Fatal("signer revocation collected")
	}
	assertIndexesMatchRebuild(t, s, now)
	// A fresh peer gets what is left and the interval over the rest.
	d := s.DeltaSince(nil, 1<<20)
	if len(d.Records) != 5 || !cmp.Equal(d.Intervals, []Interval{{ctrlA, 0, 5}, {ctrlB, 0, 4}}) {
		t.Fatalf("delta to a fresh peer: %d records, intervals %v", len(d.Records), d.Intervals)
	}
}

// After Collect, every index equals that of a store built from the records
// left, as if the collected ones had never been there.
func TestCollectKeepsIndexesExact(t *testing.T) {
	s := NewStore()
	// Revocations whose targets are not held, and identity revocations,
	// are kept MaxSessionLifetime after they were made.
	life := Millis(MaxSessionLifetime / time.Millisecond)
	now := t0 + 48*hour + life
	mustMerge(t, s,
		newIdentityRevocation(ctrlA, 1, t0, "carol", t0+5*hour, t0+hour), // the max, collected
		newIdentityRevocation(ctrlB, 1, t0, "carol", t0+2*hour, 0),       // stays
		newSession(ctrlA, 2, t0, sid(1), "alice", t0+hour),               // wins sid(1), collected
		newSession(ctrlB, 2, t0+1, sid(1), "alice2", t0+72*hour+life),    // takes over
		newSerialRevocation(ctrlA, 3, t0, serial(1), t0+hour),            // earliest At, collected
		newSerialRevocation(ctrlB, 3, t0+hour, serial(1), 0),
		newRotation(ctrlA, 4, t0, serial(2), sid(1), "alice", t0+hour, serial(1), 0), // earliest rotation, collected
		newRotation(ctrlB, 4, t0+hour, serial(3), sid(1), "alice2", t0+72*hour+life, serial(1), 0),
		newRootRevocation(ctrlA, 5, t0, "ctrl-z", t0, t0+hour), // collected: un-revokes ctrl-z
		newRootRevocation(ctrlB, 5, t0+hour, "ctrl-z", t0+hour, 0),
		newSession(Author{"ctrl-z", 1}, 1, t0+30*minute, sid(5), "zed", t0+72*hour+life), // dropped, then back
	)
	if s.Get(Dot{Author{"ctrl-z", 1}, 1}) != nil {
		t.Fatal("record of a revoked author held")
	}
	if n := s.Collect(now, 10*time.Second, time.Minute); n != 5 {
		t.Fatalf("collected %d, want 5", n)
	}
	if at, _ := s.IdentityRevokedBefore("carol"); at != t0+2*hour {
		t.Errorf("IdentityRevokedBefore = %v, want the remaining record's", at)
	}
	if r, _ := s.Session(sid(1)); r == nil || r.Identity != "alice2" {
		t.Errorf("Session(sid 1) = %+v, want the remaining record", r)
	}
	if at, _ := s.SignerRevoked("ctrl-z"); at != t0+hour {
		t.Errorf("SignerRevoked = %v", at)
	}
	if s.Get(Dot{Author{"ctrl-z", 1}, 1}) == nil {
		t.Error("record written before the remaining revocation is not held")
	}
	assertIndexesMatchRebuild(t, s, now)
	// Rebuilt, the intern table holds only what the records held use.
	if _, ok := s.names["alice"]; !ok {
		t.Error("alice not interned before the rebuild")
	}
	s.reintern()
	if _, ok := s.names["alice"]; ok {
		t.Error("an identity no record uses any more is still interned")
	}
}

// assertIndexesMatchRebuild checks that s answers like a fresh store given
// the records s holds.
func assertIndexesMatchRebuild(t fataler, s *Store, now Millis) {
	helper(t)
	fresh := NewStore()
	var recs []Record
	s.Range(func(r Record) bool { recs = append(recs, r); return true })
	mustMerge(t, fresh, recs...)
	if fresh.Digest() != s.Digest() || fresh.Len() != s.Len() {
		t.Fatalf("digest %x len %d, rebuilt %x len %d", s.Digest(), s.Len(), fresh.Digest(), fresh.Len())
	}
	if diff := cmp.Diff(indexDump(fresh), indexDump(s), equateEmpty); diff != "" {
		t.Fatalf("indexes differ from a rebuild (-rebuilt +got):\n%s", diff)
	}
}

// indexDump is every index of s in comparable form.
func indexDump(s *Store) map[string]any {
	joinsDump := func(m map[string]Millis) map[string]Millis { return m }
	d := map[string]any{}
	sessions := map[SessionID]Dot{}
	for k, r := range s.sessions.m {
		sessions[k] = r.Dot()
	}
	certs := map[Serial]Dot{}
	for k, r := range s.certs.m {
		certs[k] = r.Dot()
	}
	signers := map[string]Dot{}
	for k, r := range s.signers.m {
		signers[k.controller+"/"+Serial(k.keyID[:16]).String()] = r.Dot()
	}
	dumpJoins := func(get func(yield func(string, Millis))) map[string]Millis {
		m := map[string]Millis{}
		get(func(k string, v Millis) { m[k] = v })
		return joinsDump(m)
	}
	d["sessions"], d["certs"], d["signers"] = sessions, certs, signers
	d["superseded"] = dumpJoins(func(y func(string, Millis)) {
		for k, at := range s.superseded.m {
			y(k.String(), at)
		}
	})
	d["revokedSessions"] = dumpJoins(func(y func(string, Millis)) {
		for k, at := range s.revokedSessions.m {
			y(k.String(), at)
		}
	})
	d["revokedSerials"] = dumpJoins(func(y func(string, Millis)) {
		for k, at := range s.revokedSerials.m {
			y(k.String(), at)
		}
	})
	d["revokedIdentities"] = dumpJoins(func(y func(string, Millis)) {
		for k, at := range s.revokedIdentities.m {
			y(k, at)
		}
	})
	d["revokedSigners"] = dumpJoins(func(y func(string, Millis)) {
		for k, at := range s.revokedSigners.m {
			y(k, at)
		}
	})
	revs := map[string][]uint64{}
	for _, l := range s.order {
		if len(l.revocations) > 0 {
			revs[l.author.String()] = l.revocations
		}
	}
	d["revocations"] = revs
	d["counts"] = s.counts
	d["access"] = accessDump(s)
	return d
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := NewStore()
	mustMerge(t, s, storeSamples()...)
	mustMerge(t, s,
		newSession(ctrlC, 5, t0, sid(40), "out-of-order", t0+hour),
		newRootRevocation(ctrlB, 4, t0+hour, "ctrl-a", t0-hour, 0), // drops some of ctrl-a's
	)
	if s.dropCount() == 0 {
		t.Fatal("the scenario should have dropped records")
	}
	b := snapshotBytes(t, s)
	snap, err := DecodeSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Context(), snap.Context, equateEmpty); diff != "" {
		t.Fatalf("context (-want +got):\n%s", diff)
	}
	r := NewStore()
	if err := r.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	if r.Digest() != s.Digest() || r.Len() != s.Len() || r.dropCount() != s.dropCount() {
		t.Fatalf("restored: digest %x len %d dropped %d, want %x %d %d", r.Digest(), r.Len(), r.dropCount(), s.Digest(), s.Len(), s.dropCount())
	}
	if !bytes.Equal(b, snapshotBytes(t, r)) {
		t.Fatal("the restored store encodes differently")
	}
	// Restoring twice changes nothing.
	if err := r.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, snapshotBytes(t, r)) {
		t.Fatal("a second restore changed the store")
	}
	// A version from the future is refused.
	bad := append([]byte(nil), b...)
	bad[1] = 2
	if _, err := DecodeSnapshot(bytes.NewReader(bad)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("snapshot version 2: %v", err)
	}
}

// EncodeSnapshot to a writer that is not an io.ByteWriter, like a file,
// buffers rather than writing byte by byte.
func TestEncodeSnapshotBuffersWrites(t *testing.T) {
	s := NewStore()
	for i := 1; i <= 500; i++ {
		mustMerge(t, s, newSession(ctrlA, uint64(i), t0, sid(i), "alice", t0+hour))
	}
	var w countingWriter
	if err := s.EncodeSnapshot(&w); err != nil {
		t.Fatal(err)
	}
	if w.writes > 10 {
		t.Fatalf("%d writes for %d bytes", w.writes, w.buf.Len())
	}
	if !bytes.Equal(w.buf.Bytes(), snapshotBytes(t, s)) {
		t.Fatal("the output depends on the writer")
	}
	if err := s.EncodeSnapshot(failingWriter{}); err == nil {
		t.Fatal("a write error was lost")
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.buf.Write(p) }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRestoreNeverResurrectsCollected(t *testing.T) {
	s := NewStore()
	old := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	mustMerge(t, s, old, newSession(ctrlA, 2, t0+hour, sid(2), "bob", t0+72*hour))
	stale, err := DecodeSnapshot(bytes.NewReader(snapshotBytes(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	s.Collect(t0+48*hour, 0, 0)
	if s.Get(old.Dot()) != nil {
		t.Fatal("not collected")
	}
	if err := s.RestoreVerified(stale); err != nil {
		t.Fatal(err)
	}
	if s.Get(old.Dot()) != nil || s.Len() != 1 {
		t.Fatal("a stale snapshot brought a collected record back")
	}
}

// A snapshot of a store whose first million seqs were collected restores
// without allocating a slot per collected seq.
func TestRestoreAfterCollectedPrefixIsCompact(t *testing.T) {
	snap := &Snapshot{
		Context: Context{{Author: ctrlA, Max: 1_000_010}},
		Records: []Record{
			newSession(ctrlA, 1_000_005, t0, sid(1), "alice", t0+hour),
			newSession(ctrlA, 1_000_010, t0, sid(2), "bob", t0+hour),
		},
	}
	s := NewStore()
	if err := s.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	l := s.authors[ctrlA]
	if len(l.pages) > 2 || l.contiguous != 1_000_010 {
		t.Fatalf("%d pages, contiguous %d", len(l.pages), l.contiguous)
	}
	if s.Get(Dot{ctrlA, 1_000_005}) == nil || s.Get(Dot{ctrlA, 1_000_010}) == nil || s.Len() != 2 {
		t.Fatal("records not restored")
	}
	// Then a record merges normally.
	mustMerge(t, s, newSession(ctrlA, 1_000_011, t0, sid(3), "carol", t0+hour))
	if s.Contiguous(ctrlA) != 1_000_011 {
		t.Fatal("merge after restore")
	}
}

func TestRestoreRefusesTooManyAuthorsUnchanged(t *testing.T) {
	s := NewStore()
	for i := 0; i < MaxAuthors-1; i++ {
		mustMerge(t, s, newSession(Author{"ctrl", uint64(i)}, 1, t0, sid(i+1), "alice", t0))
	}
	before := snapshotBytes(t, s)
	snap := &Snapshot{Records: []Record{
		newSession(Author{"x", 1}, 1, t0, sid(1), "a", t0),
		newSession(Author{"y", 1}, 1, t0, sid(2), "b", t0),
	}}
	if err := s.RestoreVerified(snap); !errors.Is(err, ErrTooManyAuthors) {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(before, snapshotBytes(t, s)) {
		t.Fatal("a failed restore changed the store")
	}
}

func TestMissing(t *testing.T) {
	s := NewStore()
	for i := 1; i <= 10; i++ {
		mustMerge(t, s, newSession(ctrlA, uint64(i), t0, sid(i), "a", t0))
	}
	mustMerge(t, s, newSession(ctrlA, 15, t0, sid(15), "a", t0), newSession(ctrlB, 3, t0, sid(20), "b", t0))
	for _, tc := range []struct {
		peer Context
		want uint64
	}{
		{nil, 12},
		{s.Context(), 0},
		{Context{{Author: ctrlA, Max: 4, Above: []uint64{6, 7, 15}}}, 4 + 1},
		{Context{{Author: ctrlA, Max: 20}, {Author: ctrlB, Max: 2}}, 1},
		{Context{{Author: ctrlA, Max: 12}, {Author: ctrlB, Max: 0, Above: []uint64{3}}}, 1},
	} {
		if got := s.Missing(tc.peer); got != tc.want {
			t.Errorf("Missing(%+v) = %d, want %d", tc.peer, got, tc.want)
		}
	}
}

// Map iteration order must never show: stores given the same records in
// any order encode, list and send alike.
func TestOutputsAreDeterministic(t *testing.T) {
	recs := storeSamples()
	recs = append(recs,
		newSession(ctrlC, 9, t0, sid(60), "gap", t0+hour),
		newSession(ctrlC, 12, t0, sid(61), "gap", t0+hour),
		newSerialRevocation(ctrlC, 14, t0, serial(60), 0),
		newRootRevocation(ctrlB, 4, t0+hour, "ctrl-a", t0, 0),
		newSigner(ctrlC, 20, t0, "ctrl-c", 1, t0+hour),
		newSigner(ctrlC, 21, t0, "ctrl-c", 2, t0+hour),
	)
	var first *Store
	for i := 0; i < 10; i++ {
		s := NewStore()
		for j := range recs {
			mustMerge(t, s, recs[(j*5+i*3)%len(recs)])
		}
		if first == nil {
			first = s
			continue
		}
		if !bytes.Equal(snapshotBytes(t, s), snapshotBytes(t, first)) {
			t.Fatal("snapshots differ")
		}
		for _, peer := range []Context{nil, {{Author: ctrlC, Max: 9}}, {{Author: ctrlA, Max: 1}, {Author: ctrlC, Max: 0, Above: []uint64{12}}}} {
			for _, budget := range []int{1, 300, 1 << 20} {
				if diff := cmp.Diff(first.DeltaSince(peer, budget), s.DeltaSince(peer, budget)); diff != "" {
					t.Fatalf("DeltaSince(%v, %d) differs:\n%s", peer, budget, diff)
				}
			}
		}
		if diff := cmp.Diff(first.Signers("ctrl-c"), s.Signers("ctrl-c")); diff != "" {
			t.Fatalf("Signers differ:\n%s", diff)
		}
	}
}

// Merging keeps a record's values; interning only swaps a string for an
// equal one, and a second store does not write a record already interned
// alike.
func TestInterningKeepsValues(t *testing.T) {
	a, b := NewStore(), NewStore()
	r1 := newSession(ctrlA, 1, t0, sid(1), string([]byte("alice")), t0+hour)
	r2 := newCert(ctrlA, 2, t0, serial(1), sid(1), string([]byte("alice")), t0+hour)
	mustMerge(t, a, r1, r2)
	if r1.Identity != "alice" || r2.Identity != "alice" || !sameString(r1.Identity, r2.Identity) {
		t.Fatal("identity not interned")
	}
	want := *r2
	mustMerge(t, b, r2, r1)
	if diff := cmp.Diff(&want, r2); diff != "" {
		t.Fatalf("merge changed the record:\n%s", diff)
	}
}

// A long-lived record among collected ones pins one page of its log, not
// every slot written since.
func TestCollectFreesPagesAroundLongLivedRecords(t *testing.T) {
	s := NewStore()
	mustMerge(t, s, newSerialRevocation(ctrlA, 1, t0, serial(1), 0))
	for seq := uint64(2); seq <= 10_000; seq++ {
		mustMerge(t, s, newSession(ctrlA, seq, t0, sid(int(seq)), "alice", t0+hour))
	}
	if n := s.Collect(t0+48*hour, DefaultMaxOffset, time.Minute); n != 9_999 {
		t.Fatalf("collected %d", n)
	}
	l := s.authors[ctrlA]
	if len(l.pages) != 1 || len(l.keys) != 1 || l.top() != 1 {
		t.Fatalf("%d pages, %d keys, top %d", len(l.pages), len(l.keys), l.top())
	}
	d := s.DeltaSince(nil, 1<<20)
	if len(d.Records) != 1 || !cmp.Equal(d.Intervals, []Interval{{ctrlA, 0, 10_000}}) {
		t.Fatalf("delta: %d records, %v", len(d.Records), d.Intervals)
	}
	mustMerge(t, s, newSession(ctrlA, 10_001, t0+48*hour, sid(1), "bob", t0+50*hour))
	if s.Len() != 2 || len(l.pages) != 2 {
		t.Fatalf("Len %d, %d pages", s.Len(), len(l.pages))
	}
}

// No store holds a record or a dot more than MaxSeqAhead above its
// author's contiguous seq, so a snapshot that does is refused whole.
func TestRestoreRefusesWhatNoStoreCouldHold(t *testing.T) {
	for name, snap := range map[string]*Snapshot{
		"record": {
			Context: Context{{Author: ctrlA, Max: 5}},
			Records: []Record{newSession(ctrlA, 5+MaxSeqAhead+1, t0, sid(1), "alice", t0+hour)},
		},
		"record of an unknown author": {
			Records: []Record{newSession(ctrlB, 1<<40, t0, sid(1), "alice", t0+hour)},
		},
		"dot": {
			Context: Context{{Author: ctrlA, Max: 5, Above: []uint64{7, 1 << 40}}},
		},
	} {
		s := NewStore()
		mustMerge(t, s, newSession(ctrlC, 1, t0, sid(9), "carol", t0+hour))
		before := snapshotBytes(t, s)
		if err := s.RestoreVerified(snap); !errors.Is(err, ErrTooFarAhead) {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(before, snapshotBytes(t, s)) {
			t.Errorf("%s: the store changed", name)
		}
	}
}

// TestReserveChangesNothingButCapacity: a store that reserved room holds
// and answers exactly as one that did not, and Reserve on a store that
// holds records keeps them.
func TestReserveChangesNothingButCapacity(t *testing.T) {
	plain, reserved := NewStore(), NewStore()
	reserved.Reserve(100, 200)
	mustMerge(t, plain, storeSamples()...)
	mustMerge(t, reserved, storeSamples()...)
	if plain.Digest() != reserved.Digest() || plain.Len() != reserved.Len() {
		t.Fatalf("reserved store: %d records, digest %x; plain: %d, %x",
			reserved.Len(), reserved.Digest(), plain.Len(), plain.Digest())
	}
	if !bytes.Equal(snapshotBytes(t, plain), snapshotBytes(t, reserved)) {
		t.Error("snapshots differ")
	}
	reserved.Reserve(1000, 1000)
	if !bytes.Equal(snapshotBytes(t, plain), snapshotBytes(t, reserved)) {
		t.Error("Reserve on a store that holds records changed it")
	}
	if _, ok := reserved.Session(sid(1)); !ok {
		t.Error("Reserve on a store that holds records lost a session")
	}
	if _, ok := reserved.Cert(serial(2)); !ok {
		t.Error("Reserve on a store that holds records lost a certificate")
	}
}
