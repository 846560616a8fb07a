package crdt

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// Invariants that must hold whatever arrives, in whatever order.

type query struct {
	f      CertFacts
	now    Millis
	strict bool
}

// A revoked session or certificate never becomes admissible again: once
// Admission or Live gives a revocation verdict, no later merge, delta or
// Collect turns it into Admit. Admission is asked at instants after the
// latest Collect (asking about the past after collecting it would ask the
// store for what it chose to forget). The revocations are those that count
// once everything has arrived: one that a revoked controller wrote beyond
// the cut of its revocation is dropped when the cut arrives, by design (it
// was written with a key the root had revoked).
func TestPropertyRevokedNeverAdmissibleAgain(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 12)
		all := newModel(w.recs)
		w.recs = slices.DeleteFunc(w.recs, func(r Record) bool {
			switch r.(type) {
			case *RevocationRecord, *IdentityRevocationRecord:
				return !all.live(r)
			}
			return false
		})
		s := NewStore()
		peer := NewStore() // holds everything, answers anti-entropy
		for _, r := range w.recs {
			merge(t, peer, r)
		}
		var qs []query
		for _, f := range w.queries() {
			for _, now := range w.now {
				qs = append(qs, query{f, now + 12*hour, false}, query{f, now + 12*hour, true})
			}
		}
		revoked := make(map[query]Verdict)
		liveRevoked := make(map[query]Verdict)
		collectedAt := Millis(math.MinInt64)
		collect := rapid.Bool().Draw(t, "collect")
		check := func(step string) {
			for _, q := range qs {
				if q.now < collectedAt {
					continue
				}
				v := s.Admission(q.f, q.now, q.strict)
				if was, ok := revoked[q]; ok && v == Admit {
					t.Fatalf("%s: %+v was %v, now admitted", step, q, was)
				}
				if sticky(s, q.f, v) {
					revoked[q] = v
				}
				if collect {
					continue // Live does not look at the certificate's expiry; see Live's doc
				}
				lv := s.Live(q.f, q.now)
				if was, ok := liveRevoked[q]; ok && lv == Admit {
					t.Fatalf("%s: live %+v was %v, now admitted", step, q, was)
				}
				if sticky(s, q.f, lv) {
					liveRevoked[q] = lv
				}
			}
		}
		order := rapid.Permutation(w.recs).Draw(t, "order")
		for i, r := range order {
			switch rapid.IntRange(0, 9).Draw(t, "action") {
			case 0:
				exchange(t, peer, s, rapid.IntRange(1, 1000).Draw(t, "budget"), t0+50*hour)
			case 1:
				if collect {
					at := t0 + Millis(rapid.IntRange(0, 60).Draw(t, "collect hour"))*hour
					collectedAt = max(collectedAt, at)
					s.Collect(collectedAt, DefaultMaxOffset, time.Minute)
				}
			}
			merge(t, s, r)
			if i%3 == 0 {
				check("after merge")
			}
		}
		check("at the end")
	})
}

// sticky reports whether v revokes for good. An identity revocation
// verdict given without the session's record is provisional: the record,
// when it comes, may show a session created after the revocation.
func sticky(s *Store, f CertFacts, v Verdict) bool {
	if v == IdentityRevoked {
		_, known := s.Session(f.Session)
		return known
	}
	return v.Revoked()
}

// A collected record never comes back: not by merging it again, not in a
// delta from a peer that still holds it, not from a stale snapshot.
func TestPropertyCollectedNeverReappears(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 15)
		s, peer := NewStore(), NewStore()
		for _, r := range w.recs {
			merge(t, s, r)
			merge(t, peer, r)
		}
		stale, err := DecodeSnapshot(bytes.NewReader(snapshotBytes(t, peer)))
		if err != nil {
			t.Fatal(err)
		}
		var held []Record
		s.Range(func(r Record) bool { held = append(held, r); return true })
		now := t0 + Millis(rapid.IntRange(0, 60).Draw(t, "collect hour"))*hour
		n := s.Collect(now, DefaultMaxOffset, time.Duration(rapid.IntRange(0, 120).Draw(t, "grace minutes"))*time.Minute)
		var gone []Record
		for _, r := range held {
			if s.Get(r.Head().Dot()) == nil {
				gone = append(gone, r)
			}
		}
		if n != len(gone) {
			t.Fatalf("Collect returned %d, %d records gone", n, len(gone))
		}
		digest := s.Digest()
		for _, r := range rapid.Permutation(w.recs).Draw(t, "again") {
			if ok, err := s.MergeVerified(r); ok || (err != nil && !errors.Is(err, ErrAuthorRevoked)) {
				t.Fatalf("merging %v again: %v, %v", r.Head().Dot(), ok, err)
			}
		}
		exchange(t, peer, s, 1<<20, now)
		if err := s.RestoreVerified(stale); err != nil {
			t.Fatal(err)
		}
		for _, r := range gone {
			if s.Get(r.Head().Dot()) != nil {
				t.Fatalf("%v came back", r.Head().Dot())
			}
		}
		if s.Digest() != digest {
			t.Fatal("digest changed")
		}
		assertIndexesMatchRebuild(t, s, now)
		// Nothing the store sends a fresh peer holds a collected record.
		fresh := NewStore()
		quiesce(t, []*Store{s, fresh}, 500, now)
		if fresh.Digest() != s.Digest() {
			t.Fatal("a fresh peer ends with another digest")
		}
	})
}

// CoverInterval never covers a gap that no record held later proves older
// than MinRetention: a peer that withholds records from its deltas cannot
// make a store skip a young one.
func TestPropertyWithheldRecordsAreNeverSkipped(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 25)
		src := NewStore()
		for _, r := range w.recs {
			merge(t, src, r)
		}
		dst := NewStore()
		for _, r := range w.recs {
			if rapid.IntRange(0, 3).Draw(t, "already there") == 0 {
				merge(t, dst, r)
			}
		}
		now := t0 + Millis(rapid.IntRange(0, 30*60).Draw(t, "now minutes"))*minute
		withheld := map[Dot]bool{}
		for i := 0; i < 50; i++ {
			d := src.DeltaSince(dst.Context(), rapid.IntRange(1, 3000).Draw(t, "budget"))
			for _, r := range d.Records {
				if rapid.IntRange(0, 3).Draw(t, "withhold") == 0 {
					withheld[r.Head().Dot()] = true
					continue
				}
				merge(t, dst, r)
			}
			// A lying peer may also stretch intervals.
			for _, iv := range d.Intervals {
				iv.To += uint64(rapid.IntRange(0, 3).Draw(t, "stretch"))
				dst.CoverInterval(iv, now)
			}
			if rapid.IntRange(0, 5).Draw(t, "random interval") == 0 {
				a := rapid.SampledFrom(worldAuthors).Draw(t, "author")
				from := uint64(rapid.IntRange(0, 30).Draw(t, "from"))
				dst.CoverInterval(Interval{a, from, from + uint64(rapid.IntRange(0, 30).Draw(t, "len"))}, now)
			}
		}
		horizon := addMillis(now, -MinRetention)
		for _, l := range dst.order {
			for seq := uint64(1); seq <= l.top() || seq <= l.contiguous; seq++ {
				if !l.covered(seq) || l.entry(seq) != nil {
					continue
				}
				// Covered without being held: it must be proven old by a
				// later record held here.
				proven := false
				for later := seq + 1; later <= l.top(); later++ {
					if r := l.entry(later); r != nil && r.Head().HLC.Millis() <= horizon {
						proven = true
						break
					}
				}
				if !proven {
					t.Fatalf("%v:%d covered without a proof (withheld %v)", l.author, seq, withheld[Dot{l.author, seq}])
				}
			}
		}
	})
}

// ErrTooFarAhead leaves the store exactly as it was.
func TestPropertyTooFarAheadChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 10)
		s := NewStore()
		for _, r := range w.recs {
			merge(t, s, r)
		}
		before := snapshotBytes(t, s)
		ctx := s.Context()
		a := rapid.SampledFrom(append(worldAuthors, Author{"stranger", 9})).Draw(t, "author")
		seq := s.Contiguous(a) + MaxSeqAhead + 1 + uint64(rapid.IntRange(0, 1<<20).Draw(t, "beyond"))
		r := genRecord(t, a, seq, t0)
		if ok, err := s.MergeVerified(r); ok || !errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("merge %v: %v, %v", r.Head().Dot(), ok, err)
		}
		if !bytes.Equal(before, snapshotBytes(t, s)) {
			t.Fatal("the store changed")
		}
		if diff := cmp.Diff(ctx, s.Context(), equateEmpty); diff != "" {
			t.Fatalf("context changed:\n%s", diff)
		}
	})
}

// The records a root-revoked controller wrote after its revocation are
// dropped alike whatever the order of arrival, with the same digest.
func TestPropertyRootRevocationDropsAlikeInAnyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 12)
		// Make sure there is something to revoke.
		at := t0 + Millis(rapid.IntRange(0, 6*60).Draw(t, "revoked at"))*minute
		w.recs = append(w.recs, newRootRevocation(Author{"root-ops", 1}, 1, at+hour,
			rapid.SampledFrom(worldControllers).Draw(t, "controller"), at, 0))
		m := newModel(w.recs)
		var want []byte
		for i := 0; i < 3; i++ {
			s := NewStore()
			for _, r := range rapid.Permutation(w.recs).Draw(t, "order") {
				merge(t, s, r)
			}
			if s.Digest() != m.digest() {
				t.Fatalf("order %d: digest %x, model %x", i, s.Digest(), m.digest())
			}
			s.Range(func(r Record) bool {
				if !m.live(r) {
					t.Fatalf("order %d: holds %v, written after its author's revocation", i, r.Head().Dot())
				}
				return true
			})
			b := snapshotBytes(t, s)
			if i == 0 {
				want = b
			} else if !bytes.Equal(b, want) {
				t.Fatalf("order %d: snapshot differs", i)
			}
		}
	})
}
