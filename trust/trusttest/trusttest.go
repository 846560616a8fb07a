// Package trusttest gives tests a real PKI and controllers that write
// genuinely signed records: a root with controller intermediates and
// router leaves (made with the real pki package), and authors that sign
// with the key of their choice, as a genuine controller or a forger
// would. The tests of trust, gossip and gossip/mesh share it.
package trusttest

import (
	"crypto"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/pki/pkitest"
	"github.com/certmesh/certmesh/trust"
)

// TrustDomain is the test PKI's trust domain.
const TrustDomain = "certmesh.test"

// PKI is a root with controller intermediates and router leaves, each
// issued by the root, by name.
type PKI struct {
	Root    pki.KeyPair
	Ctrl    map[string]pki.KeyPair
	Routers map[string]pki.KeyPair
	Now     time.Time // when it was made: certificates are valid from then
}

// NewPKI makes a root valid for 24 hours from now and, valid for 12 hours
// from now, an intermediate for each of controllers and a leaf for each
// of routers (pkitest.New).
func NewPKI(t testing.TB, now time.Time, controllers, routers []string) *PKI {
	t.Helper()
	p := pkitest.New(t, TrustDomain, now, 12*time.Hour, controllers, routers)
	return &PKI{Root: p.Root, Ctrl: p.Controllers, Routers: p.Routers, Now: now}
}

// Author writes records for one controller (or, for forgery tests, anyone)
// and signs them with Key (trust.RecordSigner).
type Author struct {
	t      testing.TB
	Author crdt.Author
	Seq    uint64 // of the last record signed
	Key    crypto.Signer
	HLC    func() crdt.Timestamp // stamps each record
	// Batched makes Sign sign each record as a batch of one
	// (crdt.SignBatch), signer records excepted.
	Batched bool
}

// NewAuthor returns an author named name, of incarnation 7, that signs
// with key and stamps records with hlc.
func NewAuthor(t testing.TB, name string, key crypto.Signer, hlc func() crdt.Timestamp) *Author {
	return &Author{t: t, Author: crdt.Author{Name: name, Incarnation: 7}, Key: key, HLC: hlc}
}

// Sign gives r the author's next header and signs it.
func (w *Author) Sign(r crdt.Record) crdt.Record {
	w.t.Helper()
	w.Seq++
	*r.Head() = crdt.Header{Author: w.Author, Seq: w.Seq, HLC: w.HLC()}
	if w.Batched && r.Kind() != crdt.KindSigner {
		if err := crdt.SignBatch([]crdt.Record{r}, trust.RecordSigner{Key: w.Key}); err != nil {
			w.t.Fatal(err)
		}
		return r
	}
	if err := crdt.Sign(r, trust.RecordSigner{Key: w.Key}); err != nil {
		w.t.Fatal(err)
	}
	return r
}

// SignBatch gives recs the author's next headers and signs them with one
// signature, as a controller's group commit does.
func (w *Author) SignBatch(recs ...crdt.Record) []crdt.Record {
	w.t.Helper()
	for _, r := range recs {
		w.Seq++
		*r.Head() = crdt.Header{Author: w.Author, Seq: w.Seq, HLC: w.HLC()}
	}
	if err := crdt.SignBatch(recs, trust.RecordSigner{Key: w.Key}); err != nil {
		w.t.Fatal(err)
	}
	return recs
}

// Signer returns the signed record publishing kp's certificate.
func (w *Author) Signer(kp pki.KeyPair) *crdt.SignerRecord {
	w.t.Helper()
	r, err := trust.NewSignerRecord(kp.Cert, TrustDomain)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.Sign(r).(*crdt.SignerRecord)
}

// Session returns a signed session and its first certificate, whose id
// and serial name the author as their creator.
func (w *Author) Session(now time.Time) (*crdt.SessionRecord, *crdt.CertRecord) {
	w.t.Helper()
	sid, err := pki.NewSessionID(w.Author.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	sn, err := pki.NewSerialFor(w.Author.Name, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	id, serial := crdt.SessionID(sid), crdt.Serial(sn)
	s := &crdt.SessionRecord{ID: id, Identity: "alice", Method: "oidc",
		Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(24 * time.Hour))}
	w.Sign(s)
	c := &crdt.CertRecord{Serial: serial, Session: id, Identity: "alice",
		NotBefore: crdt.MillisOf(now.Add(-time.Minute)), NotAfter: crdt.MillisOf(now.Add(time.Hour))}
	w.Sign(c)
	return s, c
}

// FixedHLC returns a clock that ticks one logical step per call from now.
func FixedHLC(now time.Time) func() crdt.Timestamp {
	c := crdt.NewClock(0)
	return func() crdt.Timestamp { return c.Now(now) }
}
