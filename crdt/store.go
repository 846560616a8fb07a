package crdt

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"
)

// Limits on what peers can make a store hold.
const (
	// MaxSeqAhead is how far above an author's contiguous seq a record may
	// be merged. Further ahead, the record is refused (ErrTooFarAhead) and
	// will come again through anti-entropy, oldest first; this keeps a
	// forged huge seq from allocating.
	MaxSeqAhead = 1 << 16
	// MaxAuthors caps the number of distinct authors a store tracks.
	MaxAuthors = 1 << 12
	// MaxDroppedPerAuthor caps the records an author log keeps aside
	// (written after a revocation, or refused): they are kept only so that
	// peers cover their dots, and a revoked key could otherwise sign
	// records with far-future expiries without end. At twice the cap the
	// lowest are let go down to it; their dots stay covered, and a peer
	// still missing one covers it from a later record (CoverInterval).
	MaxDroppedPerAuthor = 1 << 10
	// MinRetention is the least time a record is kept after its HLC, so
	// that a receiver can tell a collected record from a withheld one: a
	// gap in a delta interval is accepted only when a later record of the
	// same author proves the missing ones are older than this.
	MinRetention = 10 * time.Minute
)

var (
	// ErrTooFarAhead is returned for a record whose seq is more than
	// MaxSeqAhead above its author's contiguous seq. The store is left
	// unchanged.
	ErrTooFarAhead = errors.New("crdt: record too far ahead of its author's version")
	// ErrAuthorRevoked is returned for a record written by a controller
	// after the root revoked it. Its dot is covered and the record is kept
	// aside, out of every index and of the digest, only so that peers can
	// cover its dot too (see DeltaSince). It is not an error of the sender.
	ErrAuthorRevoked = errors.New("crdt: author revoked")
	// ErrTooManyAuthors is returned when a record would add an author past
	// MaxAuthors.
	ErrTooManyAuthors = errors.New("crdt: too many authors")
)

// maxMillis stands for "never" in expiry computations.
const maxMillis = Millis(math.MaxInt64)

// addMillis adds d to m, saturating instead of wrapping, so that a far
// future expiry from a peer never turns into the distant past.
func addMillis(m Millis, d time.Duration) Millis {
	ms := Millis(d / time.Millisecond)
	switch {
	case ms > 0 && m > maxMillis-ms:
		return maxMillis
	case ms < 0 && m < math.MinInt64-ms:
		return math.MinInt64
	}
	return m + ms
}

type signerKey struct {
	controller string
	keyID      [32]byte
}

// Store is one replica of the state. See the package doc.
//
// Every index below is a function of the set of records held: adding and
// removing a record (merge, Collect, a signer revocation) update it
// exactly, so that two stores holding the same records answer alike
// whatever their histories.
type Store struct {
	authors map[Author]*authorLog
	order   []*authorLog // the same logs sorted by author, for determinism

	sessions winners[SessionID, *SessionRecord]
	certs    winners[Serial, *CertRecord]
	signers  winners[signerKey, *SignerRecord] // active signer records
	// superseded[s] is the earliest SupersedeAt over certs rotating s.
	superseded        joins[Serial]
	revokedSessions   joins[SessionID] // earliest At
	revokedSerials    joins[Serial]    // earliest At
	revokedIdentities joins[string]    // latest RevokedBefore
	revokedSigners    joins[string]    // earliest RevokedAt, by controller
	// cuts holds, by revoked controller, the revocations with a cut that
	// counts: written by another controller (a stolen key must not choose
	// its own cut). Rare: one or a few per revoked controller.
	cuts map[string][]*SignerRecord
	// access holds services, policies and identity roles, and what they
	// grant (access.go).
	access accessIndex

	// names interns identities, methods and controller names, which
	// repeat across records. It only grows between collections: Collect
	// rebuilds it from the records held once it has doubled since the last
	// rebuild, so that names no record uses any more are let go.
	names      map[string]string
	namesBuilt int    // len(names) after the last rebuild
	lastMethod string // the method interned last
	noIntern   bool   // SetInterning(false)
	// fresh, while a Collection rebuilds the intern table step by step,
	// is the table being built: every string interned meanwhile goes into
	// it too, so that the records merged during the rebuild keep theirs.
	fresh map[string]string

	// hot is the log looked up or merged into last: records come in runs
	// of one author, and a merge or a gap check follows a Has of the same
	// dot.
	hot *authorLog

	digest uint64
	counts [maxKind + 1]int
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		authors:           make(map[Author]*authorLog),
		sessions:          newWinners[SessionID, *SessionRecord](),
		certs:             newWinners[Serial, *CertRecord](),
		signers:           newWinners[signerKey, *SignerRecord](),
		cuts:              make(map[string][]*SignerRecord),
		superseded:        newJoins[Serial](false),
		revokedSessions:   newJoins[SessionID](false),
		revokedSerials:    newJoins[Serial](false),
		revokedIdentities: newJoins[string](true),
		revokedSigners:    newJoins[string](false),
		names:             make(map[string]string),
		access:            newAccessIndex(),
	}
}

// intern replaces *p by the store's copy of the same string, if it has
// one. The field is written only when it does not already point at that
// copy, so a record shared by stores that intern it alike is written once.
func (s *Store) intern(p *string) {
	v := *p
	if v == "" {
		return
	}
	c, ok := s.names[v]
	if !ok {
		c = v
		s.names[v] = v
	} else if !sameString(c, v) {
		*p = c
	}
	if s.fresh != nil {
		s.fresh[c] = c
	}
}

// SetInterning turns interning of repeated strings off or on (the
// default). A store whose records are objects shared with other stores, as
// in the simulator, holds no copies to save, and interning would only cost
// a map lookup per merge and a table per store.
func (s *Store) SetInterning(on bool) { s.noIntern = !on }

// Reserve sizes an empty store's indexes for the given numbers of sessions
// and certificates, so that a store known to grow that large (each of the
// simulator's thousands) does not rehash its way there. A store that holds
// records already is left as it is.
func (s *Store) Reserve(sessions, certs int) {
	if s.Len() > 0 {
		return
	}
	s.sessions.m = make(map[SessionID]*SessionRecord, max(sessions, 0))
	s.certs.m = make(map[Serial]*CertRecord, max(certs, 0))
}

// internFields interns the strings of r that repeat across records.
func (s *Store) internFields(r Record) {
	if s.noIntern {
		return
	}
	switch r := r.(type) {
	case *SessionRecord:
		s.intern(&r.Identity)
		// Methods are few and come in runs: the last one saves a lookup.
		if r.Method == s.lastMethod && s.fresh == nil {
			if !sameString(r.Method, s.lastMethod) {
				r.Method = s.lastMethod
			}
		} else {
			s.intern(&r.Method)
			s.lastMethod = r.Method
		}
	case *CertRecord:
		s.intern(&r.Identity)
	case *IdentityRolesRecord:
		s.intern(&r.Identity)
	case *IdentityRevocationRecord:
		s.intern(&r.Identity)
	case *SignerRecord:
		s.intern(&r.Controller)
	}
}

// reintern rebuilds the intern table from the records held, in one go.
func (s *Store) reintern() {
	s.fresh = make(map[string]string, s.namesBuilt)
	s.lastMethod = ""
	s.Range(func(r Record) bool {
		s.internFields(r)
		return true
	})
	s.names, s.fresh = s.fresh, nil
	s.namesBuilt = len(s.names)
	s.lastMethod = ""
}

// log returns the log of a, creating it if create is set.
func (s *Store) log(a Author, create bool) (*authorLog, error) {
	l := s.lookup(a)
	if l != nil || !create {
		return l, nil
	}
	if len(s.authors) >= MaxAuthors {
		return nil, ErrTooManyAuthors
	}
	l = &authorLog{author: a}
	s.authors[a] = l
	i, _ := slices.BinarySearchFunc(s.order, a, func(e *authorLog, a Author) int { return compareAuthors(e.author, a) })
	s.order = slices.Insert(s.order, i, l)
	return l, nil
}

// Has reports whether the store covers d: it holds the record, or held and
// collected it, or dropped it as written by a revoked author, or a peer
// proved it collected (CoverInterval).
func (s *Store) Has(d Dot) bool {
	l := s.lookup(d.Author)
	return l != nil && l.covered(d.Seq)
}

// lookup returns a's log, or nil, trying the last one looked up first.
func (s *Store) lookup(a Author) *authorLog {
	if h := s.hot; h != nil && h.author.Incarnation == a.Incarnation && h.author.Name == a.Name {
		return h
	}
	l := s.authors[a]
	if l != nil {
		s.hot = l
	}
	return l
}

// Get returns the record at d, if held.
func (s *Store) Get(d Dot) Record {
	if l := s.lookup(d.Author); l != nil {
		return l.get(d.Seq)
	}
	return nil
}

// MergeVerified merges one record into the store and reports whether it
// was new. Callers MUST ONLY pass records that passed Verify: the store
// trusts their contents and signature. The record is shared, not copied,
// and must not be modified afterwards. The store may replace its string
// fields by equal strings that it already holds (interning), which changes
// no value; a record merged into several stores is written by each at most
// once, so such stores must not merge the same record concurrently.
//
// A record already covered is ignored (false, nil). ErrTooFarAhead and
// ErrTooManyAuthors leave the store unchanged; ErrAuthorRevoked covers the
// dot and sets the record aside.
func (s *Store) MergeVerified(r Record) (bool, error) {
	h := r.Head()
	if h.Seq == 0 {
		return false, invalid("seq 0")
	}
	l := s.lookup(h.Author) // usually hot: Has(dot) came first
	var have uint64
	if l != nil {
		if l.covered(h.Seq) {
			return false, nil
		}
		have = l.contiguous
	}
	if h.Seq-have > MaxSeqAhead {
		return false, fmt.Errorf("%w: %v, have %d", ErrTooFarAhead, h.Dot(), have)
	}
	if l == nil {
		var err error
		if l, err = s.log(h.Author, true); err != nil {
			return false, err
		}
	}
	s.hot = l
	l.cover(h.Seq)
	if s.droppedByRevocation(r) {
		l.drop(h.Seq, r)
		l.capDropped()
		return false, fmt.Errorf("%w: %v written at %v", ErrAuthorRevoked, h.Dot(), h.HLC)
	}
	l.put(h.Seq, r)
	s.index(l, r)
	return true, nil
}

// Refuse covers r's dot without merging r. It is for a record that its
// author signed but that may not count (one about another controller's
// session or certificate). r is kept aside, as a record of a revoked
// author is, until it expires, so that peers that lack it receive it,
// refuse it too and cover its dot instead of waiting for it. The caller
// must have verified r's signature, or a forged record could cover a
// genuine dot.
func (s *Store) Refuse(r Record) {
	h := r.Head()
	l := s.lookup(h.Author)
	var have uint64
	if l != nil {
		if l.covered(h.Seq) {
			return
		}
		have = l.contiguous
	}
	if h.Seq == 0 || h.Seq-have > MaxSeqAhead {
		return
	}
	if l == nil {
		var err error
		if l, err = s.log(h.Author, true); err != nil {
			return
		}
	}
	l.cover(h.Seq)
	l.set(h.Seq, droppedRecord{Record: r, refused: true})
	l.capDropped()
}

func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// index adds r to the derived indexes, the digest and the counts.
func (s *Store) index(l *authorLog, r Record) {
	h := r.Head()
	if !sameString(h.Author.Name, l.author.Name) {
		h.Author.Name = l.author.Name
	}
	s.digest ^= recordHash(r)
	s.counts[r.Kind()]++
	s.internFields(r)
	switch r := r.(type) {
	case *SessionRecord:
		s.sessions.add(r.ID, r)
	case *CertRecord:
		s.certs.add(r.Serial, r)
		if !r.Supersedes.IsZero() {
			s.superseded.add(r.Supersedes, r.SupersedeAt)
		}
	case *RevocationRecord:
		if r.Target == RevokeSession {
			s.revokedSessions.add(r.Session, r.At)
		} else {
			s.revokedSerials.add(r.Serial, r.At)
		}
		l.addRevocation(r.Seq)
	case *IdentityRevocationRecord:
		s.revokedIdentities.add(r.Identity, r.RevokedBefore)
		l.addRevocation(r.Seq)
	case *ServiceRecord, *PolicyRecord, *IdentityRolesRecord:
		s.access.index(r, true)
	case *SignerRecord:
		if !r.Revoked {
			s.signers.add(signerKey{r.Controller, r.KeyID}, r)
			return
		}
		l.addRevocation(r.Seq)
		prev, had := s.revokedSigners.get(r.Controller)
		s.revokedSigners.add(r.Controller, r.RevokedAt)
		cut := s.addCut(r)
		if now, _ := s.revokedSigners.get(r.Controller); !had || now != prev || cut {
			s.reconcileRevoked(r.Controller)
		}
	}
}

// unindex removes r from the derived indexes, the digest and the counts.
func (s *Store) unindex(l *authorLog, r Record) {
	s.digest ^= recordHash(r)
	s.counts[r.Kind()]--
	switch r := r.(type) {
	case *SessionRecord:
		s.sessions.remove(r.ID, r)
	case *CertRecord:
		s.certs.remove(r.Serial, r)
		if !r.Supersedes.IsZero() {
			s.superseded.remove(r.Supersedes, r.SupersedeAt)
		}
	case *RevocationRecord:
		if r.Target == RevokeSession {
			s.revokedSessions.remove(r.Session, r.At)
		} else {
			s.revokedSerials.remove(r.Serial, r.At)
		}
		l.removeRevocation(r.Seq)
	case *IdentityRevocationRecord:
		s.revokedIdentities.remove(r.Identity, r.RevokedBefore)
		l.removeRevocation(r.Seq)
	case *ServiceRecord, *PolicyRecord, *IdentityRolesRecord:
		s.access.index(r, false)
	case *SignerRecord:
		if !r.Revoked {
			s.signers.remove(signerKey{r.Controller, r.KeyID}, r)
			return
		}
		l.removeRevocation(r.Seq)
		prev, _ := s.revokedSigners.get(r.Controller)
		s.revokedSigners.remove(r.Controller, r.RevokedAt)
		cut := s.removeCut(r)
		if now, ok := s.revokedSigners.get(r.Controller); !ok || now != prev || cut {
			s.reconcileRevoked(r.Controller)
		}
	}
}
