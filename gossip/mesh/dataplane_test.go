package mesh

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
)

// A controller's writer stamps its writes with Now while the loop holds
// the mesh's lock (a long ingest or a collection step): the stamp must not
// wait for it.
func TestMeshNowDoesNotWaitForTheLock(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, nil)
	m := c.start("ctrl-a", nil)
	before := m.Now()
	m.mu.Lock()
	got := make(chan crdt.Timestamp, 1)
	go func() { got <- m.Now() }()
	select {
	case ts := <-got:
		m.mu.Unlock()
		if ts <= before {
			t.Fatalf("Now went back: %v after %v", ts, before)
		}
	case <-time.After(5 * time.Second):
		m.mu.Unlock()
		t.Fatal("Now waited for the mesh's lock")
	}
}

// Records received in a delta are checked by the check stage before the
// loop merges them: genuine ones are merged, and forged ones are refused
// for the reasons the core gives without it.
func TestMeshChecksRecordsAheadAndRefusesForgeries(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r-1": "east"})
	c.start("ctrl-a", nil) // its author signs with its clock
	m := c.start("r-1", func(cfg *Config) { cfg.Join = nil })
	if m.pre == nil {
		t.Fatal("the production verifier checks nothing ahead")
	}
	w := c.authors["ctrl-a"]
	recs := []crdt.Record{w.Signer(c.pki.Ctrl["ctrl-a"])}
	for range 40 {
		s, cert := w.Session(time.Now())
		recs = append(recs, s, cert)
	}
	theirs := recs[3].(*crdt.SessionRecord)
	notMine, _ := w.Session(time.Now())
	notMine.ID = crdt.SessionID{1, 2, 3} // not created by ctrl-a
	w.Sign(notMine)
	forged := *recs[4].(*crdt.CertRecord)
	forged.Identity = "mallory"
	forged.Seq = w.Seq + 1 // a dot of its own, under another's signature
	recs = append(recs, &forged, notMine)
	f, err := gossip.EncodeFrame("ctrl-a", &gossip.Message{Type: gossip.MsgDelta, SentAt: crdt.MillisOf(time.Now()), Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	delegate{m}.NotifyMsg(f)
	want := len(recs) - 2
	testutil.Eventually(t, 10*time.Second, "genuine records merged", func() bool {
		n := 0
		m.View(func(s *crdt.Store) { n = s.Len() })
		return n == want
	})
	m.View(func(s *crdt.Store) {
		if _, ok := s.Session(theirs.ID); !ok {
			t.Error("a genuine session is missing")
		}
		if _, ok := s.Session(notMine.ID); ok {
			t.Error("a session ctrl-a did not create was merged")
		}
	})
	st := m.Stats()
	if st.Rejected["bad_signature"] != 1 || st.Rejected["not_creator"] != 1 {
		t.Fatalf("rejected %v, want one bad_signature and one not_creator", st.Rejected)
	}
}

// A record that comes again, and a forged copy of one that comes first,
// through the check stage: the genuine records are merged once, the
// forged copy is refused.
func TestCheckStageTakesCopiesAndForgedCopies(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r-1": "east"})
	c.start("ctrl-a", nil)
	m := c.start("r-1", func(cfg *Config) { cfg.Join = nil })
	w := c.authors["ctrl-a"]
	frame := func(recs ...crdt.Record) *gossip.Frame {
		return &gossip.Frame{From: "ctrl-a", Msg: &gossip.Message{Type: gossip.MsgDelta, Records: recs}}
	}
	copyOf := func(r *crdt.CertRecord) *crdt.CertRecord { c := *r; return &c }
	m.check([]*gossip.Frame{frame(w.Signer(c.pki.Ctrl["ctrl-a"]))})
	s, cert := w.Session(time.Now())
	s2, cert2 := w.Session(time.Now())
	forged := copyOf(cert2)
	forged.Identity = "mallory"
	m.check([]*gossip.Frame{frame(s, cert), frame(copyOf(cert))}) // a copy in the same batch
	m.check([]*gossip.Frame{frame(copyOf(cert))})                 // and in the next
	m.check([]*gossip.Frame{frame(forged)})                       // a forgery ahead of the genuine record
	m.check([]*gossip.Frame{frame(s2, cert2)})
	testutil.Eventually(t, 10*time.Second, "genuine records merged", func() bool {
		n := 0
		m.View(func(s *crdt.Store) { n = s.Len() })
		return n == 5
	})
	m.View(func(s *crdt.Store) {
		if r, ok := s.Cert(cert2.Serial); !ok || r.Identity != cert2.Identity {
			t.Errorf("certificate record %+v after a forged copy came first", r)
		}
	})
	if st := m.Stats(); st.Rejected["bad_signature"] != 1 {
		t.Fatalf("rejected %v, want the forged copy as bad_signature", st.Rejected)
	}
}
