package crdt

import (
	"errors"
	"testing"
)

// A controller the root revoked is cut by what other controllers held of
// it when they applied the revocation, not by the HLC its stolen key
// chooses: backdated records after the cut never count, whatever the
// order in which a replica receives them, and what it wrote before the
// cut (its revocations above all) still counts.
func TestRevokedControllerIsCutByWhatOthersHeld(t *testing.T) {
	revokedAt := t0 + 10*hour
	// Before the revocation ctrl-a wrote a session, its certificate and a
	// revocation of another serial, stamped after the root's revocation
	// time (written while the revocation was on its way).
	before := []Record{
		newSession(ctrlA, 1, t0, sid(1), "alice", t0+24*hour),
		newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+24*hour),
		newSerialRevocation(ctrlA, 3, revokedAt+minute, serial(7), 0),
	}
	// ctrl-b applied the root's revocation holding all three.
	rev := withCut(newRootRevocation(ctrlB, 1, revokedAt+2*minute, "ctrl-a", revokedAt, 0),
		AuthorContext{Author: ctrlA, Max: 3})
	// The stolen key then writes backdated records: a session for ctrl-b's
	// client with a 30-day expiry, and a revocation of a valid serial.
	forged := []Record{
		newSession(ctrlA, 4, t0, sid(2), "bob", t0+30*24*hour),
		newSerialRevocation(ctrlA, 5, t0, serial(2), 0),
		newSessionRevocation(ctrlA, 6, t0, sid(3), 0),
	}
	// The key also signs a revocation of itself with a cut covering all of
	// it: a cut counts only from another controller.
	selfCut := withCut(newRootRevocation(ctrlA, 7, t0, "ctrl-a", revokedAt, 0), AuthorContext{Author: ctrlA, Max: 100})

	orders := map[string][]Record{
		"revocation first": append(append([]Record{rev, selfCut}, before...), forged...),
		"revocation last":  append(append(append([]Record{}, forged...), before...), selfCut, rev),
		"interleaved":      {forged[0], before[0], rev, forged[1], before[1], selfCut, forged[2], before[2]},
	}
	var digest uint64
	for name, recs := range orders {
		s := NewStore()
		for _, r := range recs {
			if _, err := s.MergeVerified(r); err != nil && !errors.Is(err, ErrAuthorRevoked) {
				t.Fatalf("%s: merge %v: %v", name, r.Head().Dot(), err)
			}
		}
		if digest == 0 {
			digest = s.Digest()
		} else if s.Digest() != digest {
			t.Errorf("%s: digest %x, another order gave %x", name, s.Digest(), digest)
		}
		for _, r := range forged {
			if !s.Has(r.Head().Dot()) {
				t.Errorf("%s: dot %v of a dropped record is not covered", name, r.Head().Dot())
			}
		}
		if _, ok := s.sessions.m[sid(2)]; ok {
			t.Errorf("%s: the backdated session record counts", name)
		}
		if s.revokedSerials.has(serial(2)) || s.revokedSessions.has(sid(3)) {
			t.Errorf("%s: a backdated revocation from the revoked key counts", name)
		}
		if !s.revokedSerials.has(serial(7)) {
			t.Errorf("%s: the revocation ctrl-a wrote before the cut was undone", name)
		}
		if _, ok := s.sessions.m[sid(1)]; !ok {
			t.Errorf("%s: ctrl-a's session from before the cut does not count", name)
		}
	}
}

// Without a cut (a revocation written before cuts existed, or only by the
// revoked controller itself), the HLC rule alone applies: records stamped
// after the revocation time are dropped, revocations are kept.
func TestRevocationWithoutACutFallsBackToTheHLC(t *testing.T) {
	revokedAt := t0 + 10*hour
	s := NewStore()
	mustMerge(t, s,
		newRootRevocation(ctrlB, 1, revokedAt, "ctrl-a", revokedAt, 0),
		newSession(ctrlA, 1, t0, sid(1), "alice", t0+24*hour),
		newSession(ctrlA, 2, revokedAt+minute, sid(2), "bob", t0+24*hour),
		newSerialRevocation(ctrlA, 3, revokedAt+minute, serial(2), 0),
	)
	if _, ok := s.sessions.m[sid(1)]; !ok {
		t.Error("a session stamped before the revocation was dropped")
	}
	if _, ok := s.sessions.m[sid(2)]; ok {
		t.Error("a session stamped after the revocation counts")
	}
	if !s.revokedSerials.has(serial(2)) {
		t.Error("a revocation was dropped with no cut to say so")
	}
}

func TestHeldOfIsTheCut(t *testing.T) {
	s := NewStore()
	mustMerge(t, s,
		newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour),
		newSession(ctrlA, 2, t0, sid(2), "alice", t0+hour),
		newSession(ctrlA, 5, t0, sid(5), "alice", t0+hour),
		newSession(ctrlA2, 1, t0, sid(6), "alice", t0+hour),
		newSession(ctrlB, 1, t0, sid(7), "bob", t0+hour),
	)
	got := s.HeldOf("ctrl-a")
	want := []AuthorContext{{Author: ctrlA, Max: 2, Above: []uint64{5}}, {Author: ctrlA2, Max: 1}}
	if len(got) != len(want) {
		t.Fatalf("HeldOf = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Author != want[i].Author || got[i].Max != want[i].Max || len(got[i].Above) != len(want[i].Above) {
			t.Fatalf("HeldOf = %v, want %v", got, want)
		}
	}
	if err := validateCut("ctrl-a", got); err != nil {
		t.Errorf("HeldOf gives an invalid cut: %v", err)
	}
	if got := s.HeldOf("ctrl-z"); got == nil || len(got) != 0 {
		t.Errorf("HeldOf an unknown controller = %#v, want an empty, non-nil cut", got)
	}
}

// A revoked key signing without end does not grow the store: what it
// writes past the cut is kept aside only up to a bound, and every dot
// stays covered.
func TestRecordsOfARevokedKeyAreKeptAsideWithinABound(t *testing.T) {
	s := NewStore()
	mustMerge(t, s, withCut(newRootRevocation(ctrlB, 1, t0, "ctrl-a", t0, 0), AuthorContext{Author: ctrlA}))
	const n = 5 * MaxDroppedPerAuthor
	for seq := uint64(1); seq <= n; seq++ {
		r := newSession(ctrlA, seq, t0, sid(int(seq)), "mallory", 1<<62) // never expires
		if _, err := s.MergeVerified(r); !errors.Is(err, ErrAuthorRevoked) {
			t.Fatalf("seq %d: %v, want ErrAuthorRevoked", seq, err)
		}
	}
	l := s.lookup(ctrlA)
	if l.ndropped >= 2*MaxDroppedPerAuthor {
		t.Errorf("%d records kept aside, want fewer than %d", l.ndropped, 2*MaxDroppedPerAuthor)
	}
	if l.contiguous != n {
		t.Errorf("contiguous %d, want every one of the %d dots covered", l.contiguous, n)
	}
	if s.Len() != 1 {
		t.Errorf("store holds %d records, want the revocation alone", s.Len())
	}
}
