package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/certmesh/certmesh/gossip"
)

// Config holds the knobs of a run that are not part of the topology. A
// Config is frozen once passed to Run.
type Config struct {
	// Seed seeds every random source of the run (network, workload, nodes).
	// meshsim sets it from --seed or the topology's seed.
	Seed int64
	// RecordBytes, if positive, is the size of the records of every write
	// for strategies that do not encode real records (the baselines). Zero,
	// the default, uses the size of certmesh's real encoding of the records
	// each write creates (Cluster.WriteBytes): about 300 bytes for an issue
	// (session and certificate records), 200 for a rotation or revocation.
	RecordBytes int
	// MaxDrain bounds the quiet time after the workload and the last fault
	// (default 120s); the run stops earlier once every write is applied at
	// every node and all digests agree.
	MaxDrain time.Duration
	// Progress, if set, is called now and then with the virtual time reached
	// and the end of the workload and fault schedule (a drain follows). It
	// must not touch the run.
	Progress func(now, end time.Duration)
	// Workers is how many goroutines step the nodes (see parallel.go);
	// zero means GOMAXPROCS. It changes the wall time, never the result.
	Workers int
	// MeshEagerTrees, if positive, is how many of the mesh strategy's trees
	// carry the records (gossip.Config.EagerTrees); the others are lazy.
	// Zero keeps gossip's default.
	MeshEagerTrees int
	// Params are the strategies' parameters; the zero value means the
	// topology's (its parameters section over DefaultParams).
	Params Params
}

// DefaultConfig returns the defaults: seed 0, real record sizes, a drain of
// at most 120s.
func DefaultConfig() Config {
	return Config{MaxDrain: 120 * time.Second}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.RecordBytes < 0 || c.RecordBytes > MaxDatagram*64 {
		return fmt.Errorf("sim: config: RecordBytes %d out of range [0, %d]", c.RecordBytes, MaxDatagram*64)
	}
	if c.MaxDrain < 0 {
		return fmt.Errorf("sim: config: MaxDrain %v is negative", c.MaxDrain)
	}
	if c.Workers < 0 {
		return fmt.Errorf("sim: config: Workers %d is negative", c.Workers)
	}
	if trees := gossip.DefaultConfig().Trees; c.MeshEagerTrees < 0 || c.MeshEagerTrees > trees {
		return fmt.Errorf("sim: config: MeshEagerTrees %d out of range [0, %d]", c.MeshEagerTrees, trees)
	}
	return nil
}

// Workload constants (docs/meshsim-model.md, "The workload").
const (
	unavailableAfter   = 5 * time.Second        // a write not acked within this is unavailable
	revokedGrace       = time.Second            // revoked_accepts: accepted more than this after reachability
	revokedConnectSpan = 2 * time.Second        // revoked certs are tried uniformly within this after the ack
	handshakeRTTs      = 1.5                    // TLS 1.3 with client auth: the router sees the cert after 1.5 RTT
	checkEvery         = 100 * time.Millisecond // drain: how often convergence is checked
	progressEvery      = 1 << 16                // events between Progress calls
)

// Run simulates top with the named strategy and returns its result.
func Run(top *Topology, strategy string, cfg Config) (*Result, error) {
	f, ok := lookupStrategy(strategy)
	if !ok {
		return nil, fmt.Errorf("sim: unknown strategy %q (available: %v)", strategy, Strategies())
	}
	r, err := newRun(top, strategy, f, cfg)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	r.start()
	r.runUntil(r.end)
	res := r.result()
	res.WallSeconds = math.Round(time.Since(began).Seconds()*100) / 100
	return res, nil
}

// run is the state of one simulation. Global events and the workload's
// bookkeeping run on one goroutine; the shards step the nodes between them
// (parallel.go).
type run struct {
	cfg   Config
	top   *Topology
	cl    *Cluster
	net   *network
	name  string
	strat Strategy
	nodes []Node
	ctrls []Controller // by NodeID; nil for routers
	rtrs  []Router     // by NodeID; nil for controllers
	envs  []Env
	alive []bool
	inc   []uint32 // incarnation, bumped at crash and at restart

	sched   scheduler     // global events; node events are in the shards
	now     time.Duration // time of the global event or window being run
	end     time.Duration // the run stops at the latest here
	stopped bool
	wlRand  *rand.Rand

	shards    []*shard
	workers   int           // goroutines that step the shards
	lookahead time.Duration // the smallest one-way base delay, at least 1ns
	windows   int           // windows stepped so far
	pushed    []uint64      // by node: node events it scheduled, for event keys
	netRand   []*rand.Rand  // by node: jitter and loss of what it sends

	// workload
	arrivals  int // requests made so far
	nArrivals int // requests the workload makes
	writes    []writeState
	sessions  []sessionState
	certs     []certState
	live      []SessionID // sessions acked and not revoked
	connects  []connectState
	pending   int     // connects scheduled and not yet answered or failed
	noCtrl    int     // requests that found no reachable controller
	abandoned int     // writes refused by every controller the client tried
	refusedBy []int32 // by NodeID: requests the controller refused

	// metrics
	totalApplied int64
	words        int                        // bitset words per write
	pairDelay    [][]int32                  // fault-free sync delays in µs, by region pair class
	kindDelay    [WritePolicy + 1][][]int32 // the same by write kind, then class; only with policy changes
	pairE2E      [][]int32                  // fault-free end-to-end delays in µs (request to apply), by class
	beforeAck    int64                      // fault-free pairs applied before their write's ack
	catchUp      []int32                    // µs
	issueLat     []int32                    // µs
	bytesRecv    []int64                    // by node, state-carrying only
	msgsRecv     []int64                    // by node, state-carrying only
	bytesSent    []int64                    // by node, state-carrying only, lost ones and retransmissions included
	msgsSent     []int64                    // by node, likewise
	regionBytes  []int64                    // by region pair (from*R+to), state-carrying only
	deliveries   int64                      // every message delivered
	dropped      DropStats
	events       int64 // events popped
	stat         struct {
		connects, revokedConnects, falseRejects, revokedAccepts, refused int
		deniedConnects, unauthorizedAccepts                              int
	}
	policy policyState // access groups (policy.go)

	reconnect ReconnectPolicy // how the strategy's streams get through a partition (reconnect.go)
	ns        netState        // network options' state by node (netmodel.go)

	trace  func(format string, args ...any) // tests: one line per delivery and fault
	noStop bool                             // tests: no drain checks; the run ends when nothing is scheduled
}

type writeState struct {
	w         *Write
	acked     time.Duration // -1 until acknowledged
	lastApply time.Duration
	nApplied  int32        // nodes that applied it
	nRouters  int32        // routers that applied it
	applied   []uint64     // bitset over nodes
	early     []earlyApply // router applies before the ack (raft)
	tried     []NodeID     // controllers that refused it in the client's current round
	abandoned bool         // refused everywhere until the client gave up
}

type earlyApply struct {
	router NodeID
	at     time.Duration
}

type sessionState struct {
	region   int           // the client's region
	cert     CertID        // latest acknowledged certificate
	livePos  int32         // index in run.live, -1 when not live
	revokeAt time.Duration // when its revocation was requested, -1 if never
	group    int32         // Write.Group of its login: 1 + its access group, 0 without policy changes
	deniedAt time.Duration // 1 + when a policy change removed its access; 0 if never
}

type certState struct {
	session SessionID
	write   EventID
	issuer  NodeID
}

type connectState struct {
	router   NodeID
	cert     CertID
	region   int     // the client's region
	revoke   EventID // the revocation of the cert's session for connects of revoked certs, else -1
	query    time.Duration
	asked    bool
	answered bool
	verdict  Verdict // the router's answer; 0 until answered by it
	// falseReject: a valid, unrevoked certificate refused while the router
	// was reachable from its issuer (counted in false_rejects).
	falseReject bool
}

// DropStats counts messages the network did not deliver.
type DropStats struct {
	Loss      int64 `json:"loss"`      // lost packets (loss)
	Partition int64 `json:"partition"` // packets a partition cut, streams that gave up
	Down      int64 `json:"down"`      // sent to a crashed node
	Oversize  int64 `json:"oversize"`  // datagrams over MaxDatagram, never sent
	Queue     int64 `json:"queue"`     // datagrams a full egress queue dropped (network.queue)
}

func newRun(top *Topology, name string, f Factory, cfg Config) (*run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if top == nil {
		return nil, errors.New("sim: nil topology")
	}
	cl := newCluster(top, cfg.RecordBytes)
	cl.MeshEagerTrees = cfg.MeshEagerTrees
	cl.Params = cfg.Params
	if cl.Params == (Params{}) {
		cl.Params = top.Params
	}
	if cl.Params == (Params{}) {
		cl.Params = DefaultParams()
	}
	if err := cl.Params.Validate(top); err != nil {
		return nil, fmt.Errorf("sim: parameters: %w", err)
	}
	n := len(cl.Nodes)
	seed := uint64(cfg.Seed)
	r := &run{
		cfg:         cfg,
		top:         top,
		cl:          cl,
		net:         newNetwork(cl),
		name:        name,
		nodes:       make([]Node, n),
		ctrls:       make([]Controller, n),
		rtrs:        make([]Router, n),
		envs:        make([]Env, n),
		alive:       make([]bool, n),
		inc:         make([]uint32, n),
		wlRand:      rand.New(rand.NewPCG(seed, mix64(2))),
		pushed:      make([]uint64, n),
		netRand:     make([]*rand.Rand, n),
		words:       (n + 63) / 64,
		pairDelay:   make([][]int32, cl.NumRegions()*cl.NumRegions()),
		pairE2E:     make([][]int32, cl.NumRegions()*cl.NumRegions()),
		bytesRecv:   make([]int64, n),
		msgsRecv:    make([]int64, n),
		bytesSent:   make([]int64, n),
		msgsSent:    make([]int64, n),
		regionBytes: make([]int64, cl.NumRegions()*cl.NumRegions()),
		refusedBy:   make([]int32, n),
	}
	if w := top.Workload; w.Rate > 0 {
		r.nArrivals = int(math.Round(w.Rate * top.Duration.Seconds()))
		r.policy.init(w, top.Duration)
	}
	r.end = max(top.Duration, top.LastFaultEnd()) + cfg.MaxDrain
	strat, err := f(cl)
	if err != nil {
		return nil, fmt.Errorf("sim: strategy %s: %w", name, err)
	}
	r.strat = strat
	if rc, ok := strat.(reconnecter); ok {
		r.reconnect = rc.Reconnect()
	}
	r.initShards(cfg.Workers)
	if top.Net != (NetModel{}) {
		r.ns = newNetState(top.Net, n)
	}
	for i := range n {
		id := NodeID(i)
		r.netRand[i] = rand.New(rand.NewPCG(seed, mix64(1<<32+uint64(i))))
		r.envs[i] = Env{id: id, r: r, rng: rand.New(rand.NewPCG(seed, mix64(1000+uint64(i))))}
		node := strat.NewNode(&r.envs[i])
		r.nodes[i] = node
		r.alive[i] = true
		switch cl.Nodes[i].Role {
		case RoleController:
			c, ok := node.(Controller)
			if !ok {
				return nil, fmt.Errorf("sim: strategy %s: node %s does not implement sim.Controller", name, cl.Nodes[i].Name)
			}
			r.ctrls[i] = c
		case RoleRouter:
			rt, ok := node.(Router)
			if !ok {
				return nil, fmt.Errorf("sim: strategy %s: node %s does not implement sim.Router", name, cl.Nodes[i].Name)
			}
			r.rtrs[i] = rt
		}
	}
	return r, nil
}

// mix64 is splitmix64's finaliser: distinct streams from small integers.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// start schedules the fault schedule, the workload and the drain checks,
// and starts every node.
func (r *run) start() {
	if r.trace != nil {
		r.initShards(1) // trace lines in order, from one goroutine
	}
	for k := 1; k < len(r.net.bounds); k++ {
		r.sched.push(event{at: r.net.bounds[k], kind: evFault, arg: int64(k)})
	}
	for _, t := range r.net.viewTimes() {
		r.sched.push(event{at: t, kind: evView})
	}
	if r.nArrivals > 0 {
		r.sched.push(event{at: r.arrivalTime(0), kind: evArrival})
	}
	if !r.noStop {
		r.sched.push(event{at: max(r.top.Duration, r.top.LastFaultEnd()), kind: evCheck})
	}
	for _, node := range r.nodes {
		node.Start(0)
	}
}

// arrivalTime spreads the workload's requests evenly, each at a uniform
// random point of its slot, so that a run has exactly rate*duration of them.
func (r *run) arrivalTime(i int) time.Duration {
	slot := float64(r.top.Duration) / float64(r.nArrivals)
	return time.Duration((float64(i) + r.wlRand.Float64()) * slot)
}

// runUntil processes events up to and including time t: a global event
// alone, before the node events of its instant; node events in windows
// that end at the next global event or a lookahead later, whichever is
// first.
func (r *run) runUntil(t time.Duration) {
	progressAt := r.events + progressEvery
	for !r.stopped {
		tn, tg := r.nextNodeEvent(), never
		if r.sched.len() > 0 {
			tg = r.sched.peekTime()
		}
		if min(tn, tg) > t || min(tn, tg) == never {
			break
		}
		if tg <= tn {
			ev := r.sched.pop()
			r.now = ev.at
			r.events++
			r.dispatch(&ev)
		} else {
			end := min(tn+r.lookahead, tg)
			if t != never {
				end = min(end, t+1)
			}
			r.window(end)
		}
		if r.cfg.Progress != nil && r.progressEvents() >= progressAt {
			progressAt += progressEvery
			r.cfg.Progress(r.now, max(r.top.Duration, r.top.LastFaultEnd()))
		}
	}
	if !r.stopped && r.now < t && t != never {
		r.now = t
	}
	r.foldShards()
}

// progressEvents counts the events popped so far, the shards' included.
func (r *run) progressEvents() int64 {
	n := r.events
	for _, sh := range r.shards {
		n += sh.events
	}
	return n
}

// dispatchNode runs a node event in the context of its shard.
func (r *run) dispatchNode(sh *shard, ev *event) {
	switch ev.kind {
	case evDeliver:
		r.deliver(sh, ev)
	case evTimer:
		if r.alive[ev.to] && r.inc[ev.to] == ev.inc {
			r.nodes[ev.to].Timer(sh.now, Timer{Kind: ev.mk, Arg: ev.arg, Data: ev.data})
		}
	}
}

// dispatch runs a global event.
func (r *run) dispatch(ev *event) {
	switch ev.kind {
	case evFault:
		r.faultTransition(int(ev.arg))
	case evView:
		for i, node := range r.nodes {
			if r.alive[i] {
				node.MembershipChanged(r.now)
			}
		}
	case evArrival:
		r.arrival()
	case evConnect:
		r.connect(int(ev.arg))
	case evCall:
		ev.data.(func())()
	case evCheck:
		if r.converged() {
			r.stopped = true
			return
		}
		r.sched.push(event{at: r.now + checkEvery, kind: evCheck})
	}
}

// kindName names a message kind for traces.
func (r *run) kindName(k uint16) string {
	if n, ok := r.strat.(kindNamer); ok {
		return n.KindName(k)
	}
	return fmt.Sprintf("kind=%d", k)
}

// tracef writes a trace line when tracing; hot paths check r.trace first
// so that building the arguments costs nothing otherwise.
func (r *run) tracef(format string, args ...any) {
	if r.trace != nil {
		r.trace(format, args...)
	}
}

// faultTransition enters segment k: faults that end here heal first (a
// crashed node restarts), then faults that start here begin.
func (r *run) faultTransition(k int) {
	r.net.cur = k
	at := r.net.bounds[k]
	for i := range r.net.faults {
		if f := &r.net.faults[i]; f.end == at {
			if f.crash < 0 {
				r.tracef("partition heals: %v", r.top.Faults[i].Partition)
				continue
			}
			r.tracef("restart %s", r.cl.Nodes[f.crash].Name)
			r.alive[f.crash] = true
			r.inc[f.crash]++
			r.nodes[f.crash].Restart(r.now)
		}
	}
	for i := range r.net.faults {
		if f := &r.net.faults[i]; f.at == at {
			if f.crash < 0 {
				r.tracef("partition starts: %v", r.top.Faults[i].Partition)
				continue
			}
			id := f.crash
			r.tracef("crash %s", r.cl.Nodes[id].Name)
			r.alive[id] = false
			r.inc[id]++
			for j := range r.connects {
				if c := &r.connects[j]; c.asked && !c.answered && c.router == id {
					c.answered = true // the connection died with the router
					r.pending--
				}
			}
		}
	}
}

// send implements Env.Send.
func (r *run) send(from, to NodeID, m Message) {
	if !r.alive[from] || to < 0 || int(to) >= len(r.nodes) {
		return
	}
	sh := r.shardOf(from)
	now := r.nowIn(sh)
	var flags msgFlags
	if m.State {
		flags |= flagState
	}
	ev := event{
		kind: evDeliver, to: to, from: from, inc: r.inc[to], arg: int64(now),
		data: m.Payload, size: m.Size, mk: m.Kind,
	}
	rng := r.netRand[from]
	if m.Reliable {
		ev.flags = flags | flagReliable
		d := r.oneWay(rng, from, to)
		var resent int64
		if loss := r.top.Loss; loss > 0 {
			pAttempt := 1 - math.Pow(1-loss, float64(packets(m.Size, true)))
			for rto := minRTO; rng.Float64() < pAttempt; rto = min(2*rto, maxRTO) {
				d += rto
				resent++
				if d > streamGiveUp {
					// TCP breaks the connection (tcp_retries2). Without this a
					// large message at high loss (pAttempt near 1) looped for
					// billions of attempts, and d overflowed into the past.
					r.bytesSent[from] += resent * int64(min(m.Size, MaxDatagram))
					r.drop(&sh.dropped.Loss, &ev, "stream gave up after 15 minutes of losses")
					return
				}
			}
		}
		if m.State {
			// A lost attempt costs its sender one more segment.
			r.bytesSent[from] += int64(m.Size) + resent*int64(min(m.Size, MaxDatagram))
			r.msgsSent[from] += packets(m.Size, true) + resent
		}
		if r.net.cutNow(from, to) {
			r.retryStream(sh, from, ev)
			return
		}
		out, _ := r.egress(from, m.Size, now, true)
		ev.at = out + d
		r.schedule(sh, from, ev)
		return
	}
	ev.flags = flags
	if m.State && m.Size <= MaxDatagram {
		r.bytesSent[from] += int64(m.Size) // sent, whether or not it arrives
		r.msgsSent[from]++
	}
	switch {
	case r.net.cutNow(from, to):
		r.drop(&sh.dropped.Partition, &ev, "partition")
		return
	case m.Size > MaxDatagram:
		r.drop(&sh.dropped.Oversize, &ev, "oversize")
		return
	}
	out, fits := r.egress(from, m.Size, now, false)
	switch {
	case !fits:
		r.drop(&sh.dropped.Queue, &ev, "egress queue full")
		return
	case r.lost(rng, from):
		r.drop(&sh.dropped.Loss, &ev, "lost")
		return
	}
	ev.at = out + r.oneWay(rng, from, to)
	r.schedule(sh, from, ev)
}

// oneWay draws a packet's one-way delay: the base delay of the pair times
// uniform(1, 1+jitter).
func (r *run) oneWay(rng *rand.Rand, from, to NodeID) time.Duration {
	base := r.cl.BaseDelay(from, to)
	if j := r.top.Jitter; j > 0 && base > 0 {
		return time.Duration(float64(base) * r.jitterFactor(rng, j))
	}
	return base
}

// retryStream reschedules a stream transfer that a partition blocks now:
// TCP retransmits it until the partition heals. self is the node in whose
// context this happens (the sender at sending, the receiver at arrival),
// and sh its shard.
func (r *run) retryStream(sh *shard, self NodeID, ev event) {
	now := r.nowIn(sh)
	at, redialed := r.reconnect.through(time.Duration(ev.arg), r.net.cutSince(ev.from, ev.to, now), r.net.healAt(ev.from, ev.to, now))
	if at == never {
		r.drop(&sh.dropped.Partition, &ev, "partition (stream gave up)")
		return
	}
	if redialed {
		at += 2 * r.cl.BaseDelay(ev.from, ev.to) // the new connection's handshake
	}
	ev.at = at + r.oneWay(r.netRand[self], ev.from, ev.to)
	if r.trace != nil {
		r.tracef("stream %s -> %s %s blocked by a partition: retransmitted at %v", r.cl.Nodes[ev.from].Name, r.cl.Nodes[ev.to].Name, r.kindName(ev.mk), at)
	}
	r.schedule(sh, self, ev)
}

func (r *run) drop(counter *int64, ev *event, why string) {
	*counter++
	if r.trace != nil {
		r.tracef("drop %s -> %s %s: %s", r.cl.Nodes[ev.from].Name, r.cl.Nodes[ev.to].Name, r.kindName(ev.mk), why)
	}
}

// packets is how many packets a message of size bytes counts as.
func packets(size int32, reliable bool) int64 {
	if !reliable || size <= MaxDatagram {
		return 1
	}
	return int64((size + MaxDatagram - 1) / MaxDatagram)
}

func (r *run) deliver(sh *shard, ev *event) {
	to, from := ev.to, ev.from
	reliable := ev.flags&flagReliable != 0
	switch {
	case !r.alive[to] || (reliable && r.inc[to] != ev.inc):
		r.drop(&sh.dropped.Down, ev, "receiver down")
		return
	case r.net.cutNow(from, to) && reliable:
		r.retryStream(sh, to, *ev)
		return
	case r.net.cutNow(from, to):
		r.drop(&sh.dropped.Partition, ev, "partition")
		return
	}
	sh.deliveries++
	if ev.flags&flagState != 0 {
		r.bytesRecv[to] += int64(ev.size)
		r.msgsRecv[to] += packets(ev.size, reliable)
		sh.regionBytes[int(r.net.region[from])*r.net.nR+int(r.net.region[to])] += int64(ev.size)
	}
	if r.trace != nil {
		r.tracef("deliver %s -> %s %s %dB", r.cl.Nodes[from].Name, r.cl.Nodes[to].Name, r.kindName(ev.mk), ev.size)
	}
	r.nodes[to].Receive(sh.now, from, Message{
		Payload: ev.data, Size: ev.size, Kind: ev.mk,
		State: ev.flags&flagState != 0, Reliable: reliable,
	})
}

// after implements Env.After.
func (r *run) after(id NodeID, d time.Duration, t Timer) {
	if d < 0 {
		d = 0
	}
	sh := r.shardOf(id)
	r.schedule(sh, id, event{at: r.nowIn(sh) + d, kind: evTimer, to: id, inc: r.inc[id], mk: t.Kind, arg: t.Arg, data: t.Data})
}

// applied implements Env.Applied.
func (r *run) applied(node NodeID, id EventID) {
	if id < 0 || int(id) >= len(r.writes) {
		return
	}
	ws := &r.writes[id]
	bit := uint64(1) << (uint(node) % 64)
	if ws.applied[node/64]&bit != 0 {
		return
	}
	ws.applied[node/64] |= bit
	ws.nApplied++
	r.totalApplied++
	ws.lastApply = r.now
	if r.cl.Nodes[node].Role != RoleRouter {
		return
	}
	ws.nRouters++
	if ws.acked < 0 {
		ws.early = append(ws.early, earlyApply{node, r.now})
		return
	}
	r.recordPair(ws, node, r.now)
}

// recordPair files the sync delay of (write, router) applied at at: fault-free
// pairs by region pair, the others as catch-up from the end of the fault.
func (r *run) recordPair(ws *writeState, router NodeID, at time.Duration) {
	ctrl := ws.w.Controller
	if hit, end := r.net.faultOver(ws.w.Requested, at, ctrl, router); hit {
		r.catchUp = append(r.catchUp, micros(max(0, at-end)))
		return
	}
	class := int(r.net.region[ctrl])*r.net.nR + int(r.net.region[router])
	r.pairDelay[class] = append(r.pairDelay[class], micros(at-ws.acked))
	if r.policy.on { // by_kind: kept only with policy changes, whose delays it compares
		kd := &r.kindDelay[ws.w.Kind]
		if *kd == nil {
			*kd = make([][]int32, len(r.pairDelay))
		}
		(*kd)[class] = append((*kd)[class], micros(at-ws.acked))
	}
	r.pairE2E[class] = append(r.pairE2E[class], micros(at-ws.w.Requested))
	if at < ws.acked {
		r.beforeAck++
	}
}

func micros(d time.Duration) int32 {
	us := d / time.Microsecond
	return int32(min(max(us, math.MinInt32), math.MaxInt32))
}

// acked implements Env.Acked.
func (r *run) acked(id EventID) {
	if id < 0 || int(id) >= len(r.writes) {
		return
	}
	ws := &r.writes[id]
	if ws.acked >= 0 {
		return
	}
	ws.acked = r.now
	r.issueLat = append(r.issueLat, micros(r.now-ws.w.Requested))
	for _, e := range ws.early {
		r.recordPair(ws, e.router, e.at)
	}
	ws.early = nil
	r.onAck(ws.w)
}

// answer implements Env.Answer.
func (r *run) answer(router NodeID, id int32, v Verdict) {
	if id < 0 || int(id) >= len(r.connects) {
		return
	}
	c := &r.connects[id]
	if c.answered || !c.asked || c.router != router {
		return
	}
	c.answered = true
	c.verdict = v
	r.pending--
	cert := r.certs[c.cert]
	r.tracef("answer %s connect=%d cert=%d: %v", r.cl.Nodes[router].Name, id, c.cert, v)
	if c.revoke >= 0 {
		if v == Accept {
			rw := &r.writes[c.revoke]
			reach := r.net.firstReachable(router, rw.w.Controller, rw.acked)
			if reach != never && r.now > reach+revokedGrace {
				if rw.w.Kind == WritePolicy {
					r.stat.unauthorizedAccepts++
				} else {
					r.stat.revokedAccepts++
				}
			}
		}
		return
	}
	if v == Accept {
		return
	}
	s := &r.sessions[cert.session]
	unrevoked := (s.revokeAt < 0 || s.revokeAt > r.now) && !r.denied(cert.session, r.now)
	if unrevoked && r.net.reachableAt(router, cert.issuer, c.query) && r.net.reachableAt(router, cert.issuer, r.now) {
		r.stat.falseRejects++
		c.falseReject = true
	}
}
