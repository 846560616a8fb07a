package crdt

import (
	"math"
	"time"
)

// minMillis is the earliest time there is, the start of a join by max.
const minMillis = Millis(math.MinInt64)

// MaxSessionLifetime bounds the lifetime of every session in a mesh,
// whatever each controller's session.max_lifetime (the config refuses a
// longer one): a session created at c expires by c + MaxSessionLifetime,
// and so do its certificates. It is what garbage collection falls back on
// when a replica holds a revocation but not what it covers.
const MaxSessionLifetime = 30 * 24 * time.Hour

// Retention is the rule by which a replica chooses what to collect: Collect
// applies it to a Store, and a controller applies it to its records on
// disk, so that both keep the same records. It is a function of the set of
// records held, now, and the slack (max clock offset plus grace); two
// replicas holding the same records decide alike, whatever the config of
// the controllers that wrote them.
//
// A record goes once it can no longer matter anywhere, and was written at
// least MinRetention ago:
//   - a session or certificate at its expiry plus the slack, and not
//     before every revocation held for it can go too, so that a revocation
//     never outlives the record it was kept for and then has to fall back
//     on the bound below;
//   - a revocation of a session or serial when what it covers can no
//     longer be used: the latest expiry among the session or certificate
//     records held for its target, or, when none is held (not arrived yet,
//     never issued, or collected), its At plus MaxSessionLifetime, since
//     the target existed when it was revoked. Never before the Until its
//     writer asked for (zero: kept forever). Until is a floor, not the rule:
//     it comes from the writer's own session.max_lifetime, and a session
//     created at a controller configured for longer sessions outlives it;
//   - an identity revocation at its RevokedBefore plus MaxSessionLifetime
//     (every session it covers was created before then), or its Until if
//     later;
//   - a signer record at its NotAfter (a revoked one: zero keeps it forever);
//   - a service, policy or identity-roles record once a newer one for the
//     same name is held (it can no longer be the answer anywhere that
//     holds that one, and every replica will), and a tombstone (a delete,
//     or empty identity roles) still current TombstoneRetention after it
//     was written.
//
// Use: NoteRevocation every record held, then NoteTarget every record held;
// Collectable answers for sessions, certificates, identity revocations,
// signers and access records after the first round, for revocations of a
// session or serial after the second.
type Retention struct {
	now     Millis
	slack   time.Duration
	horizon Millis // records with a later HLC are younger than MinRetention
	// The revocations held per target, and the records held for it.
	sessions map[SessionID]retained
	serials  map[Serial]retained
	// access is the newest record noted per access register.
	access map[accessKey]Record
}

// accessKey names one access register.
type accessKey struct {
	kind Kind
	name string
}

func keyOf(r accessRecord) accessKey { return accessKey{r.Kind(), r.accessName()} }

// TombstoneRetention is how long a delete of a service or policy, or the
// clearing of an identity's roles, is kept while it is the current answer:
// a replica cut off for longer, holding a write it shadows, would bring
// that write back.
const TombstoneRetention = MaxSessionLifetime

// retained is what the records held say about one revoked target.
type retained struct {
	until     Millis // latest Until (never for zero) over the revocations held
	youngest  Millis // latest HLC over them
	held      bool   // a session or certificate record of the target is held
	targetEnd Millis // latest expiry over those records
}

// NewRetention starts a decision at now with the given slack: the max
// clock offset plus the grace kept after an expiry.
func NewRetention(now Millis, slack time.Duration) *Retention {
	return &Retention{
		now:      now,
		slack:    slack,
		horizon:  addMillis(now, -MinRetention),
		sessions: make(map[SessionID]retained),
		serials:  make(map[Serial]retained),
		access:   make(map[accessKey]Record),
	}
}

// noted is the entry of a key noted for the first time.
var noted = retained{until: minMillis, youngest: minMillis}

// NoteRevocation takes note of r if it revokes a session or a serial, or
// if it is an access record (the newest of its register wins); other
// records are ignored.
func (t *Retention) NoteRevocation(r Record) {
	if ar, ok := r.(accessRecord); ok {
		k := keyOf(ar)
		if w, ok := t.access[k]; !ok || before(w, r) {
			t.access[k] = r
		}
		return
	}
	rev, ok := r.(*RevocationRecord)
	if !ok {
		return
	}
	note := func(g retained, ok bool) retained {
		if !ok {
			g = noted
		}
		g.until = max(g.until, orNever(rev.Until))
		g.youngest = max(g.youngest, rev.HLC.Millis())
		return g
	}
	if rev.Target == RevokeSession {
		g, ok := t.sessions[rev.Session]
		t.sessions[rev.Session] = note(g, ok)
	} else {
		g, ok := t.serials[rev.Serial]
		t.serials[rev.Serial] = note(g, ok)
	}
}

// NoteTarget takes note of r if it is a session or certificate record that
// a noted revocation covers; other records are ignored. Call it after every
// NoteRevocation.
func (t *Retention) NoteTarget(r Record) {
	switch r := r.(type) {
	case *SessionRecord:
		if g, ok := t.sessions[r.ID]; ok {
			t.sessions[r.ID] = g.withTarget(r.Expires)
		}
	case *CertRecord:
		if g, ok := t.serials[r.Serial]; ok {
			t.serials[r.Serial] = g.withTarget(r.NotAfter)
		}
	}
}

func (g retained) withTarget(end Millis) retained {
	if !g.held || end > g.targetEnd {
		g.targetEnd = end
	}
	g.held = true
	return g
}

// Collectable reports whether r can go now (see Retention for when to ask).
func (t *Retention) Collectable(r Record) bool {
	// Cheapest test first: nearly every record is far from its expiry.
	switch r := r.(type) {
	case *SessionRecord:
		if !t.past(r.Expires) || !t.old(&r.Header) {
			return false
		}
		g, ok := t.sessions[r.ID]
		return !ok || t.revocationsDone(g)
	case *CertRecord:
		if !t.past(r.NotAfter) || !t.old(&r.Header) {
			return false
		}
		g, ok := t.serials[r.Serial]
		return !ok || t.revocationsDone(g)
	}
	if !t.old(r.Head()) {
		return false
	}
	switch r := r.(type) {
	case *RevocationRecord:
		var g retained
		if r.Target == RevokeSession {
			g = t.sessions[r.Session]
		} else {
			g = t.serials[r.Serial]
		}
		end := addMillis(r.At, MaxSessionLifetime)
		if g.held {
			end = g.targetEnd
		}
		return t.past(max(end, orNever(r.Until)))
	case *IdentityRevocationRecord:
		return t.past(max(addMillis(r.RevokedBefore, MaxSessionLifetime), orNever(r.Until)))
	case accessRecord:
		w, ok := t.access[keyOf(r)]
		if !ok || w.Head().Dot() != r.Head().Dot() {
			return true // superseded, or dropped as its author's
		}
		return r.tombstone() && t.past(addMillis(r.Head().HLC.Millis(), TombstoneRetention))
	}
	return t.past(r.expiry())
}

// old reports whether a record was written at least MinRetention ago.
func (t *Retention) old(h *Header) bool { return h.HLC.Millis() <= t.horizon }

// past reports whether end plus the slack is before now.
func (t *Retention) past(end Millis) bool { return addMillis(end, t.slack) < t.now }

// revocationsDone reports whether every revocation held for a target has
// reached its Until and its MinRetention, so that the target's records and
// those revocations go in the same collection: Collectable then finds each
// revocation's target expired too. The revocations' own bound matters only
// for a target no record of which is held.
func (t *Retention) revocationsDone(g retained) bool {
	return t.past(g.until) && g.youngest <= t.horizon
}

// retention builds the rule for the records s holds, in time proportional
// to the revocations held: they are listed per author, and their targets
// are found through the indexes (every record held for a key, not only
// the one that wins it).
func (s *Store) retention(now Millis, slack time.Duration) *Retention {
	t := NewRetention(now, slack)
	n := 0
	for _, l := range s.order {
		n += len(l.revocations)
	}
	t.sessions = make(map[SessionID]retained, n) // a bound: some are serials or identities
	for _, l := range s.order {
		for _, seq := range l.revocations {
			if r := l.get(seq); r != nil {
				t.NoteRevocation(r)
			}
		}
	}
	for id, g := range t.sessions {
		t.sessions[id] = s.sessionTargets(g, id)
	}
	for k, r := range s.access.services.m {
		t.access[accessKey{KindService, k}] = r
	}
	for k, r := range s.access.policies.m {
		t.access[accessKey{KindPolicy, k}] = r
	}
	for k, r := range s.access.idRoles.m {
		t.access[accessKey{KindIdentityRoles, k}] = r
	}
	for sn, g := range t.serials {
		t.serials[sn] = s.serialTargets(g, sn)
	}
	return t
}

// sessionTargets adds to g the session records held for id.
func (s *Store) sessionTargets(g retained, id SessionID) retained {
	return heldTargets(g, &s.sessions, id, func(r *SessionRecord) Millis { return r.Expires })
}

// serialTargets adds to g the certificate records held for sn.
func (s *Store) serialTargets(g retained, sn Serial) retained {
	return heldTargets(g, &s.certs, sn, func(r *CertRecord) Millis { return r.NotAfter })
}

// heldTargets adds to g every record held for k in w (the winner and the
// others claiming k), which ends at end.
func heldTargets[K comparable, R Record](g retained, w *winners[K, R], k K, end func(R) Millis) retained {
	if r, ok := w.m[k]; ok {
		g = g.withTarget(end(r))
		for _, d := range w.dups[k] {
			g = g.withTarget(end(d))
		}
	}
	return g
}

// refreshTarget brings the rule's entry for the target of rev up to date
// with the records s holds now: a Collection decides over many steps, and
// a session or certificate record may have arrived since the rule was
// built. A revocation must never go before what it covers. The entry only
// grows: the targets this collection dropped already still count, so that
// a revocation goes in the same collection as what it covers.
func (s *Store) refreshTarget(t *Retention, rev *RevocationRecord) {
	t.NoteRevocation(rev) // idempotent: a join
	if rev.Target == RevokeSession {
		t.sessions[rev.Session] = s.sessionTargets(t.sessions[rev.Session], rev.Session)
		return
	}
	t.serials[rev.Serial] = s.serialTargets(t.serials[rev.Serial], rev.Serial)
}
