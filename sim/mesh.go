package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/issuer/clockgate"
	"github.com/certmesh/certmesh/router"
)

// The "mesh" strategy: certmesh's own protocol. Every simulated node runs
// the real crdt.Store and the real gossip.Core; routers answer admissions
// with the production router's decision (router.Decide) and pull on miss
// through the core.
// What the simulator shares among nodes, as records are immutable once
// merged: one immutable membership view (each node answers Alive from its
// own Env), and each record object, verified once.

func init() { register("mesh", newMeshStrategy) }

// simEpoch is virtual time zero on the wall clock the cores see.
var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	meshCertTTL       = time.Hour
	meshSessionTTL    = 24 * time.Hour
	meshRotationGrace = 5 * time.Minute
	meshTimerTick     = 1
)

type meshStrategy struct {
	cl   *Cluster
	view *clusterView

	// written[a][seq-1] is the record controller a wrote with that seq, and
	// the write it belongs to: the simulator's stand-in for a signature
	// check (a record is genuine if it is the very object written), done in
	// O(1) without hashing.
	written map[string]*authorWrites
	// eventDots lists the dots of each write's records.
	eventDots [][]crdt.Dot
	// certs holds what a router reads from each workload certificate.
	certs       map[CertID]crdt.CertFacts
	sessionCert map[SessionID]crdt.Serial // the session's latest certificate
	// nSessions and nCerts are how many the workload creates: every store
	// reserves room for them.
	nSessions, nCerts int
	// policyGroups is how many access groups the workload's policy changes
	// use (policy.go), 0 without them; seedRecs, what every store holds
	// from the start then.
	policyGroups int
	seedOnce     sync.Once
	seedRecs     []crdt.Record
	// aheadMerges counts records merged at a node while their HLC was more
	// than the max offset ahead of its wall clock; the core holds those,
	// so it stays 0 (tests check it).
	aheadMerges atomic.Int64
}

// Parallel implements parallelStrategy: nodes share only the view, the
// verifier's index of written records and the certificates' facts, all
// written by controllers' Write, which runs between windows.
func (s *meshStrategy) Parallel() bool { return true }

// meshMaxOffset is the cores' max clock offset (gossip.Config.MaxOffset).
var meshMaxOffset = gossip.DefaultConfig().MaxOffset

func newMeshStrategy(c *Cluster) (Strategy, error) {
	s := &meshStrategy{
		cl:          c,
		view:        newClusterView(c),
		written:     make(map[string]*authorWrites),
		certs:       make(map[CertID]crdt.CertFacts),
		sessionCert: make(map[SessionID]crdt.Serial),
	}
	s.policyGroups = policyGroups(c.Topology.Workload, c.Topology.Duration)
	if w := c.Topology.Workload; w.Rate > 0 {
		writes := w.Rate * c.Topology.Duration.Seconds()
		all := w.Issue + w.Rotate + w.Revoke + w.Policy
		s.nSessions = int(writes * w.Issue / all)
		s.nCerts = int(writes * (w.Issue + w.Rotate) / all)
	}
	return s, nil
}

// Verify implements crdt.Verifier for completeness; cores use VerifyShared.
func (s *meshStrategy) Verify(r crdt.Record, _ []byte) error { return s.VerifyShared(r) }

type authorWrites struct {
	author crdt.Author
	recs   []crdt.Record
	events []EventID
}

// lookup returns the write of record r's author and seq, if r is the
// record written there.
func (s *meshStrategy) lookup(r crdt.Record) (EventID, bool) {
	h := r.Head()
	aw := s.written[h.Author.Name]
	if aw == nil || aw.author != h.Author || h.Seq == 0 || h.Seq > uint64(len(aw.recs)) || aw.recs[h.Seq-1] != r {
		return 0, false
	}
	return aw.events[h.Seq-1], true
}

// VerifyShared implements gossip.SharedVerifier.
func (s *meshStrategy) VerifyShared(r crdt.Record) error {
	if _, ok := s.lookup(r); !ok {
		return errors.New("sim: record not written by a simulated controller")
	}
	return nil
}

func (s *meshStrategy) NewNode(env *Env) Node {
	info := env.Info()
	n := &meshNode{s: s, env: env, info: info, store: crdt.NewStore(), waiting: make(map[crdt.Serial][]waitingConnect),
		skew: s.cl.Topology.ClockOffset(info.Name)}
	n.store.SetInterning(false) // records are shared objects: nothing to save
	n.store.Reserve(s.nSessions, s.nCerts)
	for _, r := range s.seed() {
		if _, err := n.store.MergeVerified(r); err != nil {
			panic(fmt.Sprintf("sim: seed: %v", err))
		}
	}
	if info.Role == RoleController {
		n.author = crdt.Author{Name: info.Name, Incarnation: uint64(info.ID) + 1}
		return &meshController{n}
	}
	return &meshRouter{n}
}

// clusterView is the membership every simulated core shares; nodeView adds
// the node's own belief about who is alive.
type clusterView struct {
	// faultless: the topology schedules no crash or partition, so every
	// node is up for the whole run and Alive needs no lookup.
	faultless   bool
	regions     []string
	byRegion    map[string][]string
	members     map[string]gossip.Member
	ids         map[string]NodeID
	controllers []string
}

func newClusterView(c *Cluster) *clusterView {
	v := &clusterView{byRegion: make(map[string][]string), members: make(map[string]gossip.Member), ids: make(map[string]NodeID),
		faultless: len(c.Topology.Faults) == 0}
	for _, n := range c.Nodes {
		region := c.Topology.Regions[n.Region].Name
		role := gossip.RoleRouter
		if n.Role == RoleController {
			role = gossip.RoleController
			v.controllers = append(v.controllers, n.Name)
		}
		v.members[n.Name] = gossip.Member{Name: n.Name, Role: role, Region: region}
		v.ids[n.Name] = n.ID
		v.byRegion[region] = append(v.byRegion[region], n.Name)
	}
	for r, names := range v.byRegion {
		sort.Strings(names)
		v.regions = append(v.regions, r)
	}
	sort.Strings(v.regions)
	sort.Strings(v.controllers)
	return v
}

type nodeView struct {
	*clusterView
	env *Env
}

func (v nodeView) Regions() []string                        { return v.regions }
func (v nodeView) Region(r string) []string                 { return v.byRegion[r] }
func (v nodeView) Member(name string) (gossip.Member, bool) { m, ok := v.members[name]; return m, ok }
func (v nodeView) Controllers() []string                    { return v.controllers }
func (v nodeView) Alive(name string) bool {
	if v.faultless {
		return true
	}
	id, ok := v.ids[name]
	return ok && v.env.Up(id)
}

// meshNode is the part common to controllers and routers.
type meshNode struct {
	s     *meshStrategy
	env   *Env
	info  NodeInfo
	store *crdt.Store // persisted: survives a crash (bbolt, or the router's snapshot)
	core  *gossip.Core
	armed time.Duration // deadline of the latest timer armed, 0 if none
	skew  time.Duration // the node's wall clock reads virtual time + skew (topology clocks)

	author    crdt.Author // controllers
	seq       uint64      // controllers: persisted with the records
	startedAt time.Time   // controllers: the wall clock when the process started

	waiting map[crdt.Serial][]waitingConnect // routers: connects waiting for a pull

	cpu *cpuQueue // the node's CPU when the model charges for it, else nil (cpu.go)
}

type waitingConnect struct {
	id    int32
	facts crdt.CertFacts
}

type meshController struct{ *meshNode }
type meshRouter struct{ *meshNode }

// wall is the node's wall clock at virtual time now: what its core (HLC,
// SentAt, hold decisions) and its admission checks see.
func (n *meshNode) wall(now time.Duration) time.Time { return simEpoch.Add(now + n.skew) }

func (n *meshNode) newCore() {
	cfg := n.s.cl.Params.Mesh.gossipConfig(gossip.DefaultConfig())
	if e := n.s.cl.MeshEagerTrees; e > 0 {
		cfg.EagerTrees = e
	}
	m := n.s.view.members[n.info.Name]
	cfg.Name, cfg.Role, cfg.Region = m.Name, m.Role, m.Region
	cfg.View = nodeView{n.s.view, n.env}
	seed := n.env.Rand().Uint64()
	core, err := gossip.NewCore(cfg, n.store, n.s, rand.New(rand.NewPCG(seed, uint64(n.info.ID))))
	if err != nil {
		panic(fmt.Sprintf("sim: mesh core for %s: %v", n.info.Name, err)) // a bug in the defaults
	}
	n.core = core
}

func (n *meshNode) Start(now time.Duration) {
	n.startedAt = n.wall(now)
	n.newCore()
	n.cpu = newCPUQueue(n.s.cl.Params.Mesh.CPU)
	n.join(now)
	n.core.Tick(n.wall(now))
	n.flush(now)
}

func (n *meshNode) Restart(now time.Duration) {
	// The store was persisted; everything else of the process is gone.
	n.armed = 0
	n.waiting = make(map[crdt.Serial][]waitingConnect)
	n.startedAt = n.wall(now)
	pending := n.cpu.writes()
	n.cpu = newCPUQueue(n.s.cl.Params.Mesh.CPU)
	n.newCore()
	n.recommit(now, pending)
	n.join(now)
	n.core.Tick(n.wall(now))
	n.flush(now)
}

// join models memberlist's join, which a production node makes as it
// starts: a push-pull with a seed, here a live member of the node's own
// region (of another region if it has none), that carries the node's
// causal context, and tells the seed that the node is up, so that the seed
// starts an exchange with it (Mesh.nodeAlive). That exchange's request is
// proven, and carries the node's first clock sample: the node has it, and
// what it lacks, a round trip after it starts.
func (n *meshNode) join(now time.Duration) {
	v := n.s.view
	if n.syncWithOneOf(now, v.byRegion[v.members[n.info.Name].Region]) {
		return
	}
	for _, r := range v.regions {
		if n.syncWithOneOf(now, v.byRegion[r]) {
			return
		}
	}
}

// syncWithOneOf starts an exchange with the first live member of names
// other than this node, from a random position on, and tells it the node
// joined; false if there is none.
func (n *meshNode) syncWithOneOf(now time.Duration, names []string) bool {
	if len(names) == 0 {
		return false
	}
	start := n.env.Rand().IntN(len(names))
	for i := range names {
		name := names[(start+i)%len(names)]
		if name != n.info.Name && n.core.View().Alive(name) {
			n.core.SyncWith(n.wall(now), name)
			// Membership, not state: memberlist's push-pull, never lost.
			n.env.Send(n.s.view.ids[name], Message{Payload: joined{}, Reliable: true})
			return true
		}
	}
	return false
}

// joined is what a seed learns from a node's join push-pull: that the node
// is up. A production node starts an exchange with every member it sees
// come up (Mesh.nodeAlive); the model's seed does.
type joined struct{}

// Receive hands a message to the core. The simulator has no impostors:
// a message's sender is proven wherever production proves it
// (gossip.NeedsProof), with the role its certificate would prove.
func (n *meshNode) Receive(now time.Duration, from NodeID, m Message) {
	name := n.s.cl.Nodes[from].Name
	switch p := m.Payload.(type) {
	case joined:
		n.core.SyncWith(n.wall(now), name)
	case *gossip.Message:
		if n.cpu != nil && n.queueMessage(now, from, p) {
			return // stepped once the CPU has verified it (cpu.go)
		}
		n.step(now, name, p)
		return
	}
	n.flush(now)
}

// step hands a received message to the core.
func (n *meshNode) step(now time.Duration, name string, p *gossip.Message) {
	s := gossip.Sender{Name: name}
	if gossip.NeedsProof(p) {
		s.Proven, s.Role = true, n.s.view.members[name].Role
	}
	n.core.Step(n.wall(now), s, p)
	n.flush(now)
}

func (n *meshNode) Timer(now time.Duration, t Timer) {
	if t.Kind == meshTimerCPU {
		n.cpuDone(now)
		return
	}
	if time.Duration(t.Arg) == n.armed {
		n.armed = 0
	}
	if dl := n.core.NextDeadline(); !dl.IsZero() && !dl.After(n.wall(now)) {
		n.core.Tick(n.wall(now))
	}
	n.flush(now)
}

func (n *meshNode) MembershipChanged(now time.Duration) {}

func (n *meshNode) Digest() uint64 { return n.store.Digest() }

// flush sends what the core has to send, reports applied writes, answers
// pulls, and arms a timer for the core's next deadline.
func (n *meshNode) flush(now time.Duration) {
	for n.core.HasReady() {
		rd := n.core.Ready()
		for _, o := range rd.Messages {
			to, ok := n.s.view.ids[o.To]
			if !ok {
				continue
			}
			size, reliable := o.Msg.Size(), o.Reliable
			if gossip.NeedsProof(o.Msg) {
				size += proofBytes(n.info, o.To)
				reliable = reliable || size > n.core.Config().PacketBudget
			}
			n.env.Send(to, Message{Payload: o.Msg, Size: int32(size), Kind: uint16(o.Msg.Type),
				State: true, Reliable: reliable})
		}
		for _, r := range rd.Applied {
			n.checkNotAhead(now, r)
			n.noteApplied(r)
		}
		for _, w := range rd.Wants {
			n.resolvePull(now, w.Serial)
		}
	}
	dl := n.core.NextDeadline()
	if dl.IsZero() {
		return
	}
	at := dl.Sub(simEpoch) - n.skew
	if at < now {
		at = now
	}
	if n.armed == 0 || at < n.armed {
		n.armed = at
		n.env.After(at-now, Timer{Kind: meshTimerTick, Arg: int64(at)})
	}
}

// checkNotAhead counts a record merged while its HLC was more than the max
// offset ahead of this node's wall clock: the core must hold such a record
// until local time catches up (package crdt, hlc.go), so
// that a controller whose clock runs far ahead cannot make its writes win.
func (n *meshNode) checkNotAhead(now time.Duration, r crdt.Record) {
	ahead := time.Duration(r.Head().HLC.Millis()-crdt.MillisOf(n.wall(now))) * time.Millisecond
	if ahead > meshMaxOffset {
		n.s.aheadMerges.Add(1)
	}
}

// noteApplied reports a write as applied here once all its records are.
func (n *meshNode) noteApplied(r crdt.Record) {
	ev, ok := n.s.lookup(r)
	if !ok {
		return
	}
	for _, d := range n.s.eventDots[ev] {
		if !n.store.Has(d) {
			return
		}
	}
	n.env.Applied(ev)
}

// Write implements Controller: the write is local, durable and
// acknowledged at once; dissemination follows.
func (c *meshController) Write(now time.Duration, w *Write) {
	t := c.wall(now)
	if c.clockSkewed(t) {
		c.env.Refused(w.ID)
		return
	}
	prev, hasPrev := c.s.sessionCert[w.Session]
	recs, facts := WriteRecords(w, t, c.info.Name, prev, hasPrev)
	if w.Kind == WriteIssue || w.Kind == WriteRotate {
		c.s.sessionCert[w.Session] = facts.Serial
		c.s.certs[w.Cert] = facts
	}
	aw := c.s.written[c.author.Name]
	if aw == nil {
		aw = &authorWrites{author: c.author}
		c.s.written[c.author.Name] = aw
	}
	var dots []crdt.Dot
	c.seq = crdt.Stamp(recs, c.author, c.seq+1, func() crdt.Timestamp { return c.core.Now(t) }) - 1
	for _, r := range recs {
		aw.recs = append(aw.recs, r)
		aw.events = append(aw.events, w.ID)
		dots = append(dots, r.Head().Dot())
	}
	for int(w.ID) >= len(c.s.eventDots) {
		c.s.eventDots = append(c.s.eventDots, nil)
	}
	c.s.eventDots[w.ID] = dots
	if c.cpu != nil && c.cpu.signs() {
		c.queueWrite(now, w, recs) // signed, then committed, once the CPU gets to it (cpu.go)
		return
	}
	c.commit(now, w, recs)
}

// commit publishes a write's signed records and acknowledges it.
func (c *meshController) commit(now time.Duration, w *Write, recs []crdt.Record) {
	if err := c.core.Publish(c.wall(now), recs); err != nil {
		panic(fmt.Sprintf("sim: %s publish: %v", c.info.Name, err)) // own records always merge
	}
	c.env.Acked(w.ID)
	c.flush(now)
}

// clockSkewed reports whether the controller refuses writes at wall time t,
// by the production controller's rule (clockgate.Check, behind the API's
// 503 clock_skew).
func (c *meshController) clockSkewed(t time.Time) bool {
	off, ok := c.core.ClockOffset()
	return clockgate.Check(clockgate.State{
		Offset: off, HaveOffset: ok, SinceStart: t.Sub(c.startedAt),
		LivePeers: c.seesLivePeer,
		Lead:      time.Duration(c.core.Now(t).Millis()-crdt.MillisOf(t)) * time.Millisecond,
		MaxOffset: meshMaxOffset,
	}) != clockgate.OK
}

// seesLivePeer reports whether the node's view has a live member other
// than itself.
func (c *meshController) seesLivePeer() bool {
	for name := range c.s.view.members {
		if name != c.info.Name && c.core.View().Alive(name) {
			return true
		}
	}
	return false
}

// Admit implements Router with the production router's admission decision
// in strict mode, pulling from peers on a miss as the production router
// does.
func (r *meshRouter) Admit(now time.Duration, q Admission) {
	facts := r.s.certs[q.Cert]
	d := router.Decide(r.store, facts, crdt.MillisOf(r.wall(now)), router.ModeStrict)
	if !d.Pull {
		r.env.Answer(q.Connect, r.s.access(r.store, facts, d))
		return
	}
	r.waiting[facts.Serial] = append(r.waiting[facts.Serial], waitingConnect{q.Connect, facts})
	r.core.Want(r.wall(now), facts.Serial, facts.Issuer)
	r.flush(now)
}

// access is the router's answer: the decision on the certificate, then,
// with policy changes in the workload, the production router's access
// question for the workload's service (router.Access).
func (s *meshStrategy) access(store *crdt.Store, f crdt.CertFacts, d router.Decision) Verdict {
	v := VerdictOf(d)
	if v == Accept && s.policyGroups > 0 && router.Access(store, f, policyService) != crdt.AccessGranted {
		return RejectDenied
	}
	return v
}

// VerdictOf is the verdict of the production router's decision d, which
// the mesh strategy and live mode (package sim/live) both answer with.
func VerdictOf(d router.Decision) Verdict {
	switch {
	case d.Admitted():
		return Accept
	case d.Verdict.Revoked():
		return RejectRevoked
	}
	return RejectUnknown
}

// resolvePull answers the connects that waited for serial.
func (n *meshNode) resolvePull(now time.Duration, serial crdt.Serial) {
	ids := n.waiting[serial]
	delete(n.waiting, serial)
	for _, w := range ids {
		d := router.Decide(n.store, w.facts, crdt.MillisOf(n.wall(now)), router.ModeStrict)
		n.env.Answer(w.id, n.s.access(n.store, w.facts, d))
	}
}

func simSessionID(s SessionID) crdt.SessionID {
	var id crdt.SessionID
	id[0] = 's'
	binary.BigEndian.PutUint32(id[12:], uint32(s))
	return id
}

func simSerial(c CertID) crdt.Serial {
	var s crdt.Serial
	s[0] = 'c'
	binary.BigEndian.PutUint32(s[12:], uint32(c))
	return s
}

// seed returns the records every store holds from the start: with policy
// changes in the workload, the service and the groups' policies
// (policy.go), written a minute before virtual time zero. The same objects
// for every store.
func (s *meshStrategy) seed() []crdt.Record {
	s.seedOnce.Do(func() {
		if s.policyGroups > 0 {
			s.seedRecs = policySeed(s.policyGroups, simEpoch.Add(-time.Minute))
			// Genuine, as written records are, should a node ever be sent
			// one; they belong to no write of the workload.
			aw := &authorWrites{author: policySeedAuthor, recs: s.seedRecs, events: make([]EventID, len(s.seedRecs))}
			for i := range aw.events {
				aw.events[i] = -1
			}
			s.written[policySeedAuthor.Name] = aw
		}
	})
	return s.seedRecs
}
