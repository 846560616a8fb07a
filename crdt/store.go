package crdt

import (
	"encoding/binary"
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

// Records are kept in pages of pageSize consecutive seqs, so that a log
// costs memory for the records it holds, not for the span of seqs between
// them: a long-lived record among collected ones pins one page, not every
// slot since, and a sparse snapshot does not allocate its gaps.
const (
	pageBits = 6
	pageSize = 1 << pageBits
	pageMask = pageSize - 1
)

// page holds seqs key<<pageBits .. key<<pageBits|pageMask: 1 KiB, exactly
// a size class.
type page [pageSize]Record

// droppedRecord marks, in a page, a record written by its author after the
// root revoked its controller. It is in no index and not in the digest; it
// is kept until it expires so that a peer that lacks it receives it, drops
// it too and covers its dot: a dot the peer could not prove collected would
// stay a gap in its context forever.
//
// A refused record (Store.Refuse) is kept the same way, for the same
// reason, but no change of revocations ever brings it back.
type droppedRecord struct {
	Record
	refused bool
}

func unwrap(r Record) (rec Record, dropped bool) {
	if d, ok := r.(droppedRecord); ok {
		return d.Record, true
	}
	return r, false
}

// authorLog is everything a store has of one author.
type authorLog struct {
	author Author
	pages  map[uint64]*page // by seq >> pageBits; no page is all nil
	keys   []uint64         // the keys of pages, sorted
	// Invariant: every seq in 1..contiguous is covered, contiguous+1 is not.
	// Every record held or dropped is at most MaxSeqAhead above it.
	contiguous uint64
	above      map[uint64]struct{} // covered seqs > contiguous+1
	ndropped   int                 // dropped records in pages
	// revocations holds the seqs of held records that jump the queue in
	// DeltaSince (revocations of any kind), sorted.
	revocations []uint64
}

func (l *authorLog) covered(seq uint64) bool {
	if seq <= l.contiguous {
		return true
	}
	_, ok := l.above[seq]
	return ok
}

// slot returns what the page holds at seq: nil, a record, or a
// droppedRecord.
func (l *authorLog) slot(seq uint64) Record {
	if p := l.pages[seq>>pageBits]; p != nil {
		return p[seq&pageMask]
	}
	return nil
}

// get returns the held record at seq, or nil.
func (l *authorLog) get(seq uint64) Record {
	r := l.slot(seq)
	if _, dropped := r.(droppedRecord); dropped {
		return nil
	}
	return r
}

// entry returns the record at seq, held or dropped, or nil.
func (l *authorLog) entry(seq uint64) Record {
	r, _ := unwrap(l.slot(seq))
	return r
}

// set stores r (nil, a record or a droppedRecord) at seq, creating and
// freeing pages as needed.
func (l *authorLog) set(seq uint64, r Record) {
	k := seq >> pageBits
	p := l.pages[k]
	if p == nil {
		if r == nil {
			return
		}
		if l.pages == nil {
			l.pages = make(map[uint64]*page)
		}
		p = new(page)
		l.pages[k] = p
		if n := len(l.keys); n == 0 || l.keys[n-1] < k {
			l.keys = append(l.keys, k)
		} else {
			i, _ := slices.BinarySearch(l.keys, k)
			l.keys = slices.Insert(l.keys, i, k)
		}
	}
	if _, dropped := p[seq&pageMask].(droppedRecord); dropped {
		l.ndropped--
	}
	if _, dropped := r.(droppedRecord); dropped {
		l.ndropped++
	}
	p[seq&pageMask] = r
	if r == nil && *p == (page{}) {
		delete(l.pages, k)
		if i, found := slices.BinarySearch(l.keys, k); found {
			l.keys = slices.Delete(l.keys, i, i+1)
		}
	}
}

func (l *authorLog) put(seq uint64, r Record)  { l.set(seq, r) }
func (l *authorLog) drop(seq uint64, r Record) { l.set(seq, droppedRecord{Record: r}) }
func (l *authorLog) clear(seq uint64)          { l.set(seq, nil) }

// refused reports whether the record at seq was refused (Store.Refuse).
func (l *authorLog) refused(seq uint64) bool {
	d, ok := l.slot(seq).(droppedRecord)
	return ok && d.refused
}

// next returns the lowest seq in [from, to] holding a record, held or
// dropped, and that record; nil if there is none. It skips empty pages in
// one step each, and missing pages at no cost.
func (l *authorLog) next(from, to uint64) (uint64, Record) {
	if from > to {
		return 0, nil
	}
	k := from >> pageBits
	i, _ := slices.BinarySearch(l.keys, k)
	for ; i < len(l.keys); i++ {
		key := l.keys[i]
		if key > to>>pageBits {
			return 0, nil
		}
		p := l.pages[key]
		j := 0
		if key == k {
			j = int(from & pageMask)
		}
		for ; j < pageSize; j++ {
			if p[j] == nil {
				continue
			}
			seq := key<<pageBits | uint64(j)
			if seq > to {
				return 0, nil
			}
			r, _ := unwrap(p[j])
			return seq, r
		}
	}
	return 0, nil
}

// top is the highest seq of a record held or dropped, or 0 if none: above
// it there is no record to prove anything with.
func (l *authorLog) top() uint64 {
	if len(l.keys) == 0 {
		return 0
	}
	k := l.keys[len(l.keys)-1]
	p := l.pages[k]
	for j := pageSize - 1; j >= 0; j-- {
		if p[j] != nil {
			return k<<pageBits | uint64(j)
		}
	}
	return 0
}

// each calls fn for every record held or dropped, in seq order, until fn
// returns false. fn may replace a record by another at the same seq, not
// remove one.
func (l *authorLog) each(fn func(seq uint64, r Record, dropped bool) bool) bool {
	for _, k := range l.keys {
		p := l.pages[k]
		for j, r := range p {
			if r == nil {
				continue
			}
			r, dropped := unwrap(r)
			if !fn(k<<pageBits|uint64(j), r, dropped) {
				return false
			}
		}
	}
	return true
}

func (l *authorLog) cover(seq uint64) {
	if seq <= l.contiguous {
		return
	}
	if seq != l.contiguous+1 {
		if l.above == nil {
			l.above = make(map[uint64]struct{})
		}
		l.above[seq] = struct{}{}
		return
	}
	l.contiguous++
	l.absorb()
}

// coverUpTo covers every seq in 1..seq.
func (l *authorLog) coverUpTo(seq uint64) {
	if seq <= l.contiguous {
		return
	}
	for s := range l.above {
		if s <= seq {
			delete(l.above, s)
		}
	}
	l.contiguous = seq
	l.absorb()
}

// absorb extends contiguous over the dots above that now follow it.
func (l *authorLog) absorb() {
	for len(l.above) > 0 {
		if _, ok := l.above[l.contiguous+1]; !ok {
			return
		}
		delete(l.above, l.contiguous+1)
		l.contiguous++
	}
}

// sortedAbove returns the covered seqs above contiguous+1 in order.
func (l *authorLog) sortedAbove() []uint64 {
	if len(l.above) == 0 {
		return nil
	}
	seqs := make([]uint64, 0, len(l.above))
	for seq := range l.above {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs
}

func (l *authorLog) addRevocation(seq uint64) {
	i, found := slices.BinarySearch(l.revocations, seq)
	if !found {
		l.revocations = slices.Insert(l.revocations, i, seq)
	}
}

func (l *authorLog) removeRevocation(seq uint64) {
	if i, found := slices.BinarySearch(l.revocations, seq); found {
		l.revocations = slices.Delete(l.revocations, i, i+1)
	}
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

	// names interns identities, methods and controller names, which
	// repeat across records. It only grows between collections: Collect
	// rebuilds it from the records held once it has doubled since the last
	// rebuild, so that names no record uses any more are let go.
	names      map[string]string
	namesBuilt int    // len(names) after the last rebuild
	lastMethod string // the method interned last
	noIntern   bool   // SetInterning(false)

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
	if c, ok := s.names[v]; ok {
		if !sameString(c, v) {
			*p = c
		}
		return
	}
	s.names[v] = v
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
		if r.Method == s.lastMethod {
			if !sameString(r.Method, s.lastMethod) {
				r.Method = s.lastMethod
			}
		} else {
			s.intern(&r.Method)
			s.lastMethod = r.Method
		}
	case *CertRecord:
		s.intern(&r.Identity)
	case *IdentityRevocationRecord:
		s.intern(&r.Identity)
	case *SignerRecord:
		s.intern(&r.Controller)
	}
}

// reintern rebuilds the intern table from the records held.
func (s *Store) reintern() {
	s.names = make(map[string]string, s.namesBuilt)
	s.lastMethod = ""
	s.Range(func(r Record) bool {
		s.internFields(r)
		return true
	})
	s.namesBuilt = len(s.names)
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
}

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
		c := AuthorContext{Author: l.author, Max: l.contiguous, Above: l.sortedAbove()}
		if len(c.Above) > MaxCutAbove {
			c.Above = c.Above[:MaxCutAbove]
		}
		cut = append(cut, c)
	}
	return cut
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

// before orders records that claim the same key, so that every replica
// indexes the same one whatever the arrival order.
func before(a, b Record) bool {
	ha, hb := a.Head(), b.Head()
	if ha.HLC != hb.HLC {
		return ha.HLC < hb.HLC
	}
	if c := compareAuthors(ha.Author, hb.Author); c != 0 {
		return c < 0
	}
	return ha.Seq < hb.Seq
}

// winners indexes, for each key, the earliest record (by before) of those
// held that claim it. Write-once facts: a second record for the same key is
// kept aside, and takes over if the winner is collected.
type winners[K comparable, R Record] struct {
	m    map[K]R
	dups map[K][]R // losers, only for keys claimed more than once (rare)
}

func newWinners[K comparable, R Record]() winners[K, R] {
	return winners[K, R]{m: make(map[K]R)}
}

func (w *winners[K, R]) add(k K, r R) {
	old, ok := w.m[k]
	if !ok {
		w.m[k] = r
		return
	}
	if before(r, old) {
		w.m[k], r = r, old
	}
	if w.dups == nil {
		w.dups = make(map[K][]R)
	}
	w.dups[k] = append(w.dups[k], r)
}

func (w *winners[K, R]) remove(k K, r R) {
	old, ok := w.m[k]
	if !ok {
		return
	}
	d := w.dups[k]
	if Record(old) == Record(r) {
		if len(d) == 0 {
			delete(w.m, k)
			return
		}
		best := 0
		for i := range d {
			if before(d[i], d[best]) {
				best = i
			}
		}
		w.m[k] = d[best]
		d = slices.Delete(d, best, best+1)
	} else {
		i := slices.IndexFunc(d, func(x R) bool { return Record(x) == Record(r) })
		if i < 0 {
			return
		}
		d = slices.Delete(d, i, i+1)
	}
	if len(d) == 0 {
		delete(w.dups, k)
	} else {
		w.dups[k] = d
	}
}

// joins indexes, for each key, the join (min, or max if isMax) of the
// values that the records held assert for it. Nearly every key is asserted
// by one record: its value is its join, and only keys asserted more than
// once keep their values aside, as winners keeps its losers. A store holds
// an entry per certificate rotated or revoked, so the common entry is kept
// to a key and a value, with no slice to allocate.
type joins[K comparable] struct {
	m     map[K]Millis   // the join, for every key asserted
	multi map[K][]Millis // every value, only for keys asserted more than once
	isMax bool
}

func newJoins[K comparable](isMax bool) joins[K] {
	return joins[K]{m: make(map[K]Millis), isMax: isMax}
}

func (j *joins[K]) get(k K) (Millis, bool) {
	at, ok := j.m[k]
	return at, ok
}

func (j *joins[K]) has(k K) bool {
	_, ok := j.m[k]
	return ok
}

func (j *joins[K]) add(k K, v Millis) {
	at, ok := j.m[k]
	if !ok {
		j.m[k] = v
		return
	}
	vals, ok := j.multi[k]
	if !ok {
		vals = []Millis{at} // the key's one value so far
	}
	if j.multi == nil {
		j.multi = make(map[K][]Millis)
	}
	j.multi[k] = append(vals, v)
	if j.better(v, at) {
		j.m[k] = v
	}
}

func (j *joins[K]) remove(k K, v Millis) {
	at, ok := j.m[k]
	if !ok {
		return
	}
	vals, ok := j.multi[k]
	if !ok {
		if at == v {
			delete(j.m, k)
		}
		return
	}
	i := slices.Index(vals, v)
	if i < 0 {
		return
	}
	vals = slices.Delete(vals, i, i+1)
	at = vals[0]
	for _, x := range vals[1:] {
		if j.better(x, at) {
			at = x
		}
	}
	j.m[k] = at
	if len(vals) == 1 {
		delete(j.multi, k)
	} else {
		j.multi[k] = vals
	}
}

func (j *joins[K]) better(v, than Millis) bool {
	if j.isMax {
		return v > than
	}
	return v < than
}

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
	for i := 0; i < len(h.Sig); i += 8 {
		x = mix64(x, binary.LittleEndian.Uint64(h.Sig[i:]))
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

// Context returns the store's causal context, sorted by author.
func (s *Store) Context() Context {
	c := make(Context, 0, len(s.order))
	for _, l := range s.order {
		c = append(c, AuthorContext{Author: l.author, Max: l.contiguous, Above: l.sortedAbove()})
	}
	return c
}

// VersionVector returns the highest contiguous seq per author.
func (s *Store) VersionVector() map[Author]uint64 {
	vv := make(map[Author]uint64, len(s.authors))
	for a, l := range s.authors {
		vv[a] = l.contiguous
	}
	return vv
}

// Missing counts the dots this store covers that peer lacks, a measure of
// how far behind peer is. It costs one step per author and out-of-order dot.
// peer should have passed Validate.
func (s *Store) Missing(peer Context) uint64 {
	var n uint64
	for _, l := range s.order {
		var pm uint64
		var pa []uint64
		if e := peer.Find(l.author); e != nil {
			pm, pa = e.Max, e.Above
		}
		if l.contiguous > pm {
			n += l.contiguous - pm
			for _, seq := range pa {
				if seq > pm && seq <= l.contiguous {
					n--
				}
			}
		}
		for seq := range l.above {
			if seq > pm {
				if _, ok := slices.BinarySearch(pa, seq); !ok {
					n++
				}
			}
		}
	}
	return n
}

// Range calls fn for every held record, author by author in seq order,
// until fn returns false. Records dropped as written by a revoked author
// are not visited.
func (s *Store) Range(fn func(Record) bool) {
	for _, l := range s.order {
		if !l.each(func(_ uint64, r Record, dropped bool) bool { return dropped || fn(r) }) {
			return
		}
	}
}

// rangeAll is Range including the records dropped as written by a
// revoked author, which a restore drops again. Refused records are left
// out: a restore merges without verifying, so one would count there.
func (s *Store) rangeAll(fn func(r Record) bool) {
	for _, l := range s.order {
		if !l.each(func(seq uint64, r Record, dropped bool) bool {
			return dropped && l.refused(seq) || fn(r)
		}) {
			return
		}
	}
}

// dropCount is the number of records rangeAll visits that Range does not.
func (s *Store) dropCount() int {
	n := 0
	for _, l := range s.order {
		if l.ndropped == 0 {
			continue
		}
		l.each(func(seq uint64, _ Record, dropped bool) bool {
			if dropped && !l.refused(seq) {
				n++
			}
			return true
		})
	}
	return n
}

// CoverInterval records that a peer covered every seq of iv.Author in
// (iv.From, iv.To] and sent every record it held there. It is called after
// the records of the same delta were merged; if any record of iv.Author in
// that delta could not be merged (other than ErrAuthorRevoked, which
// covers its dot), skip the interval. A seq still missing is taken as
// collected at the peer only when a record of the same author with a
// higher seq, held here, was written at least MinRetention before now:
// writes are numbered in HLC order, so the missing one is older still, and
// no honest peer collects a record younger than that. Otherwise the gap
// stays, and anti-entropy keeps asking for it; a peer cannot make this
// store skip a record younger than MinRetention by withholding it.
//
// Its cost follows the length of the interval, capped by MaxSeqAhead: no
// record is held more than that above the author's contiguous seq.
func (s *Store) CoverInterval(iv Interval, now Millis) {
	l := s.authors[iv.Author]
	if l == nil || iv.To <= iv.From || iv.To <= l.contiguous {
		return
	}
	lo := max(iv.From, l.contiguous)
	// Nothing is held more than MaxSeqAhead above contiguous, and nothing
	// above the top record proves anything.
	hi := min(iv.To, l.top(), l.contiguous+MaxSeqAhead)
	if hi <= lo {
		return
	}
	// Bound on the HLC of everything at or below the current seq: the HLC
	// of the nearest record above it.
	var bound Timestamp
	_, above := l.next(hi+1, math.MaxUint64)
	found := above != nil
	if found {
		bound = above.Head().HLC
	}
	horizon := addMillis(now, -MinRetention)
	for seq := hi; seq > lo; seq-- {
		if r := l.entry(seq); r != nil {
			bound, found = r.Head().HLC, true
			continue
		}
		if found && bound.Millis() <= horizon && !l.covered(seq) {
			l.cover(seq)
		}
	}
}

// Collect drops every record that can no longer matter anywhere, by the
// rule of Retention with a slack of maxOffset plus grace: roughly, its
// expiry (a certificate's or session's not-after; for a revocation, the
// expiry of what it covers, whatever its writer's config) plus the slack is
// before now, and it was written at least MinRetention ago. Dots stay
// covered, so a collected record is never merged again. It returns how many
// held records were dropped. Collect visits every record; call it at
// intervals of minutes, not per write.
func (s *Store) Collect(now Millis, maxOffset, grace time.Duration) int {
	rule := s.retention(now, maxOffset+grace)
	type victim struct {
		l       *authorLog
		seq     uint64
		r       Record
		dropped bool
	}
	var victims []victim
	for _, l := range s.order {
		l.each(func(seq uint64, r Record, dropped bool) bool {
			if rule.Collectable(r) {
				victims = append(victims, victim{l, seq, r, dropped})
			}
			return true
		})
	}
	// Removing a signer revocation may bring dropped records back
	// (reconcileRevoked), so the victims are chosen first and removed
	// after, each only if still where it was.
	n := 0
	for _, v := range victims {
		cur, dropped := unwrap(v.l.slot(v.seq))
		if cur != v.r {
			continue
		}
		v.l.clear(v.seq)
		if !dropped {
			s.unindex(v.l, v.r)
			n++
		}
	}
	if len(s.names) > 2*s.namesBuilt+1024 {
		s.reintern()
	}
	return n
}

// DeltaSince returns what peer lacks, within about budget bytes of encoded
// records (at least one record when anything is missing): first the
// revocations peer lacks, then everything else oldest first by HLC across
// authors, with the intervals that the records complete, then records held
// above this store's own contiguous seqs. It stops at the first record that
// does not fit. It sends nothing that peer would refuse as ErrTooFarAhead.
// Its cost follows the size of the difference, not of the state. peer
// should have passed Validate.
func (s *Store) DeltaSince(peer Context, budget int) Delta {
	var d Delta
	used := 0
	try := func(r Record) bool {
		n := EncodedSizeHint(r)
		if len(d.Records) > 0 && used+n > budget {
			d.Truncated = true
			return false
		}
		d.Records = append(d.Records, r)
		used += n
		return true
	}

	cursors := make([]deltaCursor, 0, len(s.order))
	for _, l := range s.order {
		pc := peer.Find(l.author)
		if pc == nil {
			pc = &AuthorContext{Author: l.author}
		}
		limit := pc.Max + MaxSeqAhead // the peer refuses anything above
		if limit < pc.Max {
			limit = math.MaxUint64
		}
		c := deltaCursor{l: l, pc: pc, from: pc.Max, next: pc.Max + 1, to: min(l.contiguous, limit), limit: limit}
		// Revocations first: they may jump the queue, the dot cloud
		// absorbs them.
		if !d.Truncated {
			i, _ := slices.BinarySearch(l.revocations, pc.Max+1)
			for _, seq := range l.revocations[i:] {
				if seq > limit {
					break
				}
				if pc.Has(seq) {
					continue
				}
				if !try(l.get(seq)) {
					break
				}
				c.sent = append(c.sent, seq)
			}
		}
		cursors = append(cursors, c)
	}

	// Oldest first across authors: a heap of cursors keyed by the HLC of
	// the next record each would send. The interval of an author runs up
	// to the seq before the first record it could not send.
	var h cursorHeap
	for i := range cursors {
		c := &cursors[i]
		if c.to <= c.from {
			continue
		}
		if c.peek() {
			h.push(c)
		} else {
			c.finish(&d, c.to)
		}
	}
	for len(h) > 0 {
		c := h.pop()
		if d.Truncated || !try(c.l.entry(c.next)) {
			c.finish(&d, c.next-1)
			continue
		}
		if c.done {
			c.finish(&d, c.to)
			continue
		}
		c.next++
		if c.peek() {
			h.push(c)
		} else {
			c.finish(&d, c.to)
		}
	}
	slices.SortFunc(d.Intervals, func(a, b Interval) int { return compareAuthors(a.Author, b.Author) })

	// Records held above our own contiguous seqs: their dots travel with
	// them, no interval can vouch for the gaps between.
	for i := range cursors {
		c := &cursors[i]
		if d.Truncated {
			break
		}
		for _, seq := range c.l.sortedAbove() {
			if seq > c.limit {
				break
			}
			if c.pc.Has(seq) || c.wasSent(seq) {
				continue
			}
			r := c.l.entry(seq)
			if r == nil {
				continue
			}
			if !try(r) {
				break
			}
		}
	}
	return d
}

// deltaCursor walks one author's seqs for DeltaSince.
type deltaCursor struct {
	l     *authorLog
	pc    *AuthorContext
	from  uint64   // interval start (exclusive): the peer's contiguous seq
	next  uint64   // next seq to look at
	to    uint64   // last seq to walk
	limit uint64   // highest seq the peer accepts
	sent  []uint64 // revocations already in the delta, sorted
	t     Timestamp
	done  bool // nothing left to send in next..to
}

func (c *deltaCursor) wasSent(seq uint64) bool {
	_, ok := slices.BinarySearch(c.sent, seq)
	return ok
}

// peek advances next to the next record to send and reports whether there
// is one; c.t is its HLC.
func (c *deltaCursor) peek() bool {
	for !c.done {
		seq, r := c.l.next(c.next, c.to)
		if r == nil {
			break
		}
		c.next = seq
		if seq == c.to {
			c.done = true // no seq after it to move next to
		}
		if c.pc.Has(seq) || c.wasSent(seq) {
			c.next++
			continue
		}
		c.t = r.Head().HLC
		return true
	}
	c.done = true
	return false
}

func (c *deltaCursor) finish(d *Delta, upTo uint64) {
	if upTo > c.from {
		d.Intervals = append(d.Intervals, Interval{Author: c.l.author, From: c.from, To: upTo})
	}
}

// cursorHeap is a min-heap of cursors by (HLC, author).
type cursorHeap []*deltaCursor

func (h cursorHeap) less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return compareAuthors(h[i].l.author, h[j].l.author) < 0
}

func (h *cursorHeap) push(c *deltaCursor) {
	*h = append(*h, c)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *cursorHeap) pop() *deltaCursor {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && a.less(l, m) {
			m = l
		}
		if r < n && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// EncodedSizeHint is an upper bound on r's wire encoding, computed without
// encoding it.
func EncodedSizeHint(r Record) int {
	h := r.Head()
	n := 3 + 2 + len(h.Author.Name) + 9 + 9 + 9 + 2 + 64 // array, kind, name, inc, seq, hlc, sig
	switch r := r.(type) {
	case *SessionRecord:
		n += 18 + 3 + len(r.Identity) + 3 + len(r.Method) + 18
	case *CertRecord:
		n += 18 + 18 + 3 + len(r.Identity) + 34 + 27 + 18
	case *RevocationRecord:
		n += 2 + 18 + 18 + 3 + len(r.Reason) + 18
	case *IdentityRevocationRecord:
		n += 3 + len(r.Identity) + 9 + 3 + len(r.Reason) + 9
	case *SignerRecord:
		n += 2 + len(r.Controller) + 34 + 3 + len(r.Cert) + 9 + 1 + 9 + 3 + len(r.RootSig)
		if r.Cut != nil {
			n += 3
			for _, c := range r.Cut {
				n += 1 + 9 + 9 + 3 + 9*len(c.Above)
			}
		}
	}
	return n
}
