package mesh

import (
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// Signing authority over real meshes: a controller's records are accepted
// only while the key that signed them was valid and the controller was not
// revoked by the root, no controller can revoke another, and a controller
// whose clock runs far ahead cannot get its writes merged before time
// catches up.
//
//	go test ./gossip/mesh/ -run 'TestMeshSigner|TestMeshClockFarAhead' -v

func TestMeshSignerExpiredOrRevoked(t *testing.T) {
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "west", "ctrl-old": "east"},
		map[string]string{"r1": "east", "r2": "west"})
	// The PKI was made three hours ago; ctrl-old's intermediate was valid
	// for two of them and expired an hour ago.
	now := time.Now()
	c.pki = trusttest.NewPKI(t, now.Add(-3*time.Hour), []string{"ctrl-a", "ctrl-b"}, []string{"r1", "r2"})
	old, err := pki.NewController(c.pki.Root, trusttest.TrustDomain, "ctrl-old", 2*time.Hour, now.Add(-3*time.Hour), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c.pki.Ctrl["ctrl-old"] = old
	all := []string{"ctrl-a", "ctrl-b", "ctrl-old", "r1", "r2"}
	honest := []string{"ctrl-a", "ctrl-b", "r2"}
	for _, n := range all {
		c.start(n, nil)
	}
	for _, n := range all {
		testutil.Eventually(t, 5*time.Second, n+" sees every member", func() bool { return len(alive(c.meshes[n])) == len(all) })
	}
	c.publish("ctrl-a", 2)
	c.publish("ctrl-b", 2)
	total := 2 * 5
	c.converged(t, total, "ctrl-a", "ctrl-b", "r1", "r2")
	rogue := c.meshes["r1"] // holds the gossip key, and below, stolen controller keys

	t.Run("records signed after the signer expired are refused", func(t *testing.T) {
		rej := c.rejections(honest...)
		w := c.authors["ctrl-old"]
		w.HLC = trusttest.FixedHLC(now.Add(-2 * time.Hour)) // written while the key was valid
		signer := w.Signer(old)
		s1, ce1 := w.Session(now.Add(-2 * time.Hour))
		w.HLC = c.meshes["ctrl-old"].Now // written now, an hour after it expired
		s2, ce2 := w.Session(now)
		if err := c.meshes["ctrl-old"].Publish([]crdt.Record{signer, s1, ce1, s2, ce2}); err != nil {
			t.Fatal(err)
		}
		c.waitRejected(t, rej, map[string]uint64{"signer_expired": 2}, honest...)
		total += 3
		c.converged(t, total, append(honest, "r1")...)
		for _, n := range honest {
			if got := authoredBy(c.meshes[n], "ctrl-old"); got != 3 {
				t.Errorf("%s holds %d of ctrl-old's records, want the 3 written while its key was valid", n, got)
			}
			if h := c.meshes[n].Stats().Held; h != 0 {
				t.Errorf("%s holds %d records for later", n, h)
			}
		}
	})

	// A live certificate of each controller, to see who is trusted.
	certOf := map[string]*crdt.CertRecord{}
	for _, name := range []string{"ctrl-a", "ctrl-b"} {
		c.meshes["r2"].View(func(st *crdt.Store) {
			st.Range(func(r crdt.Record) bool {
				if cr, ok := r.(*crdt.CertRecord); ok && cr.Author.Name == name {
					certOf[name] = cr
					return false
				}
				return true
			})
		})
	}
	verdict := func(node, ctrl string) crdt.Verdict {
		cr := certOf[ctrl]
		f := crdt.CertFacts{Serial: cr.Serial, Session: cr.Session, Identity: cr.Identity, Issuer: cr.Issuer(),
			NotBefore: cr.NotBefore, NotAfter: cr.NotAfter}
		var v crdt.Verdict
		c.meshes[node].View(func(st *crdt.Store) { v = st.Admission(f, crdt.MillisOf(time.Now()), true) })
		return v
	}

	t.Run("a controller cannot revoke another", func(t *testing.T) {
		rej := c.rejections("ctrl-a", "r2")
		before := map[string]digest{"ctrl-a": c.meshes["ctrl-a"].digest(), "r2": c.meshes["r2"].digest()}
		// ctrl-b's key (stolen, or ctrl-b itself turned hostile) signs a
		// revocation of ctrl-a, and a record carrying it in ctrl-b's name.
		blob, err := pki.SignControllerRevocation(c.pki.Ctrl["ctrl-b"].Key, trusttest.TrustDomain, "ctrl-a", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trust.CheckRevocation(c.pki.Root.Cert, trusttest.TrustDomain, blob); err == nil {
			t.Fatal("a revocation signed by a controller key checks out against the root")
		}
		b := c.authors["ctrl-b"]
		rec := &crdt.SignerRecord{Controller: "ctrl-a", Revoked: true, RevokedAt: crdt.MillisOf(time.Now()), RootSig: blob}
		rec.Header = crdt.Header{Author: b.Author, Seq: b.Seq + 1, HLC: rogue.Now()}
		if err := crdt.Sign(rec, trust.RecordSigner{Key: c.pki.Ctrl["ctrl-b"].Key}); err != nil {
			t.Fatal(err)
		}
		// And the same under ctrl-a's own name, signed by ctrl-b: the root
		// signature is checked first, so both count as bad revocations.
		self := *rec
		self.Header = crdt.Header{Author: c.authors["ctrl-a"].Author, Seq: c.authors["ctrl-a"].Seq + 1, HLC: rogue.Now()}
		if err := crdt.Sign(&self, trust.RecordSigner{Key: c.pki.Ctrl["ctrl-b"].Key}); err != nil {
			t.Fatal(err)
		}
		m := &gossip.Message{Type: gossip.MsgPush, SentAt: crdt.MillisOf(time.Now()), Origin: "r1", Batch: 8001, Region: "east",
			Records: []crdt.Record{rec, &self}}
		rogue.send([]gossip.Output{{To: "ctrl-a", Msg: m}, {To: "r2", Msg: m}})
		c.waitRejected(t, rej, map[string]uint64{"bad_revocation": 2}, "ctrl-a", "r2")
		for _, n := range []string{"ctrl-a", "r2"} {
			if got := c.meshes[n].digest(); got != before[n] {
				t.Errorf("%s's state changed", n)
			}
			if v := verdict(n, "ctrl-a"); v != crdt.Admit {
				t.Errorf("%s: ctrl-a's certificate is %v after a revocation signed by ctrl-b", n, v)
			}
		}
	})

	t.Run("the root's revocation of a controller", func(t *testing.T) {
		at := time.Now()
		blob, err := pki.SignControllerRevocation(c.pki.Root.Key, trusttest.TrustDomain, "ctrl-b", at)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := trust.CheckRevocation(c.pki.Root.Cert, trusttest.TrustDomain, blob)
		if err != nil {
			t.Fatal(err)
		}
		rec := rev.Record(nil)
		c.authors["ctrl-a"].Sign(rec) // submitted at ctrl-a
		if err := c.meshes["ctrl-a"].Publish([]crdt.Record{rec}); err != nil {
			t.Fatal(err)
		}
		for _, n := range all {
			testutil.Eventually(t, 5*time.Second, n+" refuses ctrl-b's certificates", func() bool { return verdict(n, "ctrl-b") == crdt.IssuerRevoked })
			if v := verdict(n, "ctrl-a"); v != crdt.Admit {
				t.Errorf("%s: ctrl-a's certificate is %v", n, v)
			}
		}
		// ctrl-b's own mesh will not publish for it any more...
		s, ce := c.authors["ctrl-b"].Session(time.Now())
		if err := c.meshes["ctrl-b"].Publish([]crdt.Record{s, ce}); !errors.Is(err, crdt.ErrAuthorRevoked) {
			t.Errorf("a revoked controller's mesh published its record: %v", err)
		}
		// ...and what its stolen key signs later, sent by another node, is
		// refused everywhere; its dots are covered, so no gap is left.
		others := []string{"ctrl-a", "ctrl-old", "r2"}
		rej := c.rejections(others...)
		before := map[string]digest{}
		for _, n := range others {
			before[n] = c.meshes[n].digest()
		}
		s2, ce2 := c.authors["ctrl-b"].Session(time.Now())
		m := &gossip.Message{Type: gossip.MsgDelta, SentAt: crdt.MillisOf(time.Now()), Records: []crdt.Record{s, ce, s2, ce2}}
		var outs []gossip.Output
		for _, n := range others {
			outs = append(outs, gossip.Output{To: n, Msg: m, Reliable: true})
		}
		rogue.send(outs)
		c.waitRejected(t, rej, map[string]uint64{"author_revoked": 4}, others...)
		for _, n := range others {
			if got := c.meshes[n].digest(); got != before[n] {
				t.Errorf("%s merged records of the revoked controller", n)
			}
		}
	})
}

// TestMeshClockFarAhead runs a controller whose clock is 40 s ahead of the
// mesh, 30 s beyond the max offset: its records are held at every peer, not
// merged, until local time reaches their timestamps; it sees
// its own offset (and its API refuses writes from then on, which issuer
// tests check), while the honest nodes' estimates stay near zero.
func TestMeshClockFarAhead(t *testing.T) {
	const skew = crdt.DefaultMaxOffset + 30*time.Second
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "west", "ctrl-skew": "east"},
		map[string]string{"r1": "east", "r2": "west"})
	var jump atomic.Int64 // every node's clock, stepped forward to let time pass
	clock := func() time.Time { return time.Now().Add(time.Duration(jump.Load())) }
	all := []string{"ctrl-a", "ctrl-b", "ctrl-skew", "r1", "r2"}
	honest := []string{"ctrl-a", "ctrl-b", "r1", "r2"}
	for _, n := range all {
		c.start(n, func(cfg *Config) {
			cfg.Core.HeldTTL = 2 * time.Minute
			cfg.Clock = clock
			if n == "ctrl-skew" {
				cfg.Clock = func() time.Time { return clock().Add(skew) }
			}
		})
	}
	for _, n := range all {
		testutil.Eventually(t, 5*time.Second, n+" sees every member", func() bool { return len(alive(c.meshes[n])) == len(all) })
	}
	c.publish("ctrl-a", 2)
	c.converged(t, 5, honest...)

	skewed := c.meshes["ctrl-skew"]
	start := time.Now()
	testutil.Eventually(t, 10*time.Second, "ctrl-skew sees its clock off by more than half the max offset", func() bool {
		off, ok := skewed.ClockOffset()
		return ok && off > crdt.DefaultMaxOffset/2
	})
	off, _ := skewed.ClockOffset()
	t.Logf("ctrl-skew estimates its offset at %v after %v", off, time.Since(start).Round(time.Millisecond))
	// An honest node's estimate is the median over the peers it heard
	// last: it may rest on ctrl-skew alone until a second proven sample
	// arrives (about one a second), and must then come back and stay.
	for _, n := range honest {
		testutil.Eventually(t, 10*time.Second, n+", an honest node, estimates its offset within 1 s", func() bool {
			off, ok := c.meshes[n].ClockOffset()
			return ok && off >= -time.Second && off <= time.Second
		})
	}

	// Its writes (made through its mesh, as before it noticed) reach every
	// peer and are held there.
	recs := c.publish("ctrl-skew", 2)
	for _, n := range honest {
		testutil.Eventually(t, 5*time.Second, n+" holds ctrl-skew's records", func() bool { return c.meshes[n].Stats().Held >= len(recs) })
	}
	heldSince := time.Now()
	for time.Since(heldSince) < time.Second {
		for _, n := range honest {
			if got := authoredBy(c.meshes[n], "ctrl-skew"); got != 0 {
				t.Fatalf("%s merged %d records from 40 s in the future", n, got)
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a check that must keep holding
	}
	// Meanwhile the honest controllers write and replicate as usual.
	c.publish("ctrl-b", 1)
	c.converged(t, 5+3, honest...)

	// Time passes: within the max offset of the records, they are still
	// held (merging them would drag the clocks ahead); once local time
	// reaches them (41 s, stepped), every peer merges them, in order,
	// with nothing lost.
	jump.Store(int64(skew - crdt.DefaultMaxOffset + time.Second))
	for steppedSince := time.Now(); time.Since(steppedSince) < time.Second; {
		for _, n := range honest {
			if got := authoredBy(c.meshes[n], "ctrl-skew"); got != 0 {
				t.Fatalf("%s merged %d records still %v ahead of its clock", n, got, crdt.DefaultMaxOffset-time.Second)
			}
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a check that must keep holding
	}
	jump.Store(int64(skew + time.Second))
	stepped := time.Now()
	c.converged(t, 5+3+len(recs), append(honest, "ctrl-skew")...)
	t.Logf("held records merged %v after time caught up", time.Since(stepped).Round(time.Millisecond))
	for _, n := range honest {
		if h := c.meshes[n].Stats().Held; h != 0 {
			t.Errorf("%s still holds %d records", n, h)
		}
		c.meshes[n].View(func(st *crdt.Store) {
			if got := st.Contiguous(c.authors["ctrl-skew"].Author); got != uint64(len(recs)) {
				t.Errorf("%s covers ctrl-skew up to %d, want %d", n, got, len(recs))
			}
		})
	}
}
