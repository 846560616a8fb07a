package crdt

// Contiguous returns the highest seq of a such that every seq from 1 to it
// is covered: the author's entry in the version vector. O(1).
func (s *Store) Contiguous(a Author) uint64 {
	if l := s.lookup(a); l != nil {
		return l.contiguous
	}
	return 0
}
