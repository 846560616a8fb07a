package trust

import (
	"crypto/sha256"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Batch-signed records (crdt.SignBatch). A controller signs a commit's
// records once, over the root of a Merkle tree of their signed bytes; each
// record carries that signature and its proof. A record verifies alone:
// its bytes and proof lead to a root, and the author's key must have
// signed that root with the batch's author, first seq and count. The
// ECDSA verification is the whole cost, and all the records of a batch
// share it, so a Verifier remembers the batch messages it verified, per
// key: the other records of the batch cost a few SHA-256 each.
//
// Only a message that verified under a root-issued controller key is
// remembered, with the signature that verified it: a node without a
// controller key inserts nothing, and a record presenting a remembered
// root under another signature is verified in full. Everything else about
// the record (its key active in the store and valid at its HLC, the
// creator rule, a revoked controller's cut) is checked per record, as for
// a record signed alone.

// maxBatchRoots bounds the batch messages remembered: two generations of
// half of it. A batch's records arrive together, or within the gossip's
// repair time; one forgotten costs one more ECDSA verification.
const maxBatchRoots = 1 << 14

// batchRootKey is a key (by its id) and the SHA-256 of a batch message.
type batchRootKey struct {
	keyID [32]byte
	msg   [sha256.Size]byte
}

// sigMessage is what a record's signature signs, and for a batch-signed
// record the hash that keys its verdict; a proof that leads nowhere is a
// bad signature.
type sigMessage struct {
	msg     []byte
	batched bool
	sum     [sha256.Size]byte
}

func signatureMessage(r crdt.Record, signed []byte) (sigMessage, error) {
	msg, batched, err := crdt.SignatureMessage(r, signed)
	if err != nil {
		return sigMessage{}, ErrBadSignature
	}
	m := sigMessage{msg: msg, batched: batched}
	if batched {
		m.sum = sha256.Sum256(msg)
	}
	return m, nil
}

// signedBy reports whether sc's key made sig over m, from the batch roots
// verified before when it can.
func (v *Verifier) signedBy(sc *signerCert, m sigMessage, sig crdt.Signature) bool {
	if !m.batched {
		return pki.VerifyRecord(sc.pub, m.msg, [pki.RecordSignatureSize]byte(sig))
	}
	k := batchRootKey{keyID: sc.keyID, msg: m.sum}
	if s, ok := v.batches.get(k); ok && s == sig {
		return true
	}
	if !pki.VerifyRecord(sc.pub, m.msg, [pki.RecordSignatureSize]byte(sig)) {
		return false
	}
	v.batches.put(k, sig)
	return true
}
