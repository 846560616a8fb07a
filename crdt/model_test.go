package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// This file checks the Store against a naive reference model: a dumb
// function of the set of records, recomputing every answer by scanning
// all of them, in the style of etcd-io/raft's quorum/quick_test.go.

// model is the reference: the set of records, nothing incremental.
type model struct {
	recs map[Dot]Record
	memo []Record // liveRecords, computed once: the set never changes
}

func newModel(recs []Record) *model {
	m := &model{recs: make(map[Dot]Record)}
	for _, r := range recs {
		m.recs[r.Head().Dot()] = r
	}
	return m
}

// revokedAt is the earliest RevokedAt of the root revocations of name.
func (m *model) revokedAt(name string) (Millis, bool) {
	var at Millis
	found := false
	for _, r := range m.recs {
		if s, ok := r.(*SignerRecord); ok && s.Revoked && s.Controller == name {
			if !found || s.RevokedAt < at {
				at, found = s.RevokedAt, true
			}
		}
	}
	return at, found
}

// live is whether r counts. A root revocation always does. Of a
// root-revoked controller's other records, when another controller's
// revocation of it carries a cut, only those some such cut covers count;
// of those (or of all, with no such cut), revocations of any kind count
// and the rest only when stamped no later than the revocation.
func (m *model) live(r Record) bool {
	if s, ok := r.(*SignerRecord); ok && s.Revoked {
		return true
	}
	h := r.Head()
	at, ok := m.revokedAt(h.Author.Name)
	if !ok {
		return true
	}
	cut, covered := false, false
	for _, o := range m.recs {
		s, ok := o.(*SignerRecord)
		if !ok || !s.Revoked || s.Controller != h.Author.Name || s.Cut == nil || s.Author.Name == s.Controller {
			continue
		}
		cut = true
		for _, c := range s.Cut {
			covered = covered || c.Author == h.Author && c.Has(h.Seq)
		}
	}
	if cut && !covered {
		return false
	}
	switch r.(type) {
	case *RevocationRecord, *IdentityRevocationRecord:
		return true
	}
	return h.HLC.Millis() <= at
}

func (m *model) liveRecords() []Record {
	if m.memo != nil {
		return m.memo
	}
	out := []Record{}
	for _, r := range m.recs {
		if m.live(r) {
			out = append(out, r)
		}
	}
	m.memo = out
	return out
}

func (m *model) digest() uint64 {
	var d uint64
	for _, r := range m.liveRecords() {
		d ^= recordHash(r)
	}
	return d
}

// context is every dot of every record, dropped or not.
func (m *model) context() Context {
	seqs := map[Author][]uint64{}
	for d := range m.recs {
		seqs[d.Author] = append(seqs[d.Author], d.Seq)
	}
	var c Context
	for a, ss := range seqs {
		slices.Sort(ss)
		e := AuthorContext{Author: a}
		for _, s := range ss {
			if s == e.Max+1 && len(e.Above) == 0 {
				e.Max = s
			} else {
				e.Above = append(e.Above, s)
			}
		}
		// Dots above that became contiguous.
		for len(e.Above) > 0 && e.Above[0] == e.Max+1 {
			e.Max, e.Above = e.Above[0], e.Above[1:]
		}
		c = append(c, e)
	}
	slices.SortFunc(c, func(x, y AuthorContext) int {
		if x.Author.Name != y.Author.Name {
			if x.Author.Name < y.Author.Name {
				return -1
			}
			return 1
		}
		switch {
		case x.Author.Incarnation < y.Author.Incarnation:
			return -1
		case x.Author.Incarnation > y.Author.Incarnation:
			return 1
		}
		return 0
	})
	return c
}

// first returns the earliest live record matching keep, by (HLC, author
// name, incarnation, seq).
func first[R Record](m *model, keep func(R) bool) R {
	var best R
	found := false
	for _, r := range m.liveRecords() {
		x, ok := r.(R)
		if !ok || !keep(x) {
			continue
		}
		if !found || earlier(x, best) {
			best, found = x, true
		}
	}
	return best
}

func earlier(a, b Record) bool {
	ha, hb := a.Head(), b.Head()
	if ha.HLC != hb.HLC {
		return ha.HLC < hb.HLC
	}
	if ha.Author.Name != hb.Author.Name {
		return ha.Author.Name < hb.Author.Name
	}
	if ha.Author.Incarnation != hb.Author.Incarnation {
		return ha.Author.Incarnation < hb.Author.Incarnation
	}
	return ha.Seq < hb.Seq
}

func (m *model) cert(sn Serial) *CertRecord {
	return first(m, func(c *CertRecord) bool { return c.Serial == sn })
}

func (m *model) session(id SessionID) *SessionRecord {
	return first(m, func(s *SessionRecord) bool { return s.ID == id })
}

// sessionExpires is the latest Expires over the session's records held.
func (m *model) sessionExpires(id SessionID) Millis {
	end := minMillis
	for _, r := range m.liveRecords() {
		if s, ok := r.(*SessionRecord); ok && s.ID == id {
			end = max(end, s.Expires)
		}
	}
	return end
}

func (m *model) anyLive(keep func(Record) bool) bool {
	for _, r := range m.liveRecords() {
		if keep(r) {
			return true
		}
	}
	return false
}

func (m *model) identityRevokedBefore(identity string) (Millis, bool) {
	var at Millis
	found := false
	for _, r := range m.liveRecords() {
		if ir, ok := r.(*IdentityRevocationRecord); ok && ir.Identity == identity {
			if !found || ir.RevokedBefore > at {
				at, found = ir.RevokedBefore, true
			}
		}
	}
	return at, found
}

func (m *model) supersededAt(sn Serial) (Millis, bool) {
	var at Millis
	found := false
	for _, r := range m.liveRecords() {
		if c, ok := r.(*CertRecord); ok && c.Supersedes == sn {
			if !found || c.SupersedeAt < at {
				at, found = c.SupersedeAt, true
			}
		}
	}
	return at, found
}

func (m *model) revoked(f CertFacts, cert *CertRecord, now Millis) Verdict {
	if m.anyLive(func(r Record) bool {
		rv, ok := r.(*RevocationRecord)
		return ok && rv.Target == RevokeSerial && rv.Serial == f.Serial
	}) {
		return SerialRevoked
	}
	if m.anyLive(func(r Record) bool {
		rv, ok := r.(*RevocationRecord)
		return ok && rv.Target == RevokeSession && rv.Session == f.Session
	}) {
		return SessionRevoked
	}
	if _, ok := m.revokedAt(f.Issuer); ok {
		return IssuerRevoked
	}
	sess := m.session(f.Session)
	if sess != nil && now >= m.sessionExpires(f.Session) {
		return SessionExpired
	}
	if before, ok := m.identityRevokedBefore(f.Identity); ok {
		if sess == nil && (cert == nil || !cert.Supersedes.IsZero()) {
			return IdentityRevoked
		}
		var created Millis
		if sess != nil {
			created = sess.Created
		} else {
			created = cert.HLC.Millis()
		}
		if created < before {
			return IdentityRevoked
		}
	}
	return Admit
}

func (m *model) admission(f CertFacts, now Millis, strict bool) Verdict {
	switch {
	case now < f.NotBefore:
		return NotYetValid
	case now >= f.NotAfter:
		return CertExpired
	}
	cert := m.cert(f.Serial)
	if cert != nil && (cert.Session != f.Session || cert.Identity != f.Identity || cert.Author.Name != f.Issuer ||
		f.Fingerprint != [32]byte{} && f.Fingerprint != cert.Fingerprint) {
		return MismatchedFacts
	}
	if cert == nil && strict {
		return UnknownCert
	}
	if v := m.revoked(f, cert, now); v != Admit {
		return v
	}
	if at, ok := m.supersededAt(f.Serial); ok && now >= at {
		return Superseded
	}
	if strict && m.session(f.Session) == nil {
		return UnknownSession
	}
	return Admit
}

func (m *model) live_(f CertFacts, now Millis) Verdict { return m.revoked(f, m.cert(f.Serial), now) }

func (m *model) signers(controller string) []*SignerRecord {
	byKey := map[[32]byte]*SignerRecord{}
	for _, r := range m.liveRecords() {
		if s, ok := r.(*SignerRecord); ok && !s.Revoked && s.Controller == controller {
			if old := byKey[s.KeyID]; old == nil || earlier(s, old) {
				byKey[s.KeyID] = s
			}
		}
	}
	var out []*SignerRecord
	for _, s := range byKey {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *SignerRecord) int { return bytes.Compare(a.KeyID[:], b.KeyID[:]) })
	return out
}

// A world is what several controllers wrote: records of every kind about a
// few sessions, serials and identities, so that they collide — rotations,
// revocations of serials and sessions that may come before or after their
// targets or never, identity revocations, signer keys, root revocations.
type world struct {
	recs    []Record
	serials []Serial
	now     []Millis // instants to query at
}

var (
	worldAuthors     = []Author{ctrlA, ctrlA2, ctrlB, ctrlC}
	worldIdentities  = []string{"alice", "bob", "carol"}
	worldControllers = []string{"ctrl-a", "ctrl-b", "ctrl-c"}
)

const (
	worldSessions = 6
	worldSerials  = 10
)

func identityOf(session int) string { return worldIdentities[session%len(worldIdentities)] }

func genWorld(t *rapid.T, maxPerAuthor int) *world {
	w := &world{}
	for i := 1; i <= worldSerials; i++ {
		w.serials = append(w.serials, serial(i))
	}
	for _, a := range worldAuthors {
		n := rapid.IntRange(0, maxPerAuthor).Draw(t, "records of "+a.String())
		at := t0 + Millis(rapid.IntRange(0, 60).Draw(t, "start"))*minute
		for seq := uint64(1); seq <= uint64(n); seq++ {
			at += Millis(rapid.IntRange(0, 40).Draw(t, "step")) * minute
			w.recs = append(w.recs, genRecord(t, a, seq, at))
		}
	}
	for i := 0; i < 6; i++ {
		w.now = append(w.now, t0+Millis(rapid.IntRange(-30, 24*60).Draw(t, "now"))*minute)
	}
	return w
}

func genRecord(t *rapid.T, a Author, seq uint64, at Millis) Record {
	pickSession := func() int { return rapid.IntRange(1, worldSessions).Draw(t, "session") }
	pickSerial := func() int { return rapid.IntRange(1, worldSerials).Draw(t, "serial") }
	until := func() Millis {
		if rapid.Bool().Draw(t, "until unset") {
			return 0
		}
		return at + 30*hour
	}
	h := head(a, seq, at)
	switch k := rapid.IntRange(0, 129).Draw(t, "kind"); {
	case k >= 100:
		return genAccessRecord(t, h)
	case k < 25:
		id := pickSession()
		return &SessionRecord{Header: h, ID: sid(id), Identity: identityOf(id), Method: "oidc",
			Created: at, Expires: at + Millis(rapid.IntRange(1, 10).Draw(t, "session hours"))*hour,
			Roles: genRoles(t, "session roles")}
	case k < 55:
		id := pickSession()
		ident := identityOf(id)
		if rapid.IntRange(0, 9).Draw(t, "mismatch") == 0 {
			ident = identityOf(id + 1)
		}
		c := &CertRecord{Header: h, Serial: serial(pickSerial()), Session: sid(id), Identity: ident,
			NotBefore: at - minute, NotAfter: at + Millis(rapid.IntRange(30, 240).Draw(t, "cert minutes"))*minute}
		if rapid.IntRange(0, 2).Draw(t, "rotation") == 0 {
			if old := serial(pickSerial()); old != c.Serial {
				c.Supersedes, c.SupersedeAt = old, at+Millis(rapid.IntRange(0, 10).Draw(t, "grace minutes"))*minute
			}
		}
		return c
	case k < 67:
		return &RevocationRecord{Header: h, Target: RevokeSerial, Serial: serial(pickSerial()), At: at, Until: until()}
	case k < 77:
		return &RevocationRecord{Header: h, Target: RevokeSession, Session: sid(pickSession()), At: at, Until: until()}
	case k < 85:
		return &IdentityRevocationRecord{Header: h, Identity: rapid.SampledFrom(worldIdentities).Draw(t, "identity"),
			RevokedBefore: at + Millis(rapid.IntRange(-120, 60).Draw(t, "revoked before"))*minute, Until: until()}
	case k < 93:
		return &SignerRecord{Header: h, Controller: a.Name, KeyID: [32]byte{byte(rapid.IntRange(1, 3).Draw(t, "key"))},
			Cert: []byte{1}, NotAfter: at + 48*hour}
	default:
		ctrl := rapid.SampledFrom(worldControllers).Draw(t, "revoked controller")
		rev := &SignerRecord{Header: h, Controller: ctrl, Revoked: true,
			RevokedAt: at + Millis(rapid.IntRange(-180, 60).Draw(t, "revoked at"))*minute, RootSig: []byte("root")}
		if rapid.Bool().Draw(t, "with a cut") {
			// What the author held of ctrl: per incarnation, a contiguous
			// part and maybe a dot above it.
			rev.Cut = []AuthorContext{}
			for _, inc := range []uint64{1, 2} {
				if rapid.Bool().Draw(t, "incarnation in the cut") {
					c := AuthorContext{Author: Author{Name: ctrl, Incarnation: inc}, Max: uint64(rapid.IntRange(0, 6).Draw(t, "cut max"))}
					if above := uint64(rapid.IntRange(0, 3).Draw(t, "cut above")); above > 0 {
						c.Above = []uint64{c.Max + 1 + above}
					}
					rev.Cut = append(rev.Cut, c)
				}
			}
		}
		return rev
	}
}

// queries are the certificates a router might be shown: every cert record
// written (matching the replicated one or not), and a made-up one per
// serial that nobody wrote.
func (w *world) queries() []CertFacts {
	var qs []CertFacts
	for _, r := range w.recs {
		if c, ok := r.(*CertRecord); ok {
			qs = append(qs, facts(c))
		}
	}
	for i, sn := range w.serials {
		qs = append(qs, CertFacts{Serial: sn, Session: sid(i%worldSessions + 1), Identity: identityOf(i%worldSessions + 1),
			Issuer: worldControllers[i%len(worldControllers)], NotBefore: t0, NotAfter: t0 + 20*hour})
	}
	return qs
}

// assertMatchesModel compares every answer of s with the model's.
func assertMatchesModel(t *rapid.T, name string, s *Store, m *model, w *world) {
	if got, want := s.Digest(), m.digest(); got != want {
		t.Fatalf("%s: digest %x, model %x", name, got, want)
	}
	if got, want := s.Len(), len(m.liveRecords()); got != want {
		t.Fatalf("%s: Len %d, model %d", name, got, want)
	}
	if diff := cmp.Diff(m.context(), s.Context(), equateEmpty); diff != "" {
		t.Fatalf("%s: context (-model +store):\n%s", name, diff)
	}
	for _, f := range w.queries() {
		for _, now := range w.now {
			for _, strict := range []bool{false, true} {
				if got, want := s.Admission(f, now, strict), m.admission(f, now, strict); got != want {
					t.Fatalf("%s: Admission(%+v, %v, strict %v) = %v, model %v", name, f, now, strict, got, want)
				}
			}
			if got, want := s.Live(f, now), m.live_(f, now); got != want {
				t.Fatalf("%s: Live(%+v, %v) = %v, model %v", name, f, now, got, want)
			}
		}
	}
	for i := 1; i <= worldSessions; i++ {
		got, gotOK := s.SessionExpires(sid(i))
		want, wantOK := m.sessionExpires(sid(i)), m.session(sid(i)) != nil
		if !wantOK {
			want = 0
		}
		if got != want || gotOK != wantOK {
			t.Fatalf("%s: SessionExpires(%d) = %v %v, model %v %v", name, i, got, gotOK, want, wantOK)
		}
	}
	for _, c := range worldControllers {
		gotAt, gotOK := s.SignerRevoked(c)
		wantAt, wantOK := m.revokedAt(c)
		if gotAt != wantAt || gotOK != wantOK {
			t.Fatalf("%s: SignerRevoked(%s) = %v %v, model %v %v", name, c, gotAt, gotOK, wantAt, wantOK)
		}
		if diff := cmp.Diff(m.signers(c), s.Signers(c), equateEmpty); diff != "" {
			t.Fatalf("%s: Signers(%s) (-model +store):\n%s", name, c, diff)
		}
	}
	for _, id := range worldIdentities {
		gotAt, gotOK := s.IdentityRevokedBefore(id)
		wantAt, wantOK := m.identityRevokedBefore(id)
		if gotAt != wantAt || gotOK != wantOK {
			t.Fatalf("%s: IdentityRevokedBefore(%s) = %v %v, model %v %v", name, id, gotAt, gotOK, wantAt, wantOK)
		}
	}
	for i := 1; i <= worldSessions; i++ {
		got, _ := s.Session(sid(i))
		if want := m.session(sid(i)); !cmp.Equal(got, want) {
			t.Fatalf("%s: Session(%d) = %v, model %v", name, i, got, want)
		}
	}
	for _, sn := range w.serials {
		got, _ := s.Cert(sn)
		if want := m.cert(sn); !cmp.Equal(got, want) {
			t.Fatalf("%s: Cert(%v) = %v, model %v", name, sn, got, want)
		}
	}
	assertAccessMatchesModel(t, name, s, m)
}

func merge(t *rapid.T, s *Store, r Record) {
	if _, err := s.MergeVerified(r); err != nil && !errors.Is(err, ErrAuthorRevoked) {
		t.Fatalf("merge %v: %v", r.Head().Dot(), err)
	}
}

// exchange sends one delta from src to dst.
func exchange(t *rapid.T, src, dst *Store, budget int, now Millis) int {
	d := src.DeltaSince(dst.Context(), budget)
	for _, r := range d.Records {
		merge(t, dst, r)
	}
	for _, iv := range d.Intervals {
		dst.CoverInterval(iv, now)
	}
	return len(d.Records)
}

// quiesce runs anti-entropy between every ordered pair until a full round
// moves nothing.
func quiesce(t *rapid.T, stores []*Store, budget int, now Millis) {
	for round := 0; ; round++ {
		if round > 10000 {
			t.Fatalf("no quiescence after %d rounds", round)
		}
		moved := 0
		for i := range stores {
			for j := range stores {
				if i != j {
					moved += exchange(t, stores[i], stores[j], budget, now)
				}
			}
		}
		if moved == 0 {
			return
		}
	}
}

// Any interleaving, duplication and reordering of the same records, given
// directly or through deltas of any size between any pairs, ends with
// every store answering like the model of the union.
func TestPropertyStoresConvergeToTheModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 12)
		m := newModel(w.recs)
		nStores := rapid.IntRange(1, 4).Draw(t, "stores")
		stores := make([]*Store, nStores)
		for i := range stores {
			stores[i] = NewStore()
		}
		// Each record goes directly to one store at least, maybe more,
		// maybe twice; the queues are shuffled.
		queues := make([][]Record, nStores)
		for _, r := range w.recs {
			home := rapid.IntRange(0, nStores-1).Draw(t, "home")
			queues[home] = append(queues[home], r)
			for i := range queues {
				if rapid.IntRange(0, 3).Draw(t, "copy") == 0 {
					queues[i] = append(queues[i], r)
				}
			}
		}
		for i := range queues {
			queues[i] = rapid.Permutation(queues[i]).Draw(t, "queue order")
		}
		now := t0 + Millis(rapid.IntRange(0, 48*60).Draw(t, "cover now"))*minute
		// Direct deliveries interleaved with partial anti-entropy.
		for steps := 0; steps < 1000; steps++ {
			pending := 0
			for _, q := range queues {
				pending += len(q)
			}
			if pending == 0 {
				break
			}
			i := rapid.IntRange(0, nStores-1).Draw(t, "store")
			if rapid.IntRange(0, 3).Draw(t, "anti-entropy") == 0 && nStores > 1 {
				j := rapid.IntRange(0, nStores-1).Draw(t, "peer")
				if i != j {
					exchange(t, stores[i], stores[j], rapid.IntRange(1, 2000).Draw(t, "budget"), now)
				}
				continue
			}
			if len(queues[i]) > 0 {
				merge(t, stores[i], queues[i][0])
				queues[i] = queues[i][1:]
			}
		}
		for i, q := range queues {
			for _, r := range q {
				merge(t, stores[i], r)
			}
		}
		quiesce(t, stores, rapid.IntRange(1, 1500).Draw(t, "final budget"), now)
		var snap0 []byte
		for i, s := range stores {
			assertMatchesModel(t, fmt.Sprintf("store %d", i), s, m, w)
			snap := snapshotBytes(t, s)
			if i == 0 {
				snap0 = snap
			} else if !bytes.Equal(snap, snap0) {
				t.Fatalf("store %d: snapshot differs from store 0's", i)
			}
		}
		// A snapshot restores to the same answers.
		decoded, err := DecodeSnapshot(bytes.NewReader(snap0))
		if err != nil {
			t.Fatal(err)
		}
		r := NewStore()
		if err := r.RestoreVerified(decoded); err != nil {
			t.Fatal(err)
		}
		assertMatchesModel(t, "restored", r, m, w)
	})
}

// Two stores holding any two subsets of the records, exchanging deltas of
// any budget to quiescence, both end with the union: DeltaSince leaves
// nothing behind, and its intervals never cover what was not sent.
func TestPropertyDeltaExchangeReachesTheUnion(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := genWorld(t, 20)
		a, b := NewStore(), NewStore()
		var inA, inB []Record
		for _, r := range w.recs {
			switch rapid.IntRange(0, 2).Draw(t, "where") {
			case 0:
				inA = append(inA, r)
			case 1:
				inB = append(inB, r)
			default:
				inA, inB = append(inA, r), append(inB, r)
			}
		}
		for _, r := range rapid.Permutation(inA).Draw(t, "order a") {
			merge(t, a, r)
		}
		for _, r := range rapid.Permutation(inB).Draw(t, "order b") {
			merge(t, b, r)
		}
		budget := rapid.IntRange(1, 3000).Draw(t, "budget")
		now := t0 + Millis(rapid.IntRange(0, 48*60).Draw(t, "cover now"))*minute
		for i := 0; ; i++ {
			if i > 10000 {
				t.Fatal("no quiescence")
			}
			if exchange(t, a, b, budget, now)+exchange(t, b, a, budget, now) == 0 {
				break
			}
		}
		m := newModel(w.recs)
		assertMatchesModel(t, "a", a, m, w)
		assertMatchesModel(t, "b", b, m, w)
		if a.Missing(b.Context()) != 0 || b.Missing(a.Context()) != 0 {
			t.Fatal("Missing after quiescence")
		}
	})
}
