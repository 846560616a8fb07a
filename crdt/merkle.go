package crdt

import "crypto/sha256"

// The Merkle tree of a batch (SignBatch): RFC 9162's shape, any number of
// leaves, a lone last node promoted. Leaves are SHA-256 over leafTag and a
// record's signed bytes, inner nodes over innerTag and their children.

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
