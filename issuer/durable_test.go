package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

func TestRestartKeepsEverything(t *testing.T) {
	e := newEnv(t)
	var sessions []*session
	for _, who := range []string{"alice", "bob", "carol"} {
		sessions = append(sessions, e.login(who))
	}
	s2, _ := e.rotate(sessions[0])
	e.revoke(api.RevocationRequest{Identity: "bob"})
	author, next := e.c.Author(), e.c.NextSeq()
	var digest uint64
	e.mesh.View(func(st *crdt.Store) { digest = st.Digest() })

	e.restart()
	if e.c.Author() != author {
		t.Fatalf("author %v after restart, was %v", e.c.Author(), author)
	}
	if e.c.NextSeq() != next {
		t.Errorf("next seq %d after restart, was %d", e.c.NextSeq(), next)
	}
	e.mesh.View(func(st *crdt.Store) {
		if st.Digest() != digest {
			t.Errorf("digest %x after restart, was %x", st.Digest(), digest)
		}
		if got := st.VersionVector()[author]; got != next-1 {
			t.Errorf("version vector %d, want %d", got, next-1)
		}
		if n := len(st.Signers("c1")); n != 1 {
			t.Errorf("%d signer records for c1; a restart must not publish the same key again", n)
		}
	})
	if v := e.verdict(s2); v != crdt.Admit {
		t.Errorf("rotated certificate after restart: %v", v)
	}
	if v := e.verdict(sessions[1]); v != crdt.IdentityRevoked {
		t.Errorf("revoked identity after restart: %v", v)
	}
	// The session rotated before the restart still rotates.
	if _, r := e.rotate(s2); r.status != http.StatusCreated {
		t.Errorf("rotation after restart: %d %s", r.status, r.body)
	}
	if got := e.mesh.published[0].Head().Seq; got != next {
		t.Errorf("first write after restart has seq %d, want %d", got, next)
	}
}

func TestEmptyDataDirGetsANewIncarnation(t *testing.T) {
	e := newEnv(t)
	e.login("alice")
	old := e.c.Author()
	if err := e.c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(e.cfg.Node.DataDir); err != nil {
		t.Fatal(err)
	}
	e.start()
	if e.c.Author().Name != old.Name || e.c.Author().Incarnation == old.Incarnation {
		t.Errorf("author %v after losing the disk, was %v", e.c.Author(), old)
	}
	if e.c.NextSeq() != 2 { // seq 1 is the signer record
		t.Errorf("next seq %d", e.c.NextSeq())
	}
}

// peerRecords returns n session records written by another controller, with
// seqs from seqs.
func peerRecords(author crdt.Author, hlc time.Time, seqs ...uint64) []crdt.Record {
	var out []crdt.Record
	for _, s := range seqs {
		r := &crdt.SessionRecord{Identity: "peer-user", Method: "oidc", Created: crdt.MillisOf(hlc), Expires: crdt.MillisOf(hlc.Add(time.Hour))}
		r.ID[0], r.ID[15] = byte(s), 1
		r.Author, r.Seq, r.HLC = author, s, crdt.NewTimestamp(crdt.MillisOf(hlc), uint16(s))
		out = append(out, r)
	}
	return out
}

func TestReceivedRecordsArePersisted(t *testing.T) {
	e := newEnv(t)
	c2 := crdt.Author{Name: "c2", Incarnation: 42}
	now := time.Now()
	// With a gap at 4: the coverage persists it as such.
	e.mesh.deliver(peerRecords(c2, now, 1, 2, 3, 5)...)
	e.restart()
	e.mesh.View(func(st *crdt.Store) {
		for _, s := range []uint64{1, 2, 3, 5} {
			if st.Get(crdt.Dot{Author: c2, Seq: s}) == nil {
				t.Errorf("record %d of c2 lost in the restart", s)
			}
		}
		if st.Has(crdt.Dot{Author: c2, Seq: 4}) {
			t.Error("a dot never received is covered")
		}
	})

	// Records the mesh merged before the controller subscribed (while
	// joining) are persisted at Start.
	if err := e.c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := Open(e.cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range peerRecords(c2, now, 4, 6) {
		if _, err := c.Store().MergeVerified(r); err != nil {
			t.Fatal(err)
		}
	}
	m := newFakeMesh(c.Store())
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.mesh.View(func(st *crdt.Store) {
		if got := st.VersionVector()[c2]; got != 6 {
			t.Errorf("c2 at %d after restart, want 6", got)
		}
	})
}

func TestExpiredRecordsLeaveTheDiskButStayCovered(t *testing.T) {
	e := newEnv(t)
	c2 := crdt.Author{Name: "c2", Incarnation: 7}
	old := time.Now().Add(-48 * time.Hour)
	e.mesh.deliver(peerRecords(c2, old, 1, 2, 3)...)
	fresh := peerRecords(c2, time.Now(), 4)
	e.mesh.deliver(fresh...)
	e.restart() // persists the received records
	n, err := e.c.db.collect(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("collected %d records, want the 3 expired ones", n)
	}
	e.restart()
	e.mesh.View(func(st *crdt.Store) {
		for s := uint64(1); s <= 4; s++ {
			d := crdt.Dot{Author: c2, Seq: s}
			if !st.Has(d) {
				t.Errorf("dot %v no longer covered", d)
			}
			if held := st.Get(d) != nil; held != (s == 4) {
				t.Errorf("dot %v held: %v", d, held)
			}
		}
	})
}

func TestConcurrentWritesArePublishedInSeqAndHLCOrder(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, csr := newCSR(t)
			r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("u"), "csr": csr})
			if r.status != 201 {
				t.Errorf("%d %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	e.mesh.mu.Lock()
	defer e.mesh.mu.Unlock()
	pub := e.mesh.published
	if len(pub) != 1+64 {
		t.Fatalf("%d records published", len(pub))
	}
	for i := 1; i < len(pub); i++ {
		a, b := pub[i-1].Head(), pub[i].Head()
		if b.Seq != a.Seq+1 || b.HLC <= a.HLC {
			t.Fatalf("record %d: seq %d HLC %v after seq %d HLC %v", i, b.Seq, b.HLC, a.Seq, a.HLC)
		}
	}
}

func TestSigningKeyRotationOnReload(t *testing.T) {
	e := newEnv(t)
	before := e.login("alice")

	newKP, err := pki.RotateController(e.pkiDir, "c1", pki.RotateOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Reload(); err != nil {
		t.Fatal(err)
	}
	e.mesh.mu.Lock()
	keys := e.mesh.keys
	e.mesh.mu.Unlock()
	if len(keys) != 1 || len(keys[0]) != 32 {
		t.Errorf("gossip keyring not reloaded: %d keys", len(keys))
	}
	e.mesh.View(func(st *crdt.Store) {
		if n := len(st.Signers("c1")); n != 2 {
			t.Errorf("%d active signer records for c1, want the old and the new", n)
		}
	})
	mark := len(e.mesh.published)
	after := e.login("bob")
	newPub := newKP.Cert.PublicKey.(*ecdsa.PublicKey)
	for _, r := range e.mesh.published[mark:] {
		msg, _, err := crdt.SignatureMessage(r, crdt.SignedBytes(r))
		if err != nil || !pki.VerifyRecord(newPub, msg, r.Head().Sig()) {
			t.Errorf("record %v is not signed by the new key", r.Head().Dot())
		}
	}
	// The signer record came first, signed by the new key.
	sr, ok := e.mesh.published[mark-1].(*crdt.SignerRecord)
	if !ok || sr.KeyID != mustKeyID(t, newKP) || !pki.VerifyRecord(newPub, crdt.SignedBytes(sr), sr.Sig()) {
		t.Errorf("last record before the login is %T %+v", e.mesh.published[mark-1], e.mesh.published[mark-1].Head())
	}
	if err := after.leaf.CheckSignatureFrom(newKP.Cert); err != nil {
		t.Errorf("certificate after rotation not issued by the new intermediate: %v", err)
	}
	// Certificates of the old intermediate keep working, the leaf alone too.
	bare := before.cert
	bare.Certificate = bare.Certificate[:1]
	if _, r := e.rotateWith(bare); r.status != http.StatusCreated {
		t.Errorf("rotation of a pre-rotation certificate: %d %s", r.status, r.body)
	}
	// New TLS connections see a server certificate from the new key.
	conn, err := tls.Dial("tcp", e.c.APIAddr(), &tls.Config{RootCAs: e.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if chain := conn.ConnectionState().PeerCertificates; chain[0].CheckSignatureFrom(newKP.Cert) != nil {
		t.Error("API server certificate not reissued by the new intermediate")
	}
	conn.Close()

	// After a restart the new key is in use and both signers are known.
	e.restart()
	e.mesh.View(func(st *crdt.Store) {
		if n := len(st.Signers("c1")); n != 2 {
			t.Errorf("%d signer records after restart", n)
		}
	})

	// A broken key file leaves the current key in use.
	writeTestFile(t, filepath.Join(e.pkiDir, "c1", pki.KeyFile), []byte("garbage"))
	if err := e.c.Reload(); err == nil {
		t.Error("reload of a broken key file succeeded")
	}
	e.login("carol")
}

func mustKeyID(t testing.TB, kp pki.KeyPair) [32]byte {
	id, err := pki.KeyID(kp.Cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
