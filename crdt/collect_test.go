package crdt

import (
	"fmt"
	"testing"
	"time"
)

// collectSamples is a store's worth of records across three authors and
// several pages each: sessions, certificates, rotations and revocations,
// about half of them due for collection at t0+3h.
func collectSamples() []Record {
	var recs []Record
	seqs := map[Author]uint64{}
	next := func(a Author) uint64 { seqs[a]++; return seqs[a] }
	for i := range 300 {
		a := []Author{ctrlA, ctrlB, {"ctrl-c", 1}}[i%3]
		end := t0 + hour
		if i%2 == 1 {
			end = t0 + 48*hour
		}
		id, sn := sid(i), serial(i)
		name := fmt.Sprintf("user-%d", i)
		recs = append(recs, newSession(a, next(a), t0, id, name, end), newCert(a, next(a), t0, sn, id, name, end))
		switch i % 7 {
		case 0:
			recs = append(recs, newSerialRevocation(a, next(a), t0+minute, sn, t0+hour))
		case 1:
			recs = append(recs, newSessionRevocation(a, next(a), t0+minute, id, 0))
		case 2:
			recs = append(recs, newSerialRevocation(a, next(a), t0+minute, serial(1000+i), t0+hour)) // target never seen
		}
	}
	return recs
}

// A collection made in steps of any size, with merges in between, ends
// where Collect ends, with indexes that match the records held.
func TestCollectionInStepsMatchesCollect(t *testing.T) {
	recs := collectSamples()
	now := t0 + 3*hour
	// Merged between steps, as the mesh's loop merges what it receives:
	// young records of another author, which nothing collects.
	var fresh []Record
	for i := range 100 {
		fresh = append(fresh, newSession(Author{"ctrl-b0", 1}, uint64(i+1), now-minute, sid(2000+i), "new", now+hour))
	}
	whole := NewStore()
	mustMerge(t, whole, recs...)
	mustMerge(t, whole, fresh...)
	want := whole.Collect(now, 10*time.Second, time.Minute)
	if want == 0 || want == len(recs) {
		t.Fatalf("Collect dropped %d of %d: the samples test nothing", want, len(recs))
	}
	for _, budget := range []int{1, 7, 64, 1000} {
		s := NewStore()
		mustMerge(t, s, recs...)
		c := s.StartCollect(now, 10*time.Second, time.Minute)
		rest := fresh
		steps := 0
		for !c.Step(budget) {
			steps++
			n := min(len(rest), 3)
			mustMerge(t, s, rest[:n]...)
			rest = rest[n:]
		}
		mustMerge(t, s, rest...)
		if c.Dropped() != want || s.Digest() != whole.Digest() || s.Len() != whole.Len() {
			t.Fatalf("budget %d: dropped %d, digest %x len %d; Collect dropped %d, digest %x len %d",
				budget, c.Dropped(), s.Digest(), s.Len(), want, whole.Digest(), whole.Len())
		}
		if budget == 1 && steps < 10 {
			t.Fatalf("budget 1 took %d steps: not incremental", steps)
		}
		assertIndexesMatchRebuild(t, s, now)
	}
}

// A certificate that arrives while a collection is under way, covered by
// a revocation that collection is about to drop, keeps the revocation:
// the rule built at the start did not know it.
func TestCollectionKeepsARevocationWhoseTargetArrivedMeanwhile(t *testing.T) {
	s := NewStore()
	now := t0 + 3*hour
	first := newCert(ctrlA, 1, t0, serial(1), sid(1), "alice", t0+hour) // expired: collectable
	rev := newSerialRevocation(ctrlB, 1, t0+minute, serial(1), t0+hour) // goes with first
	mustMerge(t, s, first, rev)
	c := s.StartCollect(now, 10*time.Second, time.Minute)
	// A second record for the serial, valid for two more days, arrives
	// before the sweep reaches ctrlB's log.
	c.Step(1)
	mustMerge(t, s, newCert(ctrlA, 2, t0, serial(1), sid(1), "alice", t0+48*hour))
	for !c.Step(1) {
	}
	if s.Get(rev.Head().Dot()) == nil {
		t.Fatal("the revocation went while a certificate it covers is held")
	}
	if v := s.Admission(CertFacts{Serial: serial(1), Session: sid(1), Identity: "alice", Issuer: ctrlA.Name,
		NotBefore: t0, NotAfter: t0 + 48*hour}, now, false); v == Admit {
		t.Fatal("the revoked serial is admitted")
	}
}

// The intern table is rebuilt in steps too, and keeps the strings of the
// records merged during the rebuild.
func TestCollectionRebuildsTheInternTableInSteps(t *testing.T) {
	s := NewStore()
	var seq uint64
	for i := range 3000 {
		seq++
		mustMerge(t, s, newSession(ctrlA, seq, t0, sid(i), fmt.Sprintf("gone-%d", i), t0+hour))
	}
	for i := range 200 {
		seq++
		mustMerge(t, s, newSession(ctrlA, seq, t0, sid(5000+i), "stays", t0+48*hour))
	}
	c := s.StartCollect(t0+3*hour, 10*time.Second, time.Minute)
	merged := false
	for !c.Step(1) {
		if s.fresh != nil && !merged {
			seq++
			mustMerge(t, s, newSession(ctrlA, seq, t0+2*hour, sid(9999), "arrived", t0+48*hour))
			merged = true
		}
	}
	if !merged {
		t.Fatal("the intern table was not rebuilt")
	}
	for _, name := range []string{"stays", "arrived"} {
		if _, ok := s.names[name]; !ok {
			t.Errorf("%q not interned after the rebuild", name)
		}
	}
	if _, ok := s.names["gone-7"]; ok {
		t.Error("an identity no record uses any more is still interned")
	}
}
