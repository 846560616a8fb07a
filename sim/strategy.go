package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// NodeID identifies a simulated node: its index in Cluster.Nodes. Nodes are
// numbered region by region in topology order, controllers before routers.
type NodeID int32

// Role is what a node is.
type Role uint8

// Roles.
const (
	RoleController Role = iota
	RoleRouter
)

func (r Role) String() string {
	if r == RoleController {
		return "controller"
	}
	return "router"
}

// NodeInfo describes one simulated node.
type NodeInfo struct {
	ID     NodeID
	Name   string // "controller/<region>/<i>" or "router/<region>/<i>"
	Role   Role
	Region int // index into Cluster.Topology.Regions
	Index  int // i in the name
}

// EventID identifies one write of the workload (an issue, a rotation or a
// revocation): a dense index from 0 in the order writes reach controllers.
type EventID int32

// SessionID and CertID identify the workload's sessions and certificates
// (dense indexes from 0). A strategy maps them to its own keys, such as a
// session id string and a serial.
type (
	SessionID int32
	CertID    int32
)

// WriteKind is the kind of a workload write.
type WriteKind uint8

// Write kinds, as in workload.mix.
const (
	WriteIssue  WriteKind = iota + 1 // login: a new session and its first certificate
	WriteRotate                      // a new certificate for the same session
	WriteRevoke                      // revocation of a session
	WritePolicy                      // a policy change that removes the session's access (policy.go)
)

func (k WriteKind) String() string {
	switch k {
	case WriteIssue:
		return "issue"
	case WriteRotate:
		return "rotate"
	case WriteRevoke:
		return "revoke"
	case WritePolicy:
		return "policy"
	}
	return fmt.Sprintf("WriteKind(%d)", k)
}

// Write is one certificate event the workload asks a controller to write.
// The simulator owns it; it is immutable once passed to Controller.Write, so
// strategies may keep and share the pointer.
type Write struct {
	ID         EventID
	Kind       WriteKind
	Session    SessionID
	Cert       CertID // issue, rotate: the new certificate; revoke: the session's current one
	Identity   int32  // the client, one identity per session
	Controller NodeID // the controller the client sent the request to
	Requested  time.Duration
	// Group is 1 + the session's access group when the workload makes
	// policy changes (policy.go): its role at login, or the group a
	// policy change removes. 0 otherwise.
	Group int32
}

// Message is what a node sends with Env.Send. The simulator never looks into
// Payload: it is shared, immutable data (a pointer, so that passing it
// allocates nothing) that the receiver gets as it was sent.
type Message struct {
	Payload any
	Size    int32  // bytes on the wire, framing included; see MaxDatagram
	Kind    uint16 // strategy-defined type, shown in traces
	// State marks messages that carry the strategy's state (pushes, repairs,
	// anti-entropy, pulls and their answers). Only those count in the
	// report's bytes and messages; acknowledgements and probes do not.
	State bool
	// Reliable sends over a stream (TCP): the message is never lost, but
	// each lost attempt adds a retransmission timeout; see Env.Send.
	Reliable bool
}

// Timer is what a node arms with Env.After and gets back in Node.Timer.
type Timer struct {
	Kind uint16
	Arg  int64
	Data any
}

// Admission is a router's question "would you admit this certificate now?",
// asked when a client's TLS handshake reaches the router.
type Admission struct {
	Connect int32     // pass to Env.Answer
	Cert    CertID    // the certificate presented
	Session SessionID // its session
	Issuer  NodeID    // the controller that wrote the certificate (named in the chain)
	// CertWrite is the write that created the certificate. A real router
	// does not know it; the baselines, whose state is a set of EventIDs,
	// use it in place of a lookup by serial.
	CertWrite EventID
	// Group is as in Write: 1 + the session's access group, 0 without
	// policy changes in the workload.
	Group int32
}

// Verdict is a router's answer to an Admission.
type Verdict uint8

// Verdicts.
const (
	Accept        Verdict = iota + 1
	RejectUnknown         // not in the router's state (after a pull, if the strategy pulls)
	RejectRevoked         // known, and its session or serial is revoked
	RejectDenied          // admitted, but no policy grants it the service any more
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case RejectUnknown:
		return "reject-unknown"
	case RejectRevoked:
		return "reject-revoked"
	case RejectDenied:
		return "reject-denied"
	}
	return fmt.Sprintf("Verdict(%d)", v)
}

// Strategy is a dissemination protocol under test. The simulator calls
// NewNode once per simulated node, in NodeID order, before time starts.
type Strategy interface {
	// NewNode returns the node for env.ID(). A controller's node must
	// implement Controller, a router's node Router.
	NewNode(env *Env) Node
}

// Node is one simulated node of a strategy. Every method runs on the
// simulator's single goroutine, in virtual time (now), and must not block;
// a node acts only through its Env. Messages, timers and membership changes
// reach a node only while it is up.
type Node interface {
	// Start is called once, at time 0, before anything else; arm timers here.
	Start(now time.Duration)
	// Receive delivers a message that node from sent with Env.Send.
	Receive(now time.Duration, from NodeID, m Message)
	// Timer fires a timer armed with Env.After.
	Timer(now time.Duration, t Timer)
	// MembershipChanged says that the node's membership view (Env.Up) may
	// have changed.
	MembershipChanged(now time.Duration)
	// Restart is called when the node comes back from a crash. While it was
	// down it received nothing and its timers were cancelled. It must drop
	// what a real process would lose (volatile state, queues, in-flight
	// exchanges), keep what it persisted, and re-arm its timers.
	Restart(now time.Duration)
	// Digest summarises the node's replicated state; live nodes with equal
	// digests at the end count as converged.
	Digest() uint64
}

// Controller is the node of a controller.
type Controller interface {
	Node
	// Write asks the controller to write w, a request that has just reached
	// it. The node calls Env.Acked(w.ID) once the write is acknowledged to
	// the client (before Write returns for a local write, later for a
	// quorum write), and Env.Applied(w.ID) on every node as soon as that
	// node can enforce it, this one included.
	Write(now time.Duration, w *Write)
}

// Router is the node of a router.
type Router interface {
	Node
	// Admit asks whether the router admits q now. It answers with
	// Env.Answer(q.Connect, verdict), at once or later (after a pull on
	// miss); a question left unanswered counts as nothing.
	Admit(now time.Duration, q Admission)
}

// kindNamer is optionally implemented by a Strategy to name its message
// kinds in traces.
type kindNamer interface {
	KindName(kind uint16) string
}

// Factory creates a strategy for one run over c.
type Factory func(c *Cluster) (Strategy, error)

var registry = struct {
	sync.Mutex
	m map[string]Factory
}{m: map[string]Factory{}}

// register makes a strategy available under name to Run and to meshsim's
// --strategy (Strategies). It panics if name is taken, like http.Handle.
// The strategies register from init; a driver outside the package passes
// its own to NewRawRun.
func register(name string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup || name == "" || f == nil {
		panic(fmt.Sprintf("sim: register(%q): name taken, empty or nil factory", name))
	}
	registry.m[name] = f
}

// Strategies returns the registered strategy names, sorted.
func Strategies() []string {
	registry.Lock()
	defer registry.Unlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupStrategy(name string) (Factory, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.m[name]
	return f, ok
}

// Cluster is the read-only description of a run that strategies get: the
// nodes, their regions and the network's base delays. It is shared by all
// nodes and never changes during a run.
type Cluster struct {
	Topology    *Topology
	Nodes       []NodeInfo // by NodeID
	Controllers []NodeID   // in NodeID order
	Routers     []NodeID   // in NodeID order
	// RegionControllers and RegionRouters list each region's nodes.
	RegionControllers [][]NodeID
	RegionRouters     [][]NodeID
	// RecordBytes, when positive, is the size WriteBytes gives every write;
	// zero means the real encoding (Config.RecordBytes).
	RecordBytes int
	// MeshEagerTrees is Config.MeshEagerTrees.
	MeshEagerTrees int
	// Params are the strategies' parameters (Config.Params).
	Params     Params
	delay      []time.Duration // one-way base delay by region pair, R*R
	byName     map[string]NodeID
	writeBytes []int32 // WriteBytes by EventID, computed on first use
}

func newCluster(t *Topology, recordBytes int) *Cluster {
	c := &Cluster{Topology: t, RecordBytes: recordBytes, byName: map[string]NodeID{}}
	nR := len(t.Regions)
	c.RegionControllers = make([][]NodeID, nR)
	c.RegionRouters = make([][]NodeID, nR)
	for ri, r := range t.Regions {
		for i := 0; i < r.Controllers; i++ {
			id := NodeID(len(c.Nodes))
			c.Nodes = append(c.Nodes, NodeInfo{ID: id, Name: fmt.Sprintf("controller/%s/%d", r.Name, i), Role: RoleController, Region: ri, Index: i})
			c.Controllers = append(c.Controllers, id)
			c.RegionControllers[ri] = append(c.RegionControllers[ri], id)
		}
		for i := 0; i < r.Routers; i++ {
			id := NodeID(len(c.Nodes))
			c.Nodes = append(c.Nodes, NodeInfo{ID: id, Name: fmt.Sprintf("router/%s/%d", r.Name, i), Role: RoleRouter, Region: ri, Index: i})
			c.Routers = append(c.Routers, id)
			c.RegionRouters[ri] = append(c.RegionRouters[ri], id)
		}
	}
	for _, n := range c.Nodes {
		c.byName[n.Name] = n.ID
	}
	c.delay = make([]time.Duration, nR*nR)
	for a := range nR {
		for b := range nR {
			c.delay[a*nR+b] = t.RegionDelay(a, b)
		}
	}
	return c
}

// NumRegions returns the number of regions.
func (c *Cluster) NumRegions() int { return len(c.RegionRouters) }

// RegionDelay returns the one-way base delay, without jitter, between
// regions a and b.
func (c *Cluster) RegionDelay(a, b int) time.Duration {
	return c.delay[a*len(c.RegionRouters)+b]
}

// BaseDelay returns the one-way base delay, without jitter, between nodes.
func (c *Cluster) BaseDelay(a, b NodeID) time.Duration {
	return c.RegionDelay(c.Nodes[a].Region, c.Nodes[b].Region)
}

// NodeByName returns the id of the node with that name.
func (c *Cluster) NodeByName(name string) (NodeID, bool) {
	id, ok := c.byName[name]
	return id, ok
}

// Env is a node's handle on the simulator: its identity, the clock, its
// random source, the network and the workload's bookkeeping. It is valid
// for the whole run and must only be used from the node's own callbacks.
type Env struct {
	id  NodeID
	r   *run
	rng *rand.Rand
}

// ID returns the node's id.
func (e *Env) ID() NodeID { return e.id }

// Info returns the node's description.
func (e *Env) Info() NodeInfo { return e.r.cl.Nodes[e.id] }

// Cluster returns the run's read-only description.
func (e *Env) Cluster() *Cluster { return e.r.cl }

// Now returns the virtual time: the time since the run started.
func (e *Env) Now() time.Duration { return e.r.nowIn(e.r.shardOf(e.id)) }

// epoch is the wall-clock time at which every run starts, so that code
// that wants a time.Time (HLC timestamps, certificate validity) gets the
// same values in every run.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Time returns the virtual time as a wall-clock time: Now after a fixed
// epoch, 2025-01-01 00:00 UTC.
func (e *Env) Time() time.Time { return epoch.Add(e.Now()) }

// Rand returns the node's own deterministic random source, seeded from the
// run's seed and the node id.
func (e *Env) Rand() *rand.Rand { return e.rng }

// Send sends m to node to.
//
// A datagram (m.Reliable false) takes the one-way base delay of the pair
// times uniform(1, 1+jitter), is lost independently with the topology's
// loss probability, and is dropped when a partition separates the nodes at
// sending or at arrival, or when the receiver is down at arrival. It must
// fit in MaxDatagram bytes: a larger one is dropped and counted, as
// memberlist never sends it.
//
// A reliable message is a transfer on an open stream (TCP). It is never
// lost to the loss rate: each attempt (ceil(Size/MaxDatagram) packets) is
// lost with the probability that any of its packets is, and each lost
// attempt adds a retransmission timeout (200ms, doubling). A partition
// delays it: it gets through at the first retransmission after the heal
// (streams give up after 15 minutes). It is dropped when the receiver is
// down at arrival or restarted since the send (the connection broke).
func (e *Env) Send(to NodeID, m Message) { e.r.send(e.id, to, m) }

// After arms a timer that fires Node.Timer(t) d from now, unless the node
// crashes first.
func (e *Env) After(d time.Duration, t Timer) { e.r.after(e.id, d, t) }

// Up reports whether this node's membership view holds peer as up: a peer
// that crashed, or that a partition cut off from this node, is seen down
// membership.detection after it happened; a restart or a heal is seen at
// once. A node sees itself as up.
func (e *Env) Up(peer NodeID) bool { return e.r.net.seenUp(e.id, peer, e.Now()) }

// Applied reports that this node can now enforce write id. Calls after the
// first for the same node and write are ignored.
func (e *Env) Applied(id EventID) {
	e.r.report(e.r.shardOf(e.id), note{kind: noteApplied, node: e.id, id: int32(id)})
}

// Acked reports that write id is acknowledged to its client. Calls after
// the first are ignored.
func (e *Env) Acked(id EventID) {
	e.r.report(e.r.shardOf(e.id), note{kind: noteAcked, node: e.id, id: int32(id)})
}

// Refused reports that this controller refuses write id, as a production
// controller does with 503 (clock_skew, say) instead of acknowledging it:
// the client tries the next nearest reachable controller (docs/meshsim-model.md,
// "The workload"), and after a second round counts the write unavailable
// once unavailableAfter (5s) has passed since its request. A node must not
// keep w, nor act on it, once it refused it; calls for an acknowledged
// write are ignored.
func (e *Env) Refused(id EventID) {
	e.r.report(e.r.shardOf(e.id), note{kind: noteRefused, node: e.id, id: int32(id)})
}

// Answer answers Admission q with connect id q.Connect.
func (e *Env) Answer(connect int32, v Verdict) {
	e.r.report(e.r.shardOf(e.id), note{kind: noteAnswer, node: e.id, id: connect, verdict: v})
}

// Write returns the write with that id. The baselines use it as the content
// of the record that an EventID stands for.
func (e *Env) Write(id EventID) *Write { return e.r.writes[id].w }
