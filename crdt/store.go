package crdt

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"
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
	// MaxSeqAhead above its author's contiguous seq.
	ErrTooFarAhead = errors.New("crdt: record too far ahead of its author's version")
	// ErrAuthorRevoked is returned for a record written by a controller
	// after the root revoked it. Its dot is covered; the record is dropped.
	ErrAuthorRevoked = errors.New("crdt: author revoked")
	// ErrTooManyAuthors is returned when a record would add an author past
	// MaxAuthors.
	ErrTooManyAuthors = errors.New("crdt: too many authors")
)

// authorLog is everything a store has of one author.
type authorLog struct {
	author Author
	// records[i] holds seq base+1+i; nil where the record was never
	// received or has been collected.
	base    uint64
	records []Record
	// Invariant: every seq in 1..contiguous is covered, contiguous+1 is not.
	contiguous uint64
	above      map[uint64]struct{} // covered seqs > contiguous+1
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

func (l *authorLog) get(seq uint64) Record {
	if seq <= l.base || seq > l.base+uint64(len(l.records)) {
		return nil
	}
	return l.records[seq-l.base-1]
}

func (l *authorLog) put(seq uint64, r Record) {
	for seq > l.base+uint64(len(l.records)) {
		l.records = append(l.records, nil)
	}
	l.records[seq-l.base-1] = r
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
	for {
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

// trim drops the collected prefix of records.
func (l *authorLog) trim() {
	n := 0
	for n < len(l.records) && l.records[n] == nil && l.base+uint64(n) < l.contiguous {
		n++
	}
	if n == 0 {
		return
	}
	l.base += uint64(n)
	if n > len(l.records)/2 {
		l.records = append([]Record(nil), l.records[n:]...)
	} else {
		l.records = l.records[n:]
	}
}

// refMillis is an index entry that several records may assert.
type refMillis struct {
	at Millis
	n  int32
}

type signerKey struct {
	controller string
	keyID      [32]byte
}

// Store is one replica of the state. See the package doc.
type Store struct {
	authors map[Author]*authorLog
	order   []*authorLog // the same logs sorted by author, for determinism

	sessions map[SessionID]*SessionRecord
	certs    map[Serial]*CertRecord
	// superseded[s] is the earliest SupersedeAt over certs rotating s.
	superseded        map[Serial]refMillis
	revokedSessions   map[SessionID]refMillis // earliest At
	revokedSerials    map[Serial]refMillis    // earliest At
	revokedIdentities map[string]refMillis    // latest RevokedBefore
	signers           map[signerKey]*SignerRecord
	revokedSigners    map[string]refMillis // earliest RevokedAt, by controller

	// names interns identities and author names, which repeat across
	// records.
	names map[string]string

	digest uint64
	counts [maxKind + 1]int
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		authors:           make(map[Author]*authorLog),
		sessions:          make(map[SessionID]*SessionRecord),
		certs:             make(map[Serial]*CertRecord),
		superseded:        make(map[Serial]refMillis),
		revokedSessions:   make(map[SessionID]refMillis),
		revokedSerials:    make(map[Serial]refMillis),
		revokedIdentities: make(map[string]refMillis),
		signers:           make(map[signerKey]*SignerRecord),
		revokedSigners:    make(map[string]refMillis),
		names:             make(map[string]string),
	}
}

func (s *Store) intern(v string) string {
	if c, ok := s.names[v]; ok {
		return c
	}
	s.names[v] = v
	return v
}

func (s *Store) log(a Author, create bool) (*authorLog, error) {
	l := s.authors[a]
	if l != nil || !create {
		return l, nil
	}
	if len(s.authors) >= MaxAuthors {
		return nil, ErrTooManyAuthors
	}
	a.Name = s.intern(a.Name)
	l = &authorLog{author: a}
	s.authors[a] = l
	i, _ := slices.BinarySearchFunc(s.order, a, func(e *authorLog, a Author) int { return compareAuthors(e.author, a) })
	s.order = slices.Insert(s.order, i, l)
	return l, nil
}

// Has reports whether the store covers d: it holds the record, or held and
// collected it, or dropped it as written by a revoked author.
func (s *Store) Has(d Dot) bool {
	l := s.authors[d.Author]
	return l != nil && l.covered(d.Seq)
}

// Get returns the record at d, if held.
func (s *Store) Get(d Dot) Record {
	if l := s.authors[d.Author]; l != nil {
		return l.get(d.Seq)
	}
	return nil
}

// MergeVerified merges one record into the store and reports whether it
// was new. Callers MUST ONLY pass records that passed Verify: the store
// trusts their contents and signature. The record is shared, not copied,
// and must not be modified afterwards.
//
// A record already covered is ignored (false, nil). ErrTooFarAhead leaves
// the store unchanged; ErrAuthorRevoked covers the dot and drops the record.
func (s *Store) MergeVerified(r Record) (bool, error) {
	h := r.Head()
	l, err := s.log(h.Author, true)
	if err != nil {
		return false, err
	}
	if l.covered(h.Seq) {
		return false, nil
	}
	if h.Seq > l.contiguous+MaxSeqAhead {
		return false, fmt.Errorf("%w: %v, have %d", ErrTooFarAhead, h.Dot(), l.contiguous)
	}
	if s.droppedByRevocation(r) {
		l.cover(h.Seq)
		return false, fmt.Errorf("%w: %v written at %v", ErrAuthorRevoked, h.Dot(), h.HLC)
	}
	h.Author.Name = l.author.Name
	l.put(h.Seq, r)
	l.cover(h.Seq)
	s.index(l, r)
	return true, nil
}

// droppedByRevocation reports whether r was written by a controller after
// the root revoked it. Revoking signer records themselves are never dropped.
func (s *Store) droppedByRevocation(r Record) bool {
	if sr, ok := r.(*SignerRecord); ok && sr.Revoked {
		return false
	}
	rev, ok := s.revokedSigners[r.Head().Author.Name]
	return ok && r.Head().HLC.Millis() > rev.at
}

// index adds r to the derived indexes, the digest and the counts.
func (s *Store) index(l *authorLog, r Record) {
	s.digest ^= recordHash(r)
	s.counts[r.Kind()]++
	switch r := r.(type) {
	case *SessionRecord:
		r.Identity = s.intern(r.Identity)
		if old, ok := s.sessions[r.ID]; !ok || before(r, old) {
			s.sessions[r.ID] = r
		}
	case *CertRecord:
		r.Identity = s.intern(r.Identity)
		if old, ok := s.certs[r.Serial]; !ok || before(r, old) {
			s.certs[r.Serial] = r
		}
		if !r.Supersedes.IsZero() {
			s.superseded[r.Supersedes] = joinMin(s.superseded[r.Supersedes], r.SupersedeAt)
		}
	case *RevocationRecord:
		if r.Target == RevokeSession {
			s.revokedSessions[r.Session] = joinMin(s.revokedSessions[r.Session], r.At)
		} else {
			s.revokedSerials[r.Serial] = joinMin(s.revokedSerials[r.Serial], r.At)
		}
		l.addRevocation(r.Seq)
	case *IdentityRevocationRecord:
		r.Identity = s.intern(r.Identity)
		s.revokedIdentities[r.Identity] = joinMax(s.revokedIdentities[r.Identity], r.RevokedBefore)
		l.addRevocation(r.Seq)
	case *SignerRecord:
		r.Controller = s.intern(r.Controller)
		if !r.Revoked {
			k := signerKey{r.Controller, r.KeyID}
			if old, ok := s.signers[k]; !ok || before(r, old) {
				s.signers[k] = r
			}
			return
		}
		l.addRevocation(r.Seq)
		prev, had := s.revokedSigners[r.Controller]
		s.revokedSigners[r.Controller] = joinMin(prev, r.RevokedAt)
		if !had || r.RevokedAt < prev.at {
			s.dropRevokedAuthor(r.Controller, r.RevokedAt)
		}
	}
}

// unindex removes r from the derived indexes, the digest and the counts.
func (s *Store) unindex(l *authorLog, r Record) {
	s.digest ^= recordHash(r)
	s.counts[r.Kind()]--
	switch r := r.(type) {
	case *SessionRecord:
		if s.sessions[r.ID] == r {
			delete(s.sessions, r.ID)
		}
	case *CertRecord:
		if s.certs[r.Serial] == r {
			delete(s.certs, r.Serial)
		}
		if !r.Supersedes.IsZero() {
			release(s.superseded, r.Supersedes)
		}
	case *RevocationRecord:
		if r.Target == RevokeSession {
			release(s.revokedSessions, r.Session)
		} else {
			release(s.revokedSerials, r.Serial)
		}
		l.removeRevocation(r.Seq)
	case *IdentityRevocationRecord:
		release(s.revokedIdentities, r.Identity)
		l.removeRevocation(r.Seq)
	case *SignerRecord:
		if !r.Revoked {
			k := signerKey{r.Controller, r.KeyID}
			if s.signers[k] == r {
				delete(s.signers, k)
			}
			return
		}
		release(s.revokedSigners, r.Controller)
		l.removeRevocation(r.Seq)
	}
}

// dropRevokedAuthor removes every held record that controller wrote after
// at, except revoking signer records. Replicas that received those records
// before the revocation and replicas that receive them after end up alike.
func (s *Store) dropRevokedAuthor(controller string, at Millis) {
	for a, l := range s.authors {
		if a.Name != controller {
			continue
		}
		for i, r := range l.records {
			if r != nil && r.Head().HLC.Millis() > at && s.droppedByRevocation(r) {
				l.records[i] = nil
				s.unindex(l, r)
			}
		}
	}
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

func joinMin(cur refMillis, v Millis) refMillis {
	if cur.n == 0 || v < cur.at {
		cur.at = v
	}
	cur.n++
	return cur
}

func joinMax(cur refMillis, v Millis) refMillis {
	if cur.n == 0 || v > cur.at {
		cur.at = v
	}
	cur.n++
	return cur
}

// release drops one assertion of an index entry. When others remain, the
// entry keeps its joined value: the collected record asserted it too, and
// whatever it bound can no longer be used anyway (see Collect).
func release[K comparable](m map[K]refMillis, k K) {
	e, ok := m[k]
	if !ok {
		return
	}
	if e.n <= 1 {
		delete(m, k)
		return
	}
	e.n--
	m[k] = e
}

// recordHash is a record's contribution to the digest: FNV-1a over its dot,
// HLC and signature, which together pin its contents.
func recordHash(r Record) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := r.Head()
	x := uint64(offset)
	for i := 0; i < len(h.Author.Name); i++ {
		x = (x ^ uint64(h.Author.Name[i])) * prime
	}
	for _, v := range [...]uint64{h.Author.Incarnation, h.Seq, uint64(h.HLC)} {
		for i := 0; i < 8; i++ {
			x = (x ^ (v >> (8 * i) & 0xff)) * prime
		}
	}
	for _, c := range h.Sig {
		x = (x ^ uint64(c)) * prime
	}
	return x
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

// Len is the number of records held.
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
		e := AuthorContext{Author: l.author, Max: l.contiguous}
		e.Above = l.sortedAbove()
		c = append(c, e)
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
func (s *Store) Missing(peer Context) uint64 {
	var n uint64
	for _, l := range s.authors {
		var pm uint64
		var pa []uint64
		if e := peer.Find(l.author); e != nil {
			pm, pa = e.Max, e.Above
		}
		if l.contiguous > pm {
			n += l.contiguous - pm
			for _, seq := range pa {
				if seq <= l.contiguous {
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
// until fn returns false.
func (s *Store) Range(fn func(Record) bool) {
	for _, l := range s.order {
		for _, r := range l.records {
			if r != nil && !fn(r) {
				return
			}
		}
	}
}

// CoverInterval records that a peer covered every seq of iv.Author in
// (iv.From, iv.To] and sent every record it held there. It is called after
// the records of the same delta were merged. A seq still missing is taken as
// collected at the peer only when a held record of the same author with a
// higher seq was written at least MinRetention before now: writes are
// numbered in HLC order, so the missing one is older still, and no honest
// peer collects a record younger than that. Otherwise the gap stays, and
// anti-entropy keeps asking for it; a peer cannot make this store skip a
// record by withholding it.
func (s *Store) CoverInterval(iv Interval, now Millis) {
	l := s.authors[iv.Author]
	if l == nil || iv.To <= l.contiguous || iv.To <= iv.From {
		return
	}
	// Bound on the HLC of everything at or below the current seq: the HLC
	// of the nearest held record above it.
	var bound Timestamp
	for seq := iv.To + 1; seq <= l.base+uint64(len(l.records)); seq++ {
		if r := l.get(seq); r != nil {
			bound = r.Head().HLC
			break
		}
	}
	horizon := now - Millis(MinRetention/time.Millisecond)
	for seq := iv.To; seq > max(iv.From, l.contiguous); seq-- {
		if r := l.get(seq); r != nil {
			bound = r.Head().HLC
			continue
		}
		if !l.covered(seq) && bound != 0 && bound.Millis() <= horizon {
			l.cover(seq)
		}
	}
}

// Collect drops every record that can no longer matter anywhere: its
// expiry (a certificate's or session's not-after, a revocation's until)
// plus maxOffset plus grace is before now, and it was written at least
// MinRetention ago. Dots stay covered, so a collected record is never merged
// again. It returns how many records were dropped. Collect visits every
// record; call it at intervals of minutes, not per write.
func (s *Store) Collect(now Millis, maxOffset, grace time.Duration) int {
	slack := Millis((maxOffset + grace) / time.Millisecond)
	horizon := now - Millis(MinRetention/time.Millisecond)
	n := 0
	for _, l := range s.authors {
		for i, r := range l.records {
			if r == nil || r.expiry()+slack >= now || r.Head().HLC.Millis() > horizon {
				continue
			}
			l.records[i] = nil
			s.unindex(l, r)
			n++
		}
		l.trim()
	}
	return n
}

// DeltaSince returns what peer lacks, within about budget bytes of encoded
// records (at least one record when anything is missing): first the
// revocations peer lacks, then everything else oldest first by HLC across
// authors, with the intervals that the records complete. Its cost follows
// the size of the difference, not of the state.
func (s *Store) DeltaSince(peer Context, budget int) Delta {
	var d Delta
	used := 0
	full := func(r Record) bool {
		return used > 0 && used+EncodedSizeHint(r) > budget
	}
	add := func(r Record) {
		d.Records = append(d.Records, r)
		used += EncodedSizeHint(r)
	}

	type cursor struct {
		l        *authorLog
		pc       *AuthorContext
		next, to uint64 // seqs still to walk for the interval: next..to
		from     uint64 // interval start (exclusive)
	}
	var cursors []*cursor
	sent := make(map[Dot]struct{})

	for _, l := range s.order {
		pc := peer.Find(l.author)
		if pc == nil {
			pc = &AuthorContext{Author: l.author}
		}
		// Revocations first: they may jump the queue, the dot cloud
		// absorbs them.
		i, _ := slices.BinarySearch(l.revocations, pc.Max+1)
		for _, seq := range l.revocations[i:] {
			if pc.Has(seq) {
				continue
			}
			r := l.get(seq)
			if full(r) {
				break
			}
			add(r)
			sent[r.Head().Dot()] = struct{}{}
		}
		// Out-of-order records of ours above our contiguous seq travel
		// on their own, after everything in order.
		if l.contiguous > pc.Max {
			cursors = append(cursors, &cursor{l: l, pc: pc, from: pc.Max, next: pc.Max + 1, to: l.contiguous})
		}
	}

	// Oldest first across authors: a heap of cursors keyed by the HLC of
	// the next record each would send.
	h := &cursorHeap{}
	peek := func(c *cursor) (Timestamp, bool) {
		for ; c.next <= c.to; c.next++ {
			if r := c.l.get(c.next); r != nil && !c.pc.Has(c.next) {
				if _, dup := sent[r.Head().Dot()]; !dup {
					return r.Head().HLC, true
				}
			}
		}
		return 0, false
	}
	finish := func(c *cursor, upTo uint64) {
		if upTo > c.from {
			d.Intervals = append(d.Intervals, Interval{Author: c.l.author, From: c.from, To: upTo})
		}
	}
	for _, c := range cursors {
		if t, ok := peek(c); ok {
			h.items = append(h.items, heapItem{t, c})
		} else {
			finish(c, c.to) // nothing to send, only collected gaps or dots peer has
		}
	}
	heap.Init(h)
	stopped := false
	for h.Len() > 0 {
		it := heap.Pop(h).(heapItem)
		c := it.c.(*cursor)
		if stopped {
			finish(c, c.next-1)
			continue
		}
		r := c.l.get(c.next)
		if full(r) {
			stopped = true
			finish(c, c.next-1)
			continue
		}
		add(r)
		c.next++
		if t, ok := peek(c); ok {
			heap.Push(h, heapItem{t, c})
		} else {
			finish(c, c.to)
		}
	}

	// Our own out-of-order dots, if the budget allows.
	if !stopped {
		for _, l := range s.order {
			pc := peer.Find(l.author)
			for _, seq := range l.sortedAbove() {
				if pc != nil && pc.Has(seq) {
					continue
				}
				r := l.get(seq)
				if r == nil {
					continue
				}
				if _, dup := sent[r.Head().Dot()]; dup {
					continue
				}
				if full(r) {
					return d
				}
				add(r)
			}
		}
	}
	return d
}

type heapItem struct {
	t Timestamp
	c any
}

type cursorHeap struct{ items []heapItem }

func (h *cursorHeap) Len() int           { return len(h.items) }
func (h *cursorHeap) Less(i, j int) bool { return h.items[i].t < h.items[j].t }
func (h *cursorHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *cursorHeap) Push(x any)         { h.items = append(h.items, x.(heapItem)) }
func (h *cursorHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}

// EncodedSizeHint is an upper bound on r's wire encoding, computed without
// encoding it.
func EncodedSizeHint(r Record) int {
	h := r.Head()
	n := 3 + 2 + len(h.Author.Name) + 9 + 9 + 9 + 2 + 64 // array, kind, name, inc, seq, hlc, sig
	switch r := r.(type) {
	case *SessionRecord:
		n += 18 + 3 + len(r.Identity) + 2 + len(r.Method) + 18
	case *CertRecord:
		n += 18 + 18 + 3 + len(r.Identity) + 34 + 27 + 18
	case *RevocationRecord:
		n += 2 + 18 + 18 + 2 + len(r.Reason) + 18
	case *IdentityRevocationRecord:
		n += 3 + len(r.Identity) + 9 + 2 + len(r.Reason) + 9
	case *SignerRecord:
		n += 2 + len(r.Controller) + 34 + 3 + len(r.Cert) + 9 + 1 + 9 + 3 + len(r.RootSig)
	}
	return n
}
