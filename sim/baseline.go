package sim

import (
	"math/bits"
	"time"
)

// What the two baselines share. Their replicated state is a set of
// EventIDs, each standing for the records of one write, of
// Cluster.WriteBytes bytes, whose content is the Write (Env.Write); version
// vectors are summarised by vvBytes.

// eventSet is a growable bitset of EventIDs with an order-independent
// digest (XOR of a hash of each member).
type eventSet struct {
	bits   []uint64
	digest uint64
	n      int
}

func (s *eventSet) has(id EventID) bool {
	w := int(id) / 64
	return w < len(s.bits) && s.bits[w]&(1<<(uint(id)%64)) != 0
}

// add adds id and reports whether it was new.
func (s *eventSet) add(id EventID) bool {
	w := int(id) / 64
	for w >= len(s.bits) {
		s.bits = append(s.bits, 0)
	}
	bit := uint64(1) << (uint(id) % 64)
	if s.bits[w]&bit != 0 {
		return false
	}
	s.bits[w] |= bit
	s.digest ^= mix64(uint64(id))
	s.n++
	return true
}

// clone returns an independent copy, the snapshot a node sends.
func (s *eventSet) clone() *eventSet {
	c := *s
	c.bits = append([]uint64(nil), s.bits...)
	return &c
}

// missingFrom returns the members of s that other lacks, in id order
// (oldest first).
func (s *eventSet) missingFrom(other *eventSet) []EventID {
	var ids []EventID
	for w, word := range s.bits {
		if w < len(other.bits) {
			word &^= other.bits[w]
		}
		for word != 0 {
			b := bits.TrailingZeros64(word)
			ids = append(ids, EventID(w*64+b))
			word &= word - 1
		}
	}
	return ids
}

// vvBytes is the encoded size of a version vector over the controllers: a
// header plus author id and seq per controller.
func vvBytes(c *Cluster) int32 { return int32(16 + 12*len(c.Controllers)) }

// pollUnknown is how long a baseline router waits for an unknown
// certificate before refusing it: OpenZiti's routers poll an unknown API
// session for up to 5s. The wait is modelled as event driven (the answer
// comes as soon as the record arrives), which flatters the baselines.
const pollUnknown = 5 * time.Second

// timerAdmit is the Timer kind of an admission's poll deadline; baselines
// number their own timers below it.
const timerAdmit = 1000

// admitter is a baseline router's admission decision from its event set.
type admitter struct {
	revoked eventSet    // sessions with an applied revocation, by SessionID
	denied  eventSet    // access groups an applied policy change removed, by Write.Group
	waiting []Admission // unknown certificates being polled
}

// admit answers q from have, or waits up to pollUnknown for it.
func (a *admitter) admit(env *Env, have *eventSet, q Admission) {
	switch {
	case a.revoked.has(EventID(q.Session)):
		env.Answer(q.Connect, RejectRevoked)
	case q.Group > 0 && a.denied.has(EventID(q.Group)):
		env.Answer(q.Connect, RejectDenied)
	case have.has(q.CertWrite):
		env.Answer(q.Connect, Accept)
	default:
		a.waiting = append(a.waiting, q)
		env.After(pollUnknown, Timer{Kind: timerAdmit, Arg: int64(q.Connect)})
	}
}

// applied updates the decision with a newly applied write and answers the
// waiting connects it decides.
func (a *admitter) applied(env *Env, w *Write) {
	switch w.Kind {
	case WriteRevoke:
		a.revoked.add(EventID(w.Session))
	case WritePolicy:
		a.denied.add(EventID(w.Group))
	}
	kept := a.waiting[:0]
	for _, q := range a.waiting {
		switch {
		case a.revoked.has(EventID(q.Session)):
			env.Answer(q.Connect, RejectRevoked)
		case q.Group > 0 && a.denied.has(EventID(q.Group)):
			env.Answer(q.Connect, RejectDenied)
		case q.CertWrite == w.ID:
			env.Answer(q.Connect, Accept)
		default:
			kept = append(kept, q)
		}
	}
	a.waiting = kept
}

// timeout refuses connect if it is still waiting.
func (a *admitter) timeout(env *Env, connect int32) {
	for i, q := range a.waiting {
		if q.Connect == connect {
			env.Answer(connect, RejectUnknown)
			a.waiting = append(a.waiting[:i], a.waiting[i+1:]...)
			return
		}
	}
}
