package crdt

import "slices"

// droppedByRevocation reports whether r was written by a controller after
// the root revoked it. Two rules, both functions of the records held, so
// every replica decides alike:
//
//   - The cut: once a revocation of the controller written by another
//     controller carries one, the controller's records count only within
//     the union of those cuts: what some honest controller held of it when
//     it applied the revocation. The stolen key cannot move a record into
//     a cut by backdating it; it could only equivocate on a dot already
//     written, which no signature scheme prevents.
//   - The HLC: a record other than a revocation stamped after the root's
//     revocation time is dropped, as before cuts existed.
//
// Within the cut revocations of any kind are kept whatever their HLC:
// revoking is fail-safe, and one the controller made before it was cut off
// must not be undone. Revocations of signers (root-signed) always count.
func (s *Store) droppedByRevocation(r Record) bool {
	h := r.Head()
	if sr, ok := r.(*SignerRecord); ok && sr.Revoked {
		return false
	}
	at, ok := s.revokedSigners.get(h.Author.Name)
	if !ok {
		return false
	}
	if cuts := s.cuts[h.Author.Name]; len(cuts) > 0 && !inCut(cuts, h.Author, h.Seq) {
		return true
	}
	switch r.(type) {
	case *RevocationRecord, *IdentityRevocationRecord:
		return false
	}
	return h.HLC.Millis() > at
}

// inCut reports whether any of the revocations' cuts covers (a, seq).
func inCut(revs []*SignerRecord, a Author, seq uint64) bool {
	for _, r := range revs {
		for i := range r.Cut {
			if c := &r.Cut[i]; c.Author.Incarnation == a.Incarnation && c.Has(seq) {
				return true
			}
		}
	}
	return false
}

// addCut indexes r's cut, if it counts, and reports whether it does.
func (s *Store) addCut(r *SignerRecord) bool {
	if r.Cut == nil || r.Author.Name == r.Controller {
		return false
	}
	s.cuts[r.Controller] = append(s.cuts[r.Controller], r)
	return true
}

// removeCut undoes addCut.
func (s *Store) removeCut(r *SignerRecord) bool {
	revs := s.cuts[r.Controller]
	i := slices.Index(revs, r)
	if i < 0 {
		return false
	}
	if revs = slices.Delete(revs, i, i+1); len(revs) == 0 {
		delete(s.cuts, r.Controller)
	} else {
		s.cuts[r.Controller] = revs
	}
	return true
}

// HeldOf returns what this store holds of controller's writes, one entry
// per incarnation, each with at most MaxCutAbove seqs above its contiguous
// part (the lowest): the cut a revocation of controller written now
// carries.
func (s *Store) HeldOf(controller string) []AuthorContext {
	cut := []AuthorContext{}
	for _, l := range s.order {
		if l.author.Name != controller {
			continue
		}
		if len(cut) == MaxCutAuthors {
			break
		}
		c := AuthorContext{Author: l.author, Max: l.contiguous, Above: slices.Clone(l.sortedAbove())}
		if len(c.Above) > MaxCutAbove {
			c.Above = c.Above[:MaxCutAbove]
		}
		cut = append(cut, c)
	}
	return cut
}

// reconcileRevoked moves the records of controller between held and
// dropped after its revocation time changed: records written after it are
// dropped, the others held. Replicas that received those records before
// the revocation and replicas that receive them after end up alike. It
// visits every record of the controller; revocations are rare.
func (s *Store) reconcileRevoked(controller string) {
	for _, l := range s.order {
		if l.author.Name != controller {
			continue
		}
		l.each(func(seq uint64, r Record, dropped bool) bool {
			if dropped && l.refused(seq) {
				return true
			}
			switch should := s.droppedByRevocation(r); {
			case should && !dropped:
				s.unindex(l, r)
				l.drop(seq, r)
			case !should && dropped:
				l.put(seq, r)
				s.index(l, r)
			}
			return true
		})
	}
}
