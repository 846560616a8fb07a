package trust

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/certmesh/certmesh/crdt"
)

// Checking ahead of the merge. A record's signature is nearly all of what
// ingesting it costs (an ECDSA P-256 verification, tens of microseconds;
// the merge is well under one), and the store may only be read by its
// owner, under the lock that admission lookups take too. So a driver
// (gossip/mesh) calls Precheck on every core as records arrive, before it
// takes its lock; Precheck reads no store, only the controller
// certificates this Verifier has already checked against the root, and
// remembers which key each record's signature verified under. Under the
// lock, VerifyShared then only confirms what needs the store: that key is
// still an active signer record of the author, valid at the record's HLC,
// and the creator rule holds. Anything else (no verdict, a key no longer
// active, a verdict forgotten) takes the whole Verify path, so that what is
// accepted and every reason for refusing are those of Verify.
//
// A verdict binds the record object that was checked (its pointer), never
// its dot or signature: a peer cannot borrow another record's verdict by
// changing a body under a genuine signature. A copy of a record verified
// moments ago (the same signed bytes under the same signature) gets the
// same verdict without a second ECDSA verification. Verdicts are kept for
// the last maxPrechecked records checked, whatever becomes of them: a
// node with the gossip key but no controller key gets none stored (its
// signatures verify under no root-issued key), and a revoked controller's
// key fills at most this bound.

// maxPrechecked bounds the verdicts a Verifier remembers: two generations
// of half of it. A verdict is used within moments (gossip/mesh runs its
// checks at most 16,384 records ahead of its loop); one forgotten costs
// only a verification under the lock.
const maxPrechecked = 1 << 16

// prechecked remembers, per record object, the key its signature verified
// under, and per dot the record object verified last: a record comes to a
// node more than once (down each eager tree, again in anti-entropy and in
// repairs), and a copy identical to one verified needs no second ECDSA
// verification.
type prechecked struct {
	keys generations[crdt.Record, *signerCert]
	dots generations[crdt.Dot, dotVerdict]
}

func newPrechecked() prechecked {
	return prechecked{
		keys: newGenerations[crdt.Record, *signerCert](maxPrechecked),
		dots: newGenerations[crdt.Dot, dotVerdict](maxPrechecked),
	}
}

// dotVerdict is what a copy of a verified record must match: its signed
// bytes (by their SHA-256; the record object itself may by now be in the
// store, where the store's owner may rewrite its strings to equal ones)
// and its signature.
type dotVerdict struct {
	sum   [sha256.Size]byte
	sig   crdt.Signature
	batch [sha256.Size]byte // the batch message's hash; zero for a record signed alone
	sc    *signerCert
}

func (p *prechecked) reset() {
	p.keys.reset()
	p.dots.reset()
}

func (p *prechecked) put(rs []crdt.Record, dvs []dotVerdict) {
	scs := make([]*signerCert, len(rs))
	dots := make([]crdt.Dot, len(rs))
	for i, r := range rs {
		scs[i], dots[i] = dvs[i].sc, r.Head().Dot()
	}
	p.keys.putAll(rs, scs)
	p.dots.putAll(dots, dvs)
}

func (p *prechecked) get(r crdt.Record) *signerCert {
	sc, _ := p.keys.get(r)
	return sc
}

// verifiedAt returns the verdict of the record last verified at dot d, if
// still remembered.
func (p *prechecked) verifiedAt(d crdt.Dot) (dotVerdict, bool) { return p.dots.get(d) }

// keysOf returns the root-checked certificates of controller seen so far.
func (v *Verifier) keysOf(controller string) []*signerCert {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.byName[controller]
}

// Precheck checks the signatures of recs without reading the store, and
// remembers for VerifyShared which key each verified under. It is safe
// for concurrent use and may run on any goroutine, concurrently with the
// store's owner. Signer records are not checked here (they are few), but
// their certificates are checked against the root and cached, so that
// the records signed with their keys, which often arrive with them, can
// be: pass the signer records of a batch before the rest. Records it
// cannot check are left to Verify. It returns the records whose signature
// it verified.
func (v *Verifier) Precheck(recs []crdt.Record) []crdt.Record {
	var done []crdt.Record
	var dvs []dotVerdict
	for _, r := range recs {
		if sr, ok := r.(*crdt.SignerRecord); ok {
			if !sr.Revoked && sr.Controller == sr.Author.Name {
				_, _ = v.signer(sr.Cert, sr.KeyID, sr.Controller) // a bad one is refused by Verify
			}
			continue
		}
		h := r.Head()
		cands := v.keysOf(h.Author.Name)
		if len(cands) == 0 {
			continue
		}
		msg := crdt.SignedBytes(r)
		m, err := signatureMessage(r, msg)
		if err != nil {
			continue // refused by Verify
		}
		dv := dotVerdict{sum: sha256.Sum256(msg), sig: h.Sig(), batch: m.sum}
		if prev, ok := v.pre.verifiedAt(h.Dot()); ok && prev.sig == dv.sig && prev.sum == dv.sum && prev.batch == dv.batch {
			// A copy of a record verified a moment ago: the same bytes
			// under the same signature (and the same batch root: a copy
			// under a bogus proof is no copy, and would be relayed so).
			done, dvs = append(done, r), append(dvs, prev)
			continue
		}
		for _, sc := range cands {
			if v.signedBy(sc, m, h.Sig()) {
				dv.sc = sc
				done, dvs = append(done, r), append(dvs, dv)
				break
			}
		}
	}
	if len(done) > 0 {
		v.pre.put(done, dvs)
	}
	return done
}

// VerifyShared implements gossip.SharedVerifier: crdt.Verify, unless
// Precheck verified r's signature under a key its author still has
// active in the store, in which case only what needs the store is checked.
// The answer is the one crdt.Verify would give.
func (v *Verifier) VerifyShared(r crdt.Record) error {
	sc := v.pre.get(r)
	if sc == nil {
		return crdt.Verify(r, v)
	}
	if err := crdt.Validate(r); err != nil {
		return err
	}
	v.mu.Lock()
	current := v.certs[sc.keyID] == sc // not evicted, nor the root reloaded since
	v.mu.Unlock()
	h := r.Head()
	s, ok := v.store().Signer(h.Author.Name, sc.keyID)
	if !current || !ok || !bytes.Equal(s.Cert, sc.der) {
		return crdt.Verify(r, v)
	}
	err := checkValidAt(h.HLC, sc.notBefore, min(sc.notAfter, s.NotAfter))
	if err == nil {
		err = checkCreator(r)
	}
	if err != nil {
		return fmt.Errorf("crdt: %v %v: %w", r.Kind(), h.Dot(), err)
	}
	return nil
}
