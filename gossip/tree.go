package gossip

import "slices"

// Region trees. The members of a region, sorted by name, are laid out as a
// Fanout-ary tree: the node at relative index i forwards to relative
// indexes Fanout*i+1 .. Fanout*i+Fanout. Tree 0 reads the sorted list
// forward, tree 1 backward, each rotated by an offset: in the origin's own
// region the offset puts the origin at the root, elsewhere it comes from a
// hash of the batch id, so relay duty spreads over the region. Any node that
// knows the same members computes the same trees in O(Fanout), with no
// state per batch.

// layout is one tree over one region's sorted member list.
type layout struct {
	members []string
	tree    int
	offset  int
	fanout  int
}

// ord maps a position in the sorted list to this tree's reading order.
func (l *layout) ord(p int) int {
	if l.tree%2 == 1 {
		return len(l.members) - 1 - p
	}
	return p
}

func (l *layout) rel(p int) int {
	n := len(l.members)
	return (l.ord(p) - l.offset + n) % n
}

func (l *layout) at(rel int) string {
	n := len(l.members)
	return l.members[l.ord((rel+l.offset)%n)] // ord is its own inverse
}

// rootPos is the position of the tree's root in the sorted list.
func (l *layout) rootPos() int { return l.ord(l.offset) }

// children appends the children of member name to buf, or nothing if name
// is not in the list.
func (l *layout) children(name string, buf []string) []string {
	p, ok := slices.BinarySearch(l.members, name)
	if !ok {
		return buf
	}
	return l.childrenAt(p, buf)
}

// childrenAt appends the children of the member at position p of the
// sorted list to buf.
func (l *layout) childrenAt(p int, buf []string) []string {
	n := len(l.members)
	i := l.rel(p)
	for c := l.fanout*i + 1; c <= l.fanout*i+l.fanout && c < n; c++ {
		buf = append(buf, l.at(c))
	}
	return buf
}

// newLayout lays out tree t of a region for a batch. When origin is a
// member of the region, it is the root of every tree; otherwise the roots
// come from the batch id, and tree 1's root differs from tree 0's whenever
// the region has two members or more. It returns a value: a layout lives
// for one forward, and a pointer would cost an allocation per message.
func newLayout(members []string, origin string, batch uint64, region string, tree, fanout int) layout {
	l := layout{members: members, tree: tree, fanout: fanout}
	n := len(members)
	if n == 0 {
		return l
	}
	if p, ok := slices.BinarySearch(members, origin); ok {
		l.offset = l.ord(p)
		return l
	}
	off0 := int(batchHash(batch, region, 0) % uint64(n))
	l.offset = off0
	if tree%2 == 1 && n > 1 {
		// Tree 1 reads backward: its root is members[n-1-offset]. Keep
		// it away from tree 0's root, members[offset0].
		l.offset = int(batchHash(batch, region, 1) % uint64(n))
		if n-1-l.offset == off0 {
			l.offset = (l.offset + 1) % n
		}
	}
	return l
}

// batchHash is 64-bit FNV-1a over the batch id (little-endian), the salt
// and the region name. It is written out rather than taken from hash/fnv,
// which costs an allocation per call; every node must compute the same
// value, so it must stay FNV-1a over these bytes (TestBatchHashIsFNV1a).
func batchHash(batch uint64, region string, salt byte) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < 8; i++ {
		h ^= uint64(byte(batch >> (8 * i)))
		h *= prime64
	}
	h ^= uint64(salt)
	h *= prime64
	for i := 0; i < len(region); i++ {
		h ^= uint64(region[i])
		h *= prime64
	}
	return h
}
