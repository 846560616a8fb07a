package crdt

import "encoding/binary"

// recordHash is a record's contribution to the digest: a 64-bit hash of
// its dot, HLC and signature, which together pin its contents. It works a
// word at a time, with a fixed seed: every node must compute the same.
func recordHash(r Record) uint64 {
	h := r.Head()
	x := uint64(0x9e3779b97f4a7c15)
	name := h.Author.Name
	x = mix64(x, uint64(len(name)))
	for ; len(name) >= 8; name = name[8:] {
		x = mix64(x, uint64(name[0])|uint64(name[1])<<8|uint64(name[2])<<16|uint64(name[3])<<24|
			uint64(name[4])<<32|uint64(name[5])<<40|uint64(name[6])<<48|uint64(name[7])<<56)
	}
	var tail uint64
	for i := 0; i < len(name); i++ {
		tail |= uint64(name[i]) << (8 * i)
	}
	x = mix64(x, tail)
	x = mix64(x, h.Author.Incarnation)
	x = mix64(x, h.Seq)
	x = mix64(x, uint64(h.HLC))
	sig := h.Sig()
	for i := 0; i < len(sig); i += 8 {
		x = mix64(x, binary.LittleEndian.Uint64(sig[i:]))
	}
	// splitmix64's finalizer, so that every input bit reaches every output
	// bit before the XOR of the digest.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func mix64(x, w uint64) uint64 {
	x ^= w
	x *= 0xff51afd7ed558ccd
	return x ^ x>>32
}

// Digest is an order-independent fingerprint of the records held. Two
// stores holding the same records have the same digest.
func (s *Store) Digest() uint64 { return s.digest }

// Counts returns how many records of each kind are held.
func (s *Store) Counts() map[Kind]int {
	m := make(map[Kind]int, maxKind)
	for k := KindSession; k <= maxKind; k++ {
		m[k] = s.counts[k]
	}
	return m
}

// Len is the number of records held (not counting those dropped as
// written by a revoked author).
func (s *Store) Len() int {
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}
