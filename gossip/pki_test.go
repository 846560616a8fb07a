package gossip

import (
	"crypto"
	"crypto/rand"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

const testTD = "certmesh.test"

// testPKI is a root with controller intermediates and router leaves, made
// with the real pki package.
type testPKI struct {
	root    pki.KeyPair
	ctrl    map[string]pki.KeyPair
	routers map[string]pki.KeyPair
	now     time.Time
}

func newTestPKI(t testing.TB, now time.Time, controllers, routers []string) *testPKI {
	t.Helper()
	root, err := pki.NewRoot(testTD, 24*time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{root: root, ctrl: map[string]pki.KeyPair{}, routers: map[string]pki.KeyPair{}, now: now}
	for _, c := range controllers {
		if p.ctrl[c], err = pki.NewController(root, testTD, c, 12*time.Hour, now, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range routers {
		if p.routers[r], err = pki.NewRouter(root, testTD, r, nil, 12*time.Hour, now, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// author writes records for one controller (or, for forgery tests, anyone)
// and signs them with key.
type author struct {
	t    testing.TB
	a    crdt.Author
	seq  uint64
	key  crypto.Signer
	hlc  func() crdt.Timestamp
	next byte
}

func newAuthor(t testing.TB, name string, key crypto.Signer, hlc func() crdt.Timestamp) *author {
	return &author{t: t, a: crdt.Author{Name: name, Incarnation: 7}, key: key, hlc: hlc}
}

func (w *author) sign(r crdt.Record) crdt.Record {
	w.t.Helper()
	w.seq++
	*r.Head() = crdt.Header{Author: w.a, Seq: w.seq, HLC: w.hlc()}
	if err := crdt.Sign(r, RecordSigner{w.key}); err != nil {
		w.t.Fatal(err)
	}
	return r
}

// signer returns the signed record publishing kp's certificate.
func (w *author) signer(kp pki.KeyPair) *crdt.SignerRecord {
	w.t.Helper()
	r, err := NewSignerRecord(kp.Cert, testTD)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.sign(r).(*crdt.SignerRecord)
}

// session returns a signed session and its first certificate.
func (w *author) session(now time.Time) (*crdt.SessionRecord, *crdt.CertRecord) {
	w.next++
	sid, err := pki.NewSessionID(w.a.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	sn, err := pki.NewSerialFor(w.a.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	id, serial := crdt.SessionID(sid), crdt.Serial(sn)
	s := &crdt.SessionRecord{ID: id, Identity: "alice", Method: "oidc",
		Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(24 * time.Hour))}
	w.sign(s)
	c := &crdt.CertRecord{Serial: serial, Session: id, Identity: "alice",
		NotBefore: crdt.MillisOf(now.Add(-time.Minute)), NotAfter: crdt.MillisOf(now.Add(time.Hour))}
	w.sign(c)
	return s, c
}

// fixedHLC returns a clock that ticks one logical step per call from now.
func fixedHLC(now time.Time) func() crdt.Timestamp {
	c := crdt.NewClock(0)
	return func() crdt.Timestamp { return c.Now(now) }
}
