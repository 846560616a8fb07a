package crdt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// Authors of the scenario tests: three controllers, one of them rebuilt
// (a second incarnation).
var (
	ctrlA  = Author{"ctrl-a", 1}
	ctrlA2 = Author{"ctrl-a", 2}
	ctrlB  = Author{"ctrl-b", 1}
	ctrlC  = Author{"ctrl-c", 1}
)

// t0 is the scenario epoch: 2026-01-01T00:00:00Z.
const t0 = Millis(1767225600000)

const (
	second = Millis(1000)
	minute = 60 * second
	hour   = 60 * minute
)

func hlc(ms Millis) Timestamp { return NewTimestamp(ms, 0) }

// sigOf is a deterministic fake signature that differs per dot and HLC, so
// that digests tell records apart without real keys.
func sigOf(h *Header) Signature {
	var sig Signature
	sum := sha256.Sum256(fmt.Appendf(nil, "%v/%d/%d", h.Author, h.Seq, h.HLC))
	copy(sig[:], sum[:])
	copy(sig[32:], sum[:])
	return sig
}

func head(a Author, seq uint64, at Millis) Header {
	h := Header{Author: a, Seq: seq, HLC: hlc(at)}
	h.SetSig(sigOf(&h))
	return h
}

func sid(n int) SessionID {
	var id SessionID
	id[0] = 0x5e
	binary.BigEndian.PutUint64(id[8:], uint64(n))
	return id
}

func serial(n int) Serial {
	var s Serial
	s[0] = 0xce
	binary.BigEndian.PutUint64(s[8:], uint64(n))
	return s
}

func newSession(a Author, seq uint64, at Millis, id SessionID, identity string, expires Millis) *SessionRecord {
	return &SessionRecord{Header: head(a, seq, at), ID: id, Identity: identity, Method: "oidc:https://idp.example.com", Created: at, Expires: expires}
}

func newCert(a Author, seq uint64, at Millis, sn Serial, id SessionID, identity string, notAfter Millis) *CertRecord {
	return &CertRecord{Header: head(a, seq, at), Serial: sn, Session: id, Identity: identity,
		Fingerprint: sha256.Sum256(sn[:]), NotBefore: at - minute, NotAfter: notAfter}
}

func newRotation(a Author, seq uint64, at Millis, sn Serial, id SessionID, identity string, notAfter Millis, old Serial, grace Millis) *CertRecord {
	c := newCert(a, seq, at, sn, id, identity, notAfter)
	c.Supersedes, c.SupersedeAt = old, at+grace
	return c
}

func newSerialRevocation(a Author, seq uint64, at Millis, sn Serial, until Millis) *RevocationRecord {
	return &RevocationRecord{Header: head(a, seq, at), Target: RevokeSerial, Serial: sn, Reason: "key compromise", At: at, Until: until}
}

func newSessionRevocation(a Author, seq uint64, at Millis, id SessionID, until Millis) *RevocationRecord {
	return &RevocationRecord{Header: head(a, seq, at), Target: RevokeSession, Session: id, Reason: "logout", At: at, Until: until}
}

func newIdentityRevocation(a Author, seq uint64, at Millis, identity string, before, until Millis) *IdentityRevocationRecord {
	return &IdentityRevocationRecord{Header: head(a, seq, at), Identity: identity, RevokedBefore: before, Reason: "offboarded", Until: until}
}

func newSigner(a Author, seq uint64, at Millis, controller string, key byte, notAfter Millis) *SignerRecord {
	return &SignerRecord{Header: head(a, seq, at), Controller: controller, KeyID: [32]byte{key}, Cert: []byte{0x30, 0x82, key}, NotAfter: notAfter}
}

func newRootRevocation(a Author, seq uint64, at Millis, controller string, revokedAt, keepUntil Millis) *SignerRecord {
	return &SignerRecord{Header: head(a, seq, at), Controller: controller, Revoked: true, RevokedAt: revokedAt, NotAfter: keepUntil, RootSig: []byte("root-signed:" + controller)}
}

// sampleRecords holds one record of every kind, and variants, with every
// field set.
func sampleRecords() []Record {
	return []Record{
		newSession(ctrlA, 1, t0, sid(1), "alice@example.com", t0+8*hour),
		newCert(ctrlA, 2, t0+1, serial(1), sid(1), "alice@example.com", t0+hour),
		newRotation(ctrlA, 3, t0+2, serial(2), sid(1), "alice@example.com", t0+2*hour, serial(1), 5*minute),
		newSerialRevocation(ctrlB, 1, t0+3, serial(9), t0+hour),
		newSessionRevocation(ctrlB, 2, t0+4, sid(7), 0),
		newIdentityRevocation(ctrlC, 1, t0+5, "mallory@example.com", t0, t0+24*hour),
		newSigner(ctrlC, 2, t0+6, "ctrl-c", 3, t0+365*24*hour),
		newRootRevocation(ctrlB, 3, t0+7, "ctrl-z", t0-hour, 0),
		&SessionRecord{Header: head(ctrlA2, 1<<40, NewTimestamp(1<<47, 65535).Millis()), ID: sid(1 << 40), Identity: "é#\x00", Created: -5, Expires: 1 << 62},
		withCut(newRootRevocation(ctrlC, 3, t0+8, "ctrl-a", t0, 0),
			AuthorContext{Author: ctrlA, Max: 12, Above: []uint64{14, 1 << 40}}, AuthorContext{Author: ctrlA2}),
		&SessionRecord{Header: head(ctrlA, 4, t0+9), ID: sid(2), Identity: "bob@example.com", Method: "jwt:ci",
			Created: t0, Expires: t0 + hour, Roles: []string{"dev", "ops"}},
		&ServiceRecord{Header: head(ctrlB, 4, t0+10), Name: "echo", Address: "127.0.0.1:9000", Roles: []string{"public"}},
		&ServiceRecord{Header: head(ctrlB, 5, t0+11), Name: "db", Deleted: true},
		&PolicyRecord{Header: head(ctrlC, 4, t0+12), Name: "ops-echo", Identities: []string{"#ops", "@alice@example.com"},
			Services: []string{"#public", "@echo"}},
		&PolicyRecord{Header: head(ctrlC, 5, t0+13), Name: "gone", Deleted: true},
		&IdentityRolesRecord{Header: head(ctrlA, 5, t0+14), Identity: "alice@example.com", Roles: []string{"ops"}},
		&IdentityRolesRecord{Header: head(ctrlA, 6, t0+15), Identity: "carol@example.com"},
	}
}

// batchSamples are two batches of ctrl-a's records, of 5 and 1, signed
// with its test key (newTestKeys).
func batchSamples() []Record {
	recs := []Record{
		newSession(ctrlA, 10, t0, sid(10), "alice@example.com", t0+hour),
		newCert(ctrlA, 11, t0+1, serial(10), sid(10), "alice@example.com", t0+hour),
		&SessionRecord{Header: head(ctrlA, 12, t0+2), ID: sid(11), Identity: "bob@example.com", Roles: []string{"ops"}},
		newSessionRevocation(ctrlA, 13, t0+3, sid(10), 0),
		&ServiceRecord{Header: head(ctrlA, 14, t0+4), Name: "echo", Address: "127.0.0.1:9000"},
		newIdentityRevocation(ctrlA, 15, t0+5, "bob@example.com", t0, 0),
	}
	s := edSigner{keyFromName("ctrl-a")}
	if err := SignBatch(recs[:5], s); err != nil {
		panic(err)
	}
	if err := SignBatch(recs[5:], s); err != nil {
		panic(err)
	}
	return recs
}

// withCut sets a root revocation's cut.
func withCut(r *SignerRecord, cut ...AuthorContext) *SignerRecord {
	r.Cut = append([]AuthorContext{}, cut...)
	r.Header = head(r.Author, r.Seq, r.HLC.Millis())
	return r
}

// storeSamples are the sample records that a store accepts together.
func storeSamples() []Record { return sampleRecords()[:8] }

// mustMerge merges r into s and fails the test on error.
func mustMerge(t fataler, s *Store, recs ...Record) {
	helper(t)
	for _, r := range recs {
		if _, err := s.MergeVerified(r); err != nil && !errors.Is(err, ErrAuthorRevoked) {
			t.Fatalf("merge %v %v: %v", r.Kind(), r.Head().Dot(), err)
		}
	}
}

// applyDelta applies d as a receiver does: records first, then intervals.
func applyDelta(t testing.TB, s *Store, d Delta, now Millis) {
	t.Helper()
	mustMerge(t, s, d.Records...)
	for _, iv := range d.Intervals {
		s.CoverInterval(iv, now)
	}
}

// syncAll runs anti-entropy from src to dst until dst lacks nothing src can
// give, and returns the number of deltas it took.
func syncAll(t testing.TB, src, dst *Store, budget int, now Millis) int {
	t.Helper()
	for i := 0; ; i++ {
		d := src.DeltaSince(dst.Context(), budget)
		if len(d.Records) == 0 {
			applyDelta(t, dst, d, now)
			return i
		}
		if i > 100000 {
			t.Fatalf("sync did not converge")
		}
		applyDelta(t, dst, d, now)
	}
}

// fataler is what a helper needs of a *testing.T or a *rapid.T.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func helper(t fataler) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
}

func snapshotBytes(t fataler, s *Store) []byte {
	helper(t)
	var buf bytes.Buffer
	if err := s.EncodeSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testKeys is a key ring for Sign and Verify tests: one ed25519 key per
// controller name, and a root key for signer revocations.
type testKeys struct {
	priv map[string]ed25519.PrivateKey
	root ed25519.PrivateKey
}

func newTestKeys(names ...string) *testKeys {
	k := &testKeys{priv: make(map[string]ed25519.PrivateKey), root: keyFromName("root")}
	for _, n := range names {
		k.priv[n] = keyFromName(n)
	}
	return k
}

func keyFromName(n string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("test key " + n))
	return ed25519.NewKeyFromSeed(seed[:])
}

type edSigner struct{ key ed25519.PrivateKey }

func (s edSigner) Sign(msg []byte) (Signature, error) {
	var sig Signature
	copy(sig[:], ed25519.Sign(s.key, msg))
	return sig, nil
}

var errBadSig = errors.New("bad signature")

// Verify checks the record signature with its author's key, and a signer
// revocation's RootSig, here an ed25519 signature of the signed bytes by
// the root, as a stand-in for the pki's root-signed blob.
func (k *testKeys) Verify(r Record, msg []byte) error {
	priv, ok := k.priv[r.Head().Author.Name]
	if !ok {
		return fmt.Errorf("unknown author %v", r.Head().Author)
	}
	sig := r.Head().Sig()
	msg, _, err := SignatureMessage(r, msg)
	if err != nil {
		return err
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, sig[:]) {
		return errBadSig
	}
	if sr, ok := r.(*SignerRecord); ok && sr.Revoked {
		if !ed25519.Verify(k.root.Public().(ed25519.PublicKey), []byte(sr.Controller), sr.RootSig) {
			return fmt.Errorf("root signature: %w", errBadSig)
		}
	}
	return nil
}
