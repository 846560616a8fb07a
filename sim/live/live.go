package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/router"
	"github.com/certmesh/certmesh/sim"
)

// Live mode (meshsim --mode live; docs/meshsim.md): the "mesh" strategy
// with one real mesh.Mesh per simulated node, each over real memberlist
// (SWIM membership, failure detection, encryption, streams) on liveNet, an
// in-memory transport with model mode's latency, jitter, loss and
// partitions, in wall-clock time. It shows that the memberlist integration
// behaves as the model says.
//
// What is shared with model mode: the topology, the cluster and its delay
// matrix, the fault timeline, the workload (arrivals, nearest controller,
// connects 1.5 round trips later, revocations, revoked connects: a
// sim.RawRun, advanced in wall time), the records each write creates
// (sim.WriteRecords), the router's admission (router.Decide, pull on
// miss) and the report (sim.RawRun.Result, so every figure has model
// mode's definition).
//
// What differs, by nature: membership is real SWIM (memberlist tuned to
// detect a crash as close to membership.detection as it can), time is the
// wall clock (so a run is not deterministic and costs its duration), each
// node decodes and verifies its own copy of every record (the verifier
// compares a record's canonical bytes with those written, a stand-in for
// the signature check), and cross_region_bytes_per_event counts every byte
// the transport carried across regions, memberlist's probes and gossip and
// its encryption included, since the transport cannot tell certmesh's
// frames inside memberlist's encrypted packets. bytes and messages per
// event per node are certmesh's frames, as each node's mesh counted them.
//
// Faults: partitions and crashes. A crash takes the node off the network
// at once and closes its mesh (peers never hear it leave); the restart
// starts a new mesh on the same store, as a process restarted on its disk.

// Config configures Run. It is frozen once passed to Run.
type Config struct {
	// Config holds the seed, the drain bound and the progress callback;
	// RecordBytes does not apply (live records are real).
	sim.Config
	// JoinTimeout bounds the setup before time zero: every mesh must see
	// every other node alive within it. Default 60s.
	JoinTimeout time.Duration
	// Logger receives the run's own log: a summary at the end (setup
	// time, packets, drops, how late the machine delivered them), a
	// warning when that lateness distorts the delays. Default discards.
	Logger *slog.Logger
	// MeshLogger receives the meshes' and memberlist's logs; default
	// discards.
	MeshLogger *slog.Logger
}

// DefaultConfig returns the defaults: sim.DefaultConfig and a join
// timeout of 60s.
func DefaultConfig() Config {
	return Config{Config: sim.DefaultConfig(), JoinTimeout: DefaultJoinTimeout}
}

// Live mode limits and defaults.
const (
	// DefaultJoinTimeout is Config.JoinTimeout's default.
	DefaultJoinTimeout = 60 * time.Second
	// MaxNodes caps the nodes of a live run: each runs a memberlist
	// instance and a mesh in this process, in real time.
	MaxNodes = 1000
	// livePullTimeout is the router's admission.pull_timeout default
	// (docs/deploy.md).
	livePullTimeout = 2 * time.Second
	// liveLabel is the memberlist label of live meshes.
	liveLabel = "certmesh-sim"
	// livePushPullInterval is memberlist's PushPullInterval in live mode
	// (see memberlistHook).
	livePushPullInterval = 5 * time.Second
	// liveMembershipPoll is how often the setup checks membership.
	liveMembershipPoll = 100 * time.Millisecond
)

// Run runs top with the mesh strategy over real memberlist instances (see
// above) and returns its result, with model mode's definitions.
func Run(top *sim.Topology, cfg Config) (*sim.Result, error) {
	res, _, err := run(top, cfg)
	return res, err
}

// liveStats are figures of a live run as a simulation.
type liveStats struct {
	setup, shutdown time.Duration // joining before time zero; stopping after the end
	packets         int64         // packets delivered
	// lateP50, lateP99 and lateMax are how much later than their
	// arrival time packets reached their receiver: the machine's lag
	// behind the latency model.
	lateP50, lateP99, lateMax time.Duration
}

// keptUp reports whether the machine kept the latency model: packets were
// at most maxLateness late at p99.
func (s liveStats) keptUp() bool { return s.lateP99 <= maxLateness }

func run(top *sim.Topology, cfg Config) (*sim.Result, liveStats, error) {
	var st liveStats
	if err := cfg.Validate(); err != nil {
		return nil, st, err
	}
	if cfg.JoinTimeout < 0 {
		return nil, st, fmt.Errorf("sim: live config: JoinTimeout %v is negative", cfg.JoinTimeout)
	}
	if top.Workload.Policy > 0 {
		return nil, st, errors.New("sim: live mode does not make policy changes: set workload.mix.policy to 0, or run the model")
	}
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MeshLogger == nil {
		cfg.MeshLogger = slog.New(slog.DiscardHandler)
	}
	if err := Supports(top); err != nil {
		return nil, st, err
	}
	l := &liveRun{cfg: cfg, log: cfg.Logger, top: top, wake: make(chan struct{}, 1),
		book:  &liveBook{entries: make(map[crdt.Dot]bookEntry)},
		certs: make(map[sim.CertID]crdt.CertFacts), sessionCert: make(map[sim.SessionID]crdt.Serial)}
	r, err := sim.NewRawRun(top, "mesh", func(*sim.Cluster) (sim.Strategy, error) { return l, nil }, cfg.Config)
	if err != nil {
		return nil, st, err
	}
	l.r, l.cl = r, r.Cluster()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.net = newLiveNet(l.cl, r.Partitions())
	l.tuneMemberlist()
	seedRand := rand.New(rand.NewPCG(uint64(cfg.Seed), sim.Mix64(3)))
	l.key = make([]byte, 32)
	for i := range l.key {
		l.key[i] = byte(seedRand.UintN(256))
	}
	for _, c := range l.cl.Controllers {
		l.seeds = append(l.seeds, l.net.addrs[c])
	}
	if len(l.seeds) == 0 {
		l.seeds = []string{l.net.addrs[0]}
	}

	began := time.Now()
	if err := l.setup(); err != nil {
		l.shutdown()
		return nil, st, err
	}
	l.t0 = time.Now()
	l.net.setStart(l.t0)
	r.Start()
	end := l.loop()
	stopped := time.Now()
	l.shutdown()
	res := r.Result(end, l.traffic())
	res.WallSeconds = math.Round(time.Since(began).Seconds()*100) / 100
	late := &l.net.late
	st = liveStats{setup: l.t0.Sub(began), shutdown: time.Since(stopped), packets: late.n,
		lateP50: late.quantile(0.5), lateP99: late.quantile(0.99), lateMax: late.max}
	l.report(st)
	return res, st, nil
}

// maxLateness is the lag behind the latency model beyond which a live run
// warns that its delays are the machine's as much as the network's.
const maxLateness = 5 * time.Millisecond

// report logs how the run went as a simulation (a warning when the
// machine's lag distorts the delays).
func (l *liveRun) report(st liveStats) {
	args := []any{"nodes", len(l.nodes), "setup", st.setup.Round(time.Millisecond), "shutdown", st.shutdown.Round(time.Millisecond),
		"packets", st.packets, "late_p50", st.lateP50, "late_p99", st.lateP99, "late_max", st.lateMax,
		"dropped_loss", l.net.dropLoss.Load(), "dropped_partition", l.net.dropCut.Load(),
		"dropped_down", l.net.dropDown.Load(), "dropped_queue_full", l.net.dropFull.Load()}
	if !st.keptUp() {
		l.log.Warn(fmt.Sprintf("sim: live mode: the machine delivered packets up to %v late (p99; p50 %v): "+
			"the sync delays include that lag (CPU contention?)", st.lateP99, st.lateP50), args...)
		return
	}
	l.log.Info("sim: live mode: run done", args...)
}

// Supports reports why live mode cannot run top, if it cannot: too many
// nodes (MaxNodes), a fault other than a partition or a crash, skewed
// clocks, mesh parameters or network options that only the model has.
func Supports(top *sim.Topology) error {
	if top == nil {
		return errors.New("sim: nil topology")
	}
	if c, r := top.NumNodes(); c+r > MaxNodes {
		return fmt.Errorf("sim: live mode: %d nodes, more than the %d it runs in one process in real time", c+r, MaxNodes)
	}
	for i, f := range top.Faults {
		if (f.Crash == "") == (len(f.Partition) == 0) {
			return fmt.Errorf("sim: live mode: faults[%d]: live mode supports partition and crash faults only", i)
		}
	}
	if len(top.Clocks) > 0 {
		return errors.New("sim: live mode: clocks: skewed clocks are simulated in model mode only")
	}
	if top.Params != (sim.Params{}) && top.Params.Mesh != sim.DefaultParams().Mesh {
		return errors.New("sim: live mode: parameters.mesh: the live meshes run gossip's default configuration; mesh parameters are simulated in model mode only")
	}
	if !top.Net.IsDefault() {
		return errors.New("sim: live mode: network: bursty loss, Pareto jitter and bandwidth are simulated in model mode only")
	}
	return nil
}

// liveRun is a live run: the run's bookkeeping, and the meshes. Everything
// of r, the nodes' mesh fields, certs and sessionCert belong to the
// driver goroutine (the one in Run); meshes report to it through notes.
type liveRun struct {
	cfg    Config
	log    *slog.Logger
	top    *sim.Topology
	cl     *sim.Cluster
	r      *sim.RawRun
	net    *liveNet
	nodes  []*liveNode // by NodeID
	book   *liveBook
	key    []byte   // the gossip key
	seeds  []string // every controller's address
	t0     time.Time
	ctx    context.Context // cancelled at shutdown: pending pulls give up
	cancel context.CancelFunc
	bg     sync.WaitGroup // pulls and closing meshes

	// memberlist tuning
	probeInterval, probeTimeout time.Duration
	suspicionMult               int

	certs       map[sim.CertID]crdt.CertFacts // what a router reads from each certificate
	sessionCert map[sim.SessionID]crdt.Serial // the session's latest certificate

	notesMu sync.Mutex // guards notes
	notes   []note
	wake    chan struct{} // capacity 1: a note was posted
}

func (l *liveRun) elapsed() time.Duration { return time.Since(l.t0) }

// post reports something that happened at a node to the driver.
func (l *liveRun) post(n note) {
	l.notesMu.Lock()
	l.notes = append(l.notes, n)
	l.notesMu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// NewNode implements sim.Strategy; the meshes start in setup.
func (l *liveRun) NewNode(env *sim.Env) sim.Node {
	info := env.Info()
	n := &liveNode{l: l, info: info, store: crdt.NewStore(), closing: closedChan()}
	l.nodes = append(l.nodes, n)
	if info.Role == sim.RoleController {
		n.author = crdt.Author{Name: info.Name, Incarnation: uint64(info.ID) + 1}
		return liveController{n}
	}
	return liveRouter{n}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// tuneMemberlist derives memberlist's failure detection from the
// topology: probes that wait out the slowest round trip (direct, then
// indirect through another node), and a suspicion timeout that makes a
// crash detected as close to membership.detection (model mode's delay) as
// memberlist allows: a probe interval covers the slowest direct and
// indirect round trips, and the suspicion timeout is at least log10(N)
// probe intervals. On live-60 (detection 2s): 980ms probes, a 1.7s
// suspicion timeout, a crash seen by all nodes after 3.7 to 3.9s.
func (l *liveRun) tuneMemberlist() {
	cl, top := l.cl, l.top
	var maxOneWay time.Duration
	for a := range cl.NumRegions() {
		for b := range cl.NumRegions() {
			maxOneWay = max(maxOneWay, cl.RegionDelay(a, b))
		}
	}
	maxRTT := time.Duration(2 * float64(maxOneWay) * (1 + top.Jitter))
	l.probeTimeout = max(100*time.Millisecond, 3*maxRTT)
	// memberlist: suspicion timeout = SuspicionMult * max(1, log10(N)) *
	// ProbeInterval; a crash is seen after a probe finds it (within a
	// probe interval) and the suspicion times out.
	scale := max(1, math.Log10(float64(len(cl.Nodes))))
	det := top.Detection
	l.probeInterval = max(l.probeTimeout+2*maxRTT+100*time.Millisecond,
		time.Duration(float64(det)/(1+scale)).Round(time.Millisecond))
	l.suspicionMult = max(1, int(math.Round(float64(det-l.probeInterval)/(scale*float64(l.probeInterval)))))
}

func (l *liveRun) memberlistHook(mc *memberlist.Config) {
	mc.ProbeInterval = l.probeInterval
	mc.ProbeTimeout = l.probeTimeout
	mc.SuspicionMult = l.suspicionMult
	// Model mode's membership is an oracle that every node shares. In
	// memberlist a node that missed an alive message by gossip (a mass
	// join, a restart) learns of the member at its next push-pull, 30s
	// by default, doubled beyond 32 nodes: live mode syncs state more
	// often so that such a gap lasts seconds. Each push-pull also
	// carries an anti-entropy exchange (mesh.Mesh's LocalState); the
	// core's own runs every second, so this adds little.
	mc.PushPullInterval = livePushPullInterval
	// The network model has no bandwidth, so compression would only
	// cost CPU, which 60 nodes share on a few cores here and which real
	// nodes each have their own of.
	mc.EnableCompression = false
}

// setup starts every node's mesh and waits until each sees all the others
// alive.
func (l *liveRun) setup() error {
	for _, n := range l.nodes {
		if err := n.startMesh(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(l.cfg.JoinTimeout)
	tick := time.NewTicker(liveMembershipPoll)
	defer tick.Stop()
	waiting := slices.Clone(l.nodes) // nodes that did not see everyone yet
	for {
		waiting = slices.DeleteFunc(waiting, func(n *liveNode) bool {
			return n.mesh.Stats().AlivePeers == len(l.nodes)-1
		})
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sim: live mode: the meshes did not all see one another within %v: %s",
				l.cfg.JoinTimeout, l.missingMembers(waiting))
		}
		<-tick.C
	}
}

// missingMembers describes what the nodes of waiting lack in their views.
func (l *liveRun) missingMembers(waiting []*liveNode) string {
	missing, example := 0, ""
	for _, n := range waiting {
		seen := make(map[string]string, len(l.nodes))
		for _, m := range n.mesh.Members() {
			seen[m.Name] = m.State
		}
		for _, o := range l.nodes {
			if st := seen[o.info.Name]; st != "alive" {
				missing++
				if example == "" {
					if st == "" {
						st = "unknown"
					}
					example = fmt.Sprintf("%s sees %s as %s", n.info.Name, o.info.Name, st)
				}
			}
		}
	}
	return fmt.Sprintf("%d nodes lack %d members in their views, such as: %s", len(waiting), missing, example)
}

// loop drives the run in wall time: the scheduler's events (arrivals,
// connects, faults, drain checks) when their time comes, and the nodes'
// notes as they arrive, until the run converges or reaches its end, which
// it returns.
func (l *liveRun) loop() time.Duration {
	r := l.r
	timer := time.NewTimer(0)
	defer timer.Stop()
	var batch []note
	lastProgress := time.Now()
	end := max(l.top.Duration, l.top.LastFaultEnd())
	for {
		l.notesMu.Lock()
		batch, l.notes = l.notes, batch[:0]
		l.notesMu.Unlock()
		for i := range batch {
			batch[i].replay(r)
		}
		clear(batch)
		r.Advance(l.elapsed())
		now := l.elapsed()
		if r.Done(now) {
			break
		}
		if p := l.cfg.Progress; p != nil && time.Since(lastProgress) >= 100*time.Millisecond {
			lastProgress = time.Now()
			p(now, end)
		}
		timer.Reset(max(min(r.Next()-now, 100*time.Millisecond), 0))
		select {
		case <-l.wake:
		case <-timer.C:
		}
	}
	return l.elapsed()
}

// note is what a mesh reports to the driver: a write applied at a node, or
// a router's answer after a pull.
type note struct {
	at      time.Duration
	node    sim.NodeID
	answer  bool        // an answer, else an applied write
	id      int32       // the sim.EventID applied, or the connect answered
	verdict sim.Verdict // the answer
}

func (n *note) replay(r *sim.RawRun) {
	if n.answer {
		r.Answer(n.at, n.node, n.id, n.verdict)
		return
	}
	r.Applied(n.at, n.node, sim.EventID(n.id))
}

// shutdown stops every mesh, waits for pulls and closing meshes, and
// stops the network. The run is over: the nodes are taken off the network
// first, so that their leave announcements do not flood one another
// (memberlist's Leave would wait seconds for them to go out).
func (l *liveRun) shutdown() {
	l.cancel()
	for _, n := range l.nodes {
		l.net.crash(n.info.ID)
	}
	var wg sync.WaitGroup
	for _, n := range l.nodes {
		if n.mesh == nil {
			continue
		}
		m, unsub := n.mesh, n.unsub
		n.mesh = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			unsub()
			if err := m.Close(); err != nil {
				l.log.Debug("sim: live: close", "node", n.info.Name, "err", err)
			}
			n.addStats(m)
		}()
	}
	wg.Wait()
	l.bg.Wait()
	l.net.close()
}

// traffic returns the counters of the meshes and the network, once they
// are shut down.
func (l *liveRun) traffic() sim.Traffic {
	t := sim.Traffic{
		BytesRecv: make([]int64, len(l.nodes)), MsgsRecv: make([]int64, len(l.nodes)),
		RegionBytes: make([]int64, len(l.net.regionBytes)), Deliveries: l.net.deliveries.Load(),
		// A receiver whose packet queue is full counts as down: it could
		// not take the packet (the summary log tells the two apart).
		Dropped: sim.DropStats{Loss: l.net.dropLoss.Load(), Partition: l.net.dropCut.Load(),
			Down: l.net.dropDown.Load() + l.net.dropFull.Load()},
	}
	for i, n := range l.nodes {
		t.BytesRecv[i] = int64(n.bytesIn)
		t.MsgsRecv[i] = int64(n.msgsIn)
	}
	for c := range t.RegionBytes {
		t.RegionBytes[c] = l.net.regionBytes[c].Load()
	}
	return t
}

// liveBook holds the records the simulated controllers wrote. Its Verify is
// the meshes' crdt.Verifier: a record is genuine if its canonical signed
// bytes are those written under its dot (a stand-in for the signature
// check; it does not implement gossip.SharedVerifier, since every node
// decodes its own copy).
type liveBook struct {
	mu      sync.RWMutex // guards entries and dots
	entries map[crdt.Dot]bookEntry
	dots    [][]crdt.Dot // by sim.EventID: the dots of the write's records
}

type bookEntry struct {
	signed []byte
	event  sim.EventID
}

var _ crdt.Verifier = (*liveBook)(nil)

// add files the records of write id, before they are published.
func (b *liveBook) add(id sim.EventID, recs []crdt.Record) {
	signed := make([][]byte, len(recs))
	for i, r := range recs {
		signed[i] = crdt.SignedBytes(r)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for int(id) >= len(b.dots) {
		b.dots = append(b.dots, nil)
	}
	dots := make([]crdt.Dot, len(recs))
	for i, r := range recs {
		dots[i] = r.Head().Dot()
		b.entries[dots[i]] = bookEntry{signed: signed[i], event: id}
	}
	b.dots[id] = dots
}

// event returns the write that record dot d belongs to and its dots.
func (b *liveBook) event(d crdt.Dot) (sim.EventID, []crdt.Dot, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	e, ok := b.entries[d]
	if !ok {
		return 0, nil, false
	}
	return e.event, b.dots[e.event], true
}

// Verify implements crdt.Verifier.
func (b *liveBook) Verify(r crdt.Record, msg []byte) error {
	b.mu.RLock()
	e, ok := b.entries[r.Head().Dot()]
	b.mu.RUnlock()
	switch {
	case !ok:
		return errors.New("sim: live: record not written by a simulated controller")
	case !bytes.Equal(e.signed, msg):
		return errors.New("sim: live: record differs from the one written")
	}
	return nil
}

// liveNode is one simulated node: its store (persisted: it survives a
// crash) and its current mesh.
type liveNode struct {
	l     *liveRun
	info  sim.NodeInfo
	store *crdt.Store

	// Driver-owned:
	mesh    *mesh.Mesh // nil while crashed
	unsub   func()
	starts  uint64        // meshes started
	closing chan struct{} // closed once the last crashed mesh has stopped

	author crdt.Author // controllers
	seq    uint64      // controllers: persisted with the records

	// Counters of the node's meshes, added as each stops (before closing
	// is closed, or before shutdown returns).
	statsMu         sync.Mutex
	bytesIn, msgsIn uint64
}

type liveController struct{ *liveNode }
type liveRouter struct{ *liveNode }

// startMesh starts a mesh on the node's store, on a fresh endpoint.
func (n *liveNode) startMesh() error {
	l := n.l
	ep := l.net.attach(n.info.ID)
	core := gossip.DefaultConfig()
	core.Name, core.Region = n.info.Name, l.top.Regions[n.info.Region].Name
	core.Role = gossip.RoleRouter
	if n.info.Role == sim.RoleController {
		core.Role = gossip.RoleController
	}
	n.starts++
	m, err := mesh.New(mesh.Config{
		Core: core, Transport: ep, Join: l.seeds, Keys: [][]byte{l.key}, Label: liveLabel,
		Logger: l.cfg.MeshLogger, Memberlist: l.memberlistHook,
		Seed: sim.Mix64(uint64(l.cfg.Seed)^sim.Mix64(uint64(n.info.ID))^n.starts) | 1,
	}, n.store, l.book)
	if err != nil {
		ep.Shutdown()
		return fmt.Errorf("sim: live mode: start %s: %w", n.info.Name, err)
	}
	n.mesh = m
	n.unsub = m.Subscribe(n.observer(m))
	return nil
}

// observer reports the writes whose records have all been applied, with
// the wall time at which the mesh applied them. It runs on the mesh's
// goroutine.
func (n *liveNode) observer(m *mesh.Mesh) func([]crdt.Record) {
	return func(recs []crdt.Record) {
		at := n.l.elapsed()
		for _, r := range recs {
			ev, dots, ok := n.l.book.event(r.Head().Dot())
			if !ok {
				continue
			}
			all := true
			m.View(func(s *crdt.Store) {
				for _, d := range dots {
					all = all && s.Has(d)
				}
			})
			if all {
				n.l.post(note{at: at, node: n.info.ID, id: int32(ev)})
			}
		}
	}
}

// sweep reports every write whose records the store holds: after a
// restart, those applied between the start of the mesh and its
// subscription.
func (n *liveNode) sweep() {
	l := n.l
	l.book.mu.RLock()
	all := append([][]crdt.Dot(nil), l.book.dots...)
	l.book.mu.RUnlock()
	at := l.elapsed()
	n.mesh.View(func(s *crdt.Store) {
		for ev, dots := range all {
			have := len(dots) > 0
			for _, d := range dots {
				have = have && s.Has(d)
			}
			if have {
				l.post(note{at: at, node: n.info.ID, id: int32(ev)})
			}
		}
	})
}

func (n *liveNode) addStats(m *mesh.Mesh) {
	st := m.Stats()
	var msgs uint64
	for _, k := range st.MessagesIn {
		msgs += k
	}
	n.statsMu.Lock()
	n.bytesIn += st.BytesIn
	n.msgsIn += msgs
	n.statsMu.Unlock()
}

// Crash implements sim.Crasher: it takes the node off the network and
// closes its mesh in the background; its store stays.
func (n *liveNode) Crash(time.Duration) {
	m, unsub := n.mesh, n.unsub
	if m == nil {
		return
	}
	n.mesh, n.unsub = nil, nil
	n.l.net.crash(n.info.ID)
	done := make(chan struct{})
	n.closing = done
	n.l.bg.Add(1)
	go func() {
		defer n.l.bg.Done()
		defer close(done)
		unsub()
		if err := m.Close(); err != nil {
			n.l.log.Debug("sim: live: close after crash", "node", n.info.Name, "err", err)
		}
		n.addStats(m)
	}()
}

// Start implements sim.Node; the mesh started in setup.
func (n *liveNode) Start(time.Duration) {}

// Receive, Timer and MembershipChanged implement sim.Node: a live node's
// messages, timers and membership are its mesh's own.
func (n *liveNode) Receive(time.Duration, sim.NodeID, sim.Message) {}
func (n *liveNode) Timer(time.Duration, sim.Timer)                 {}
func (n *liveNode) MembershipChanged(time.Duration)                {}

// Restart implements sim.Node: a new mesh on the persisted store, joining
// the seeds as a restarted process does.
func (n *liveNode) Restart(time.Duration) {
	<-n.closing
	if err := n.startMesh(); err != nil {
		n.l.log.Error("sim: live: restart", "node", n.info.Name, "err", err)
		return
	}
	n.sweep()
}

// Digest implements sim.Node.
func (n *liveNode) Digest() uint64 {
	if n.mesh == nil {
		return n.store.Digest() // no mesh touches the store
	}
	var d uint64
	n.mesh.View(func(s *crdt.Store) { d = s.Digest() })
	return d
}

// Write implements sim.Controller: the records are stamped, filed, and
// published through the mesh, which stores them and pushes them at once;
// the write is acknowledged when Publish returns.
func (c liveController) Write(_ time.Duration, w *sim.Write) {
	l, m := c.l, c.mesh
	if m == nil {
		return // the workload sends requests to live controllers only
	}
	prev, hasPrev := l.sessionCert[w.Session]
	recs, facts := sim.WriteRecords(w, time.Now(), c.info.Name, prev, hasPrev)
	if w.Kind != sim.WriteRevoke {
		l.sessionCert[w.Session] = facts.Serial
		l.certs[w.Cert] = facts
	}
	c.seq = crdt.Stamp(recs, c.author, c.seq+1, m.Now) - 1
	l.book.add(w.ID, recs)
	if err := m.Publish(recs); err != nil {
		l.log.Error("sim: live: publish", "node", c.info.Name, "err", err)
		return
	}
	l.r.Acked(l.elapsed(), w.ID)
}

// Admit implements sim.Router with the production router's decision in
// strict mode: a miss pulls from peers (Mesh.Want) for up to the router's
// default pull timeout, then decides again.
func (rt liveRouter) Admit(_ time.Duration, q sim.Admission) {
	l, m := rt.l, rt.mesh
	if m == nil {
		return // the run asks live routers only
	}
	facts := l.certs[q.Cert]
	d := decideOn(m, facts)
	if !d.Pull {
		l.r.Answer(l.elapsed(), rt.info.ID, q.Connect, sim.VerdictOf(d))
		return
	}
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, livePullTimeout)
		defer cancel()
		if _, err := m.Want(ctx, facts.Serial, facts.Issuer); errors.Is(err, mesh.ErrClosed) || l.ctx.Err() != nil {
			return // the router crashed, or the run is over
		}
		d := decideOn(m, facts)
		l.post(note{at: l.elapsed(), node: rt.info.ID, answer: true, id: q.Connect, verdict: sim.VerdictOf(d)})
	}()
}

func decideOn(m *mesh.Mesh, facts crdt.CertFacts) router.Decision {
	var d router.Decision
	m.View(func(s *crdt.Store) {
		d = router.Decide(s, facts, crdt.MillisOf(time.Now()), router.ModeStrict)
	})
	return d
}
