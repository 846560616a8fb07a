package crdt

import (
	"fmt"
	"sync"
)

// Batch signatures. A controller commits its writes in groups (one bbolt
// transaction, consecutive seqs); it may sign such a group once instead of
// once per record. The leaves of a Merkle tree (RFC 9162's shape: any
// number of leaves, a lone last node promoted) are SHA-256 of each
// record's signed bytes, in seq order; the author signs BatchSignedBytes:
// its name and incarnation, the first seq, the count and the root. Every
// record of the batch shares that one signature (Header.Sig), and on
// the wire its inclusion proof (a trailing element of its encoding), so
// that it verifies alone, wherever it travels: a receiver recomputes the
// root from the record and its proof and checks the signature over the
// root, which it needs to do once per batch (trust caches the roots it
// verified).
//
// In memory the records of a batch share one *Batch, which keeps the
// hashes needed to send each record's proof again (the leaves when the
// whole batch is known), never a proof per record.

// MaxBatch is the most records one batch signature covers: a proof has at
// most 10 hashes.
const MaxBatch = 1024

const (
	batchPrefix = "certmesh/record-batch/v1\x00"
	leafTag     = 0x00
	innerTag    = 0x01
	// batchFixed is the part of a record's proof before its hashes: the
	// batch's first seq (8 bytes) and count (2 bytes).
	batchFixed = 10
)

// Batch is what the records of one batch signature share.
type Batch struct {
	First uint64 // the seq of the first record
	Count int    // how many records, consecutive seqs from First
	Root  [32]byte
	Sig   Signature // the author's, over BatchSignedBytes

	mu sync.Mutex // guards nodes and leaves after decoding
	// leaves holds every leaf when the whole batch is known (as signed,
	// or decoded together); otherwise nil and nodes holds what the
	// records decoded brought: their leaves and their proofs' hashes.
	leaves [][32]byte
	nodes  map[nodePos][32]byte
}

// BatchSignedBytes returns what an author signs for a batch: distinct from
// every record's signed bytes (crdt.SignedBytes starts with another
// prefix), and binding the author, the seqs and the root.
func BatchSignedBytes(author Author, first uint64, count int, root [32]byte) []byte {
	e := encoder{b: make([]byte, 0, len(batchPrefix)+len(author.Name)+64)}
	e.b = append(e.b, batchPrefix...)
	e.arrayLen(5)
	e.str(author.Name)
	e.uint(author.Incarnation)
	e.uint(first)
	e.uint(uint64(count))
	e.bytes(root[:])
	return e.b
}

// SignBatch signs recs, which must be consecutive writes of one author
// (stamped, as by Stamp), with one signature, and makes them share a
// Batch. Signer records are signed alone (a signer record certifies its
// own key; Verify checks it by itself).
func SignBatch(recs []Record, s Signer) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > MaxBatch {
		return fmt.Errorf("crdt: sign batch of %d records, more than %d", len(recs), MaxBatch)
	}
	first := recs[0].Head()
	leaves := make([][32]byte, len(recs))
	for i, r := range recs {
		h := r.Head()
		if h.Author != first.Author || h.Seq != first.Seq+uint64(i) {
			return fmt.Errorf("crdt: sign batch: %v does not follow %v", h.Dot(), first.Dot())
		}
		if r.Kind() == KindSigner {
			return fmt.Errorf("crdt: sign batch: signer record %v must be signed alone", h.Dot())
		}
		leaves[i] = leafHash(SignedBytes(r))
	}
	lv := levels(leaves)
	b := &Batch{First: first.Seq, Count: len(recs), Root: lv[len(lv)-1][0], leaves: leaves}
	sig, err := s.Sign(BatchSignedBytes(first.Author, b.First, b.Count, b.Root))
	if err != nil {
		return fmt.Errorf("crdt: sign batch from %v: %w", first.Dot(), err)
	}
	b.Sig = sig
	for _, r := range recs {
		h := r.Head()
		h.OwnSig, h.Batch = nil, b
	}
	return nil
}

// BatchRoot returns the root that r's proof and signed bytes lead to, and
// whether r is batch-signed at all. signed is SignedBytes(r). The answer
// depends only on r's bytes and the hashes its proof carried: a record
// whose body was changed leads to another root, which its author never
// signed.
func BatchRoot(r Record, signed []byte) (root [32]byte, ok bool, err error) {
	h := r.Head()
	b := h.Batch
	if b == nil {
		return root, false, nil
	}
	if h.Seq < b.First || h.Seq-b.First >= uint64(b.Count) {
		return root, true, invalid("seq %d outside its batch", h.Seq)
	}
	root, err = b.rootOf(int(h.Seq-b.First), leafHash(signed))
	return root, true, err
}

// proof returns the sibling hashes from leaf idx up to the root.
func (b *Batch) proof(idx int) ([][32]byte, error) {
	if idx < 0 || idx >= b.Count {
		return nil, invalid("leaf %d of a batch of %d", idx, b.Count)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return proofPath(idx, b.Count, func(l, j int) ([32]byte, bool) {
		if h, ok := b.nodes[nodePos{uint8(l), uint16(j)}]; ok {
			return h, true
		}
		return b.node(l, j)
	}, b.First)
}

// rootOf returns the root that leaf, at index idx, leads to.
func (b *Batch) rootOf(idx int, leaf [32]byte) ([32]byte, error) {
	if b.leaves != nil && idx >= 0 && idx < b.Count {
		// The whole batch is known and its root computed from it: the
		// leaf must be the one at idx.
		if b.leaves[idx] != leaf {
			return [32]byte{}, nil // no root its author signed
		}
		return b.Root, nil
	}
	path, err := b.proof(idx)
	if err != nil {
		return [32]byte{}, err
	}
	root, _, err := walkProof(idx, b.Count, leaf, path, nil)
	return root, err
}

// node returns the hash of node (l, j), from what b keeps. b.mu is held.
func (b *Batch) node(l, j int) ([32]byte, bool) {
	if b.leaves == nil {
		if h, ok := b.nodes[nodePos{uint8(l), uint16(j)}]; ok {
			return h, true
		}
		if l == 0 {
			return [32]byte{}, false
		}
	}
	if l == 0 {
		return b.leaves[j], true
	}
	left, ok := b.node(l-1, 2*j)
	if !ok {
		return left, false
	}
	if 2*j+1 >= levelSize(b.Count, l-1) {
		return left, true
	}
	right, ok := b.node(l-1, 2*j+1)
	if !ok {
		return right, false
	}
	return innerHash(&left, &right), true
}

// compact keeps only the leaves of a batch all of whose leaves are known.
// b.mu is held.
func (b *Batch) compact() {
	if b.leaves != nil {
		return
	}
	leaves := make([][32]byte, b.Count)
	for j := range leaves {
		h, ok := b.nodes[nodePos{0, uint16(j)}]
		if !ok {
			return
		}
		leaves[j] = h
	}
	if lv := levels(leaves); lv[len(lv)-1][0] == b.Root {
		b.leaves, b.nodes = leaves, nil
	}
}

// SignatureMessage returns what r's signature signs: signed (r's
// SignedBytes) for a record signed alone; for a batch-signed record, the
// BatchSignedBytes of the root that r and its proof lead to.
func SignatureMessage(r Record, signed []byte) (msg []byte, batched bool, err error) {
	root, batched, err := BatchRoot(r, signed)
	if !batched || err != nil {
		return signed, batched, err
	}
	h := r.Head()
	return BatchSignedBytes(h.Author, h.Batch.First, h.Batch.Count, root), true, nil
}
