package crdt

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// A batch-signed record on the wire and on disk: its proof, the last
// element of its encoding, and the Batch that the records of one batch
// decoded or written together share.

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
