package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Batch signatures. A controller commits its writes in groups (one bbolt
// transaction, consecutive seqs); it may sign such a group once instead of
// once per record. The leaves of a Merkle tree (RFC 9162's shape: any
// number of leaves, a lone last node promoted) are SHA-256 of each
// record's signed bytes, in seq order; the author signs BatchSignedBytes:
// its name and incarnation, the first seq, the count and the root. Every
// record of the batch carries that one signature in Header.Sig, and on
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

// nodePos is a node of the tree: level 0 holds the leaves; node (l, j)
// covers leaves j<<l to (j+1)<<l, and a lone last node is its child.
type nodePos struct {
	level uint8
	index uint16
}

// levelSize is the number of nodes at level l of a tree of n leaves.
func levelSize(n, l int) int { return (n + 1<<l - 1) >> l }

func leafHash(signed []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{leafTag})
	h.Write(signed)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func innerHash(l, r *[32]byte) [32]byte {
	var b [65]byte
	b[0] = innerTag
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// levels computes every level of the tree over leaves; the last level
// holds the root.
func levels(leaves [][32]byte) [][][32]byte {
	out := [][][32]byte{leaves}
	for cur := leaves; len(cur) > 1; {
		next := make([][32]byte, (len(cur)+1)/2)
		for j := range next {
			if 2*j+1 < len(cur) {
				next[j] = innerHash(&cur[2*j], &cur[2*j+1])
			} else {
				next[j] = cur[2*j]
			}
		}
		out = append(out, next)
		cur = next
	}
	return out
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

// walkProof recomputes the root from leaf, at index idx of count leaves,
// and its proof path. Each node it meets is passed to seen, if not nil.
func walkProof(idx, count int, leaf [32]byte, path [][32]byte, seen func(nodePos, [32]byte)) ([32]byte, int, error) {
	fn, sn, level := idx, count-1, 0
	node := leaf
	if seen != nil {
		seen(nodePos{0, uint16(idx)}, leaf)
	}
	for i := range path {
		if sn == 0 {
			return node, 0, invalid("batch proof longer than its tree")
		}
		for fn&1 == 0 && fn == sn { // a lone last node: its parent is itself
			fn, sn, level = fn>>1, sn>>1, level+1
		}
		var sib nodePos
		if fn&1 == 1 {
			sib = nodePos{uint8(level), uint16(fn - 1)}
			node = innerHash(&path[i], &node)
		} else {
			sib = nodePos{uint8(level), uint16(fn + 1)}
			node = innerHash(&node, &path[i])
		}
		if seen != nil {
			seen(sib, path[i])
		}
		fn, sn, level = fn>>1, sn>>1, level+1
		if seen != nil {
			seen(nodePos{uint8(level), uint16(fn)}, node)
		}
	}
	if sn != 0 {
		return node, 0, invalid("batch proof shorter than its tree")
	}
	return node, level, nil
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

// proofLen is the number of hashes in the proof of leaf idx of count.
func proofLen(idx, count int) int {
	n := 0
	for fn, sn := idx, count-1; sn > 0; fn, sn = fn>>1, sn>>1 {
		for fn&1 == 0 && fn == sn {
			fn, sn = fn>>1, sn>>1
		}
		n++
	}
	return n
}

// proofFrom returns leaf idx's proof from every level of the tree.
func proofFrom(lv [][][32]byte, idx int) [][32]byte {
	path, _ := proofPath(idx, len(lv[0]), func(l, j int) ([32]byte, bool) { return lv[l][j], true }, 0)
	return path
}

func proofPath(idx, count int, node func(l, j int) ([32]byte, bool), first uint64) ([][32]byte, error) {
	var path [][32]byte
	fn, sn, level := idx, count-1, 0
	for sn != 0 {
		for fn&1 == 0 && fn == sn {
			fn, sn, level = fn>>1, sn>>1, level+1
		}
		sib := fn + 1
		if fn&1 == 1 {
			sib = fn - 1
		}
		h, ok := node(level, sib)
		if !ok {
			return nil, invalid("batch of %d from seq %d lacks node (%d, %d)", count, first, level, sib)
		}
		path = append(path, h)
		fn, sn, level = fn>>1, sn>>1, level+1
	}
	return path, nil
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

// encodeBatch appends r's proof: a bin of the batch's first seq, its
// count and the sibling hashes. An encoder that writes many records
// computes the tree of each batch known whole once.
func encodeBatch(e *encoder, h *Header) {
	b := h.Batch
	var path [][32]byte
	var err error
	if idx := int(h.Seq - b.First); b.leaves != nil && idx < b.Count && h.Seq >= b.First {
		lv, ok := e.trees[b]
		if !ok {
			lv = recentTrees.get(b)
			if e.trees != nil {
				e.trees[b] = lv
			}
		}
		path = proofFrom(lv, idx)
	} else {
		path, err = b.proof(int(h.Seq - b.First))
	}
	if err != nil {
		// Only for a record Validate refuses (a seq outside its batch):
		// every record attached to a Batch brought its proof (decode) or
		// has all leaves known (SignBatch). Encode no hashes: a receiver
		// refuses the record as malformed.
		path = nil
	}
	e.length(batchFixed+32*len(path), 0, msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32)
	e.b = binary.BigEndian.AppendUint64(e.b, b.First)
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(b.Count))
	for i := range path {
		e.b = append(e.b, path[i][:]...)
	}
}

// recentTrees keeps the trees of the batches whose records were sent last:
// a batch's records go out in many small messages (a push is cut to fit a
// packet), to many peers, each needing its tree. Bounded: at most
// maxRecentTrees batches, about 4 KB each at 64 records.
var recentTrees = treeCache{m: make(map[*Batch][][][32]byte)}

const maxRecentTrees = 256

type treeCache struct {
	mu    sync.Mutex
	m     map[*Batch][][][32]byte
	order []*Batch // insertion order, for eviction
}

// get returns every level of b's tree; b's leaves must all be known.
func (c *treeCache) get(b *Batch) [][][32]byte {
	c.mu.Lock()
	lv, ok := c.m[b]
	c.mu.Unlock()
	if ok {
		return lv
	}
	lv = levels(b.leaves)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[b]; !ok {
		if len(c.order) >= maxRecentTrees {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.m[b] = lv
		c.order = append(c.order, b)
	}
	return lv
}

// maxProofBytes is the longest proof of a batch of MaxBatch records.
var maxProofBytes = batchFixed + 32*bits.Len(MaxBatch-1)

// batchDecoder shares a Batch between the records of one batch decoded
// together (a delta, a snapshot), so that they keep its leaves once.
type batchDecoder struct {
	byKey map[batchKey]*Batch
}

type batchKey struct {
	author Author
	first  uint64
	count  int
	root   [32]byte
	sig    Signature
}

// decodeBatch reads r's proof, checks it fits r's seq, and attaches the
// batch it leads to. bd may be nil (a record decoded alone).
func decodeBatch(d *decoder, r Record, sig Signature, bd *batchDecoder) {
	raw := d.bytes(maxProofBytes)
	if d.err != nil {
		return
	}
	h := r.Head()
	if len(raw) < batchFixed || (len(raw)-batchFixed)%32 != 0 {
		d.fail("batch proof of %d bytes", len(raw))
		return
	}
	first, count := binary.BigEndian.Uint64(raw), int(binary.BigEndian.Uint16(raw[8:]))
	switch {
	case r.Kind() == KindSigner:
		d.fail("batch-signed signer record")
		return
	case count == 0 || count > MaxBatch:
		d.fail("batch of %d records", count)
		return
	case h.Seq < first || h.Seq-first >= uint64(count):
		d.fail("seq %d outside its batch (%d from %d)", h.Seq, count, first)
		return
	}
	path := make([][32]byte, (len(raw)-batchFixed)/32)
	for i := range path {
		copy(path[i][:], raw[batchFixed+32*i:])
	}
	idx := int(h.Seq - first)
	nodes := make(map[nodePos][32]byte, 2*len(path)+1)
	root, _, err := walkProof(idx, count, leafHash(SignedBytes(r)), path, func(p nodePos, v [32]byte) {
		if p.level == 0 || !isOnPath(p, idx) {
			nodes[p] = v // leaves and siblings; the path's own nodes follow from them
		}
	})
	if err != nil {
		d.fail("%v", err)
		return
	}
	key := batchKey{h.Author, first, count, root, sig}
	var b *Batch
	if bd != nil {
		b = bd.byKey[key]
	}
	if b == nil {
		b = &Batch{First: first, Count: count, Root: root, Sig: sig, nodes: nodes}
		if bd != nil {
			if bd.byKey == nil {
				bd.byKey = make(map[batchKey]*Batch)
			}
			bd.byKey[key] = b
		}
	} else {
		b.mu.Lock()
		if b.nodes != nil { // else the batch is whole: nothing to add
			for p, v := range nodes {
				b.nodes[p] = v
			}
		}
		b.mu.Unlock()
	}
	h.Batch = b
}

// isOnPath reports whether p is an ancestor of leaf idx (or the leaf).
func isOnPath(p nodePos, idx int) bool { return int(p.index) == idx>>p.level }

// finish keeps, of each batch decoded whole, only its leaves.
func (bd *batchDecoder) finish() {
	for _, b := range bd.byKey {
		b.mu.Lock()
		b.compact()
		b.mu.Unlock()
	}
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

// RecordWriter appends records one at a time, as a journal or a database
// writes them, computing the tree of each batch once across its calls
// (AppendRecord alone recomputes it for each record). Not safe for
// concurrent use.
type RecordWriter struct {
	trees map[*Batch][][][32]byte
}

// Append appends r's wire encoding to b, as AppendRecord does.
func (w *RecordWriter) Append(b []byte, r Record) []byte {
	if w.trees == nil {
		w.trees = make(map[*Batch][][][32]byte)
	}
	e := encoder{b: b, trees: w.trees}
	encodeRecord(&e, r, true)
	return e.b
}

// RecordReader decodes records one at a time, as DecodeRecord does, as
// they are read back from a journal or a database: the records of one
// batch share one Batch. Call Finish once every record is read, before
// they are used on other goroutines: each batch read whole then keeps only
// its leaves. Not safe for concurrent use.
type RecordReader struct {
	bd batchDecoder
}

// Decode decodes one record from the whole of b.
func (rd *RecordReader) Decode(b []byte) (Record, error) { return decodeOne(b, &rd.bd) }

// Finish compacts the batches read.
func (rd *RecordReader) Finish() { rd.bd.finish() }
