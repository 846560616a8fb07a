package crdt

import (
	"testing"
	"time"
)

// Controllers configured differently: ctrl-a issues sessions of 30 days,
// ctrl-b of 24 hours and writes its revocations with Until = At + 24h, its
// own session.max_lifetime. A revocation written at ctrl-b of a session
// created at ctrl-a must hold at every replica, whatever the replica's
// collection grace, until the session can no longer be used, including
// where the session's record arrives after the writer's Until passed.
func TestRevocationOutlivesWhatItCoversWhateverItsWriterSaid(t *testing.T) {
	life := Millis(MaxSessionLifetime / time.Millisecond)
	sessionEnd := t0 + life // ctrl-a's session.max_lifetime: 30 days
	revokedAt := t0 + hour
	writerUntil := revokedAt + 24*hour // ctrl-b's session.max_lifetime: 24 hours
	// Well after the writer's Until plus any slack and MinRetention; the
	// session still has 29 days to go.
	later := writerUntil + 3*hour

	session := newSession(ctrlA, 1, t0, sid(1), "alice", sessionEnd)
	first := newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+hour)
	// The certificate alice rotated to after the revocation was written
	// (at ctrl-a, which had not heard of it), valid when we ask.
	rotated := newRotation(ctrlA, 3, later-30*minute, serial(2), sid(1), "alice", later+30*minute, serial(1), 5*minute)
	facts := CertFacts{Serial: serial(2), Session: sid(1), Identity: "alice", Issuer: "ctrl-a",
		NotBefore: rotated.NotBefore, NotAfter: rotated.NotAfter, Fingerprint: rotated.Fingerprint}
	// A certificate as long-lived as the session, for the serial case.
	long := newCert(ctrlA, 4, t0, serial(3), sid(3), "bob", sessionEnd)
	bob := newSession(ctrlA, 5, t0, sid(3), "bob", sessionEnd)
	bobFacts := CertFacts{Serial: serial(3), Session: sid(3), Identity: "bob", Issuer: "ctrl-a",
		NotBefore: long.NotBefore, NotAfter: long.NotAfter, Fingerprint: long.Fingerprint}
	carol := newSession(ctrlA, 6, t0, sid(4), "carol", sessionEnd)
	carolCert := newCert(ctrlA, 7, t0, serial(4), sid(4), "carol", sessionEnd)
	carolFacts := CertFacts{Serial: serial(4), Session: sid(4), Identity: "carol", Issuer: "ctrl-a",
		NotBefore: carolCert.NotBefore, NotAfter: carolCert.NotAfter, Fingerprint: carolCert.Fingerprint}

	revokeSession := newSessionRevocation(ctrlB, 1, revokedAt, sid(1), writerUntil)
	revokeSerial := newSerialRevocation(ctrlB, 2, revokedAt, serial(3), writerUntil)
	revokeIdentity := newIdentityRevocation(ctrlB, 3, revokedAt, "carol", revokedAt, writerUntil)
	all := []Record{session, first, rotated, long, bob, carol, carolCert, revokeSession, revokeSerial, revokeIdentity}

	// Three replicas with different graces. The third is a replica that has
	// every revocation but none of ctrl-a's records yet (a partition):
	// they arrive after the writer's Until has passed.
	type replica struct {
		name  string
		s     *Store
		grace time.Duration
	}
	replicas := []replica{{"grace 1m", NewStore(), time.Minute}, {"grace 1h", NewStore(), time.Hour}, {"late ctrl-a", NewStore(), 0}}
	for _, r := range replicas[:2] {
		mustMerge(t, r.s, all...)
	}
	mustMerge(t, replicas[2].s, revokeSession, revokeSerial, revokeIdentity)
	for _, r := range replicas {
		r.s.Collect(later, DefaultMaxOffset, r.grace)
	}
	mustMerge(t, replicas[2].s, session, first, rotated, long, bob, carol, carolCert)

	for _, r := range replicas {
		for _, q := range []struct {
			f    CertFacts
			want Verdict
		}{{facts, SessionRevoked}, {bobFacts, SerialRevoked}, {carolFacts, IdentityRevoked}} {
			for _, strict := range []bool{true, false} {
				if v := r.s.Admission(q.f, later, strict); v != q.want {
					t.Errorf("%s: %s's certificate after the writer's Until (strict %v): %v, want %v", r.name, q.f.Identity, strict, v, q.want)
				}
			}
			if v := r.s.Live(q.f, later); v != q.want {
				t.Errorf("%s: %s's live connection after the writer's Until: %v, want %v", r.name, q.f.Identity, v, q.want)
			}
		}
	}

	// Once the sessions are over (30 days, plus slack and MinRetention),
	// everything goes, and every replica ends up alike.
	end := sessionEnd + 4*hour
	for _, r := range replicas {
		r.s.Collect(end, DefaultMaxOffset, r.grace)
		if n := r.s.Len(); n != 0 {
			t.Errorf("%s: %d records held after every session ended", r.name, n)
		}
	}
	if a, b, c := replicas[0].s.Digest(), replicas[1].s.Digest(), replicas[2].s.Digest(); a != b || b != c {
		t.Errorf("digests differ after collection: %x %x %x", a, b, c)
	}
}

// A revocation whose target this replica never holds is kept until its At
// plus MaxSessionLifetime: the target existed when it was revoked, so it
// cannot be usable after that.
func TestRevocationOfAnUnknownTargetIsKeptForTheMeshWideBound(t *testing.T) {
	life := Millis(MaxSessionLifetime / time.Millisecond)
	rev := newSessionRevocation(ctrlB, 1, t0, sid(9), t0+hour)
	s := NewStore()
	mustMerge(t, s, rev)
	if n := s.Collect(t0+life, DefaultMaxOffset, time.Minute); n != 0 {
		t.Fatalf("collected %d before At + MaxSessionLifetime + slack", n)
	}
	if n := s.Collect(t0+life+2*minute, DefaultMaxOffset, time.Minute); n != 1 {
		t.Fatalf("collected %d after At + MaxSessionLifetime + slack, want 1", n)
	}
}

// A revocation and the record it covers go together, at the later of the
// writer's Until and the record's expiry: the revocation never stays
// behind its collected target (where it would fall back on the 30-day
// bound), and a short session revoked for long is not dropped early.
func TestRevocationGoesWithItsTarget(t *testing.T) {
	sess := newSession(ctrlA, 1, t0, sid(1), "alice", t0+2*hour)
	rev := newSessionRevocation(ctrlB, 1, t0+hour, sid(1), t0+25*hour) // the writer keeps it 24h
	s := NewStore()
	mustMerge(t, s, sess, rev)
	if n := s.Collect(t0+3*hour, DefaultMaxOffset, time.Minute); n != 0 {
		t.Fatalf("collected %d while the revocation's Until is ahead", n)
	}
	if _, ok := s.Session(sid(1)); !ok {
		t.Fatal("the session left before its revocation")
	}
	if n := s.Collect(t0+25*hour+2*minute, DefaultMaxOffset, time.Minute); n != 2 {
		t.Fatalf("collected %d after both ended, want the session and its revocation", n)
	}
}

// BenchmarkCollectNothingDue is the common Collect: a store of sessions,
// their certificates and a revocation for one session in ten, none of them
// due. The retention rule costs one map entry per revocation held.
//
//	go test ./crdt/ -run '^$' -bench CollectNothingDue
func BenchmarkCollectNothingDue(b *testing.B) {
	const sessions = 100_000
	s := NewStore()
	var seqA, seqB uint64
	for i := 0; i < sessions; i++ {
		seqA++
		s.MergeVerified(newSession(ctrlA, seqA, t0, sid(i), "alice", t0+24*hour))
		seqA++
		s.MergeVerified(newCert(ctrlA, seqA, t0, serial(i), sid(i), "alice", t0+hour))
		if i%10 == 0 {
			seqB++
			s.MergeVerified(newSessionRevocation(ctrlB, seqB, t0+minute, sid(i), t0+24*hour))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if n := s.Collect(t0+2*hour, DefaultMaxOffset, time.Hour); n != 0 {
			b.Fatalf("collected %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(s.Len()), "ns/record")
}
