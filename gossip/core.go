package gossip

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
)

// Role is a node's role in the mesh, as announced in its metadata. It
// steers paths only; trust comes from signatures.
type Role uint8

const (
	RoleController Role = 1
	RoleRouter     Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleController:
		return "controller"
	case RoleRouter:
		return "router"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses "controller" or "router".
func ParseRole(s string) (Role, error) {
	switch s {
	case "controller":
		return RoleController, nil
	case "router":
		return RoleRouter, nil
	}
	return 0, fmt.Errorf("gossip: unknown role %q", s)
}

// Member is another node as membership sees it.
type Member struct {
	Name   string
	Role   Role
	Region string
}

// Config configures a Core. A Config is frozen once passed to NewCore.
type Config struct {
	Name   string // this node's name, unique in the mesh
	Role   Role
	Region string

	// Fanout is how many children a node has in a region tree. Higher
	// means fewer hops inside a region and more packets per relay.
	Fanout int
	// Trees is how many independent trees a batch travels in each region;
	// every node receives one copy per tree. Two survive any single loss.
	Trees int
	// EagerTrees is how many of them carry the records inside a region.
	// The others are lazy (Plumtree's lazy push): across regions their
	// root gets the records, so a lost cross-region packet costs no
	// cross-region round trip, but inside the region they carry only the
	// batch's dots, and a node that lacks them after LazyDelay asks the
	// neighbour that announced them, one intra-region round trip away.
	// The roots pass each batch to one another (passToOtherRoots), so
	// all trees start within a hop of each other and LazyDelay need only
	// cover the jitter between a node's paths in two trees.
	EagerTrees int
	LazyDelay  time.Duration
	// PacketBudget is the largest message sent best-effort, in bytes;
	// larger ones go reliably. memberlist's UDP budget after label and
	// encryption is about 1,300.
	PacketBudget int
	// AntiEntropyInterval is how often a node syncs with one peer.
	AntiEntropyInterval time.Duration
	// AntiEntropyBudget caps the records in one anti-entropy or repair
	// answer, in bytes; a peer further behind asks again at once.
	AntiEntropyBudget int
	// RepairDelay is how long a gap may wait for a reordered packet before
	// it is asked for; RepairTimeout, how long before asking again.
	RepairDelay   time.Duration
	RepairTimeout time.Duration
	// WantTimeout is how long one wave of a pull waits for answers.
	WantTimeout time.Duration
	// NegativeTTL is how long an authoritative "not issued" is cached.
	NegativeTTL time.Duration
	// MaxHeld caps records held for an unknown signer or a future HLC;
	// HeldTTL is how long one waits before it is dropped and counted.
	MaxHeld int
	HeldTTL time.Duration
	// MaxOffset is the clock offset beyond which a record is held.
	MaxOffset time.Duration
	// View, if set, replaces the core's own membership view (SetMember and
	// RemoveMember then do nothing). The simulator uses it.
	View View
}

// DefaultConfig returns the defaults for a node; the caller sets Name,
// Role and Region.
func DefaultConfig() Config {
	return Config{
		Fanout:              16,                     // 16 and 256 nodes within 1 and 2 hops
		Trees:               2,                      // survives one lost packet per node
		EagerTrees:          2,                      // 1 receives ~35% fewer bytes for ~1ms more excess p99 (docs/meshsim.md, "Bytes")
		LazyDelay:           5 * time.Millisecond,   // above the jitter between two trees' paths to a node
		PacketBudget:        DefaultPacketBudget,    // memberlist UDP budget after label+GCM
		AntiEntropyInterval: time.Second,            // ~0.04 msgs/event/node at 50 events/s
		AntiEntropyBudget:   256 << 10,              // ~1,000 records per answer
		RepairDelay:         5 * time.Millisecond,   // lets the second tree's copy arrive
		RepairTimeout:       300 * time.Millisecond, // above one cross-region round trip
		WantTimeout:         300 * time.Millisecond, // above one cross-region round trip
		NegativeTTL:         time.Second,
		MaxHeld:             10000,
		HeldTTL:             time.Minute,
		MaxOffset:           crdt.DefaultMaxOffset,
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("gossip: config: empty name")
	case c.Role != RoleController && c.Role != RoleRouter:
		return fmt.Errorf("gossip: config: role %v", c.Role)
	case c.Fanout < 1:
		return fmt.Errorf("gossip: config: fanout %d < 1", c.Fanout)
	case c.Trees < 1 || c.Trees > 4:
		return fmt.Errorf("gossip: config: trees %d not in [1, 4]", c.Trees)
	case c.EagerTrees < 1 || c.EagerTrees > c.Trees:
		return fmt.Errorf("gossip: config: eager trees %d not in [1, trees]", c.EagerTrees)
	case c.LazyDelay < 0 || c.RepairDelay < 0:
		return errors.New("gossip: config: negative delay")
	case c.PacketBudget < 512:
		return fmt.Errorf("gossip: config: packet budget %d < 512", c.PacketBudget)
	case c.AntiEntropyInterval <= 0:
		return fmt.Errorf("gossip: config: anti-entropy interval %v", c.AntiEntropyInterval)
	case c.AntiEntropyBudget < c.PacketBudget:
		return fmt.Errorf("gossip: config: anti-entropy budget %d below packet budget", c.AntiEntropyBudget)
	case c.WantTimeout <= 0 || c.RepairTimeout <= 0 || c.HeldTTL <= 0:
		return errors.New("gossip: config: timeouts must be positive")
	case c.MaxHeld < 0:
		return errors.New("gossip: config: negative max held")
	}
	return nil
}

// recentBatches is how many batch copies a node remembers having forwarded,
// to drop duplicates: seconds of traffic at hundreds of writes a second.
const recentBatches = 1024

// Output is a message to send.
type Output struct {
	To       string
	Msg      *Message
	Reliable bool // over memberlist's stream transport; otherwise one packet
}

// WantResult resolves a Want.
type WantResult struct {
	Serial crdt.Serial
	// Found: the certificate record and the record of its session are
	// now in the store, all that admission needs.
	Found bool
	// Authoritative: the issuer itself said it never issued the serial.
	Authoritative bool
}

// Ready is what a Core has for its driver: messages to send, records merged
// into the store (local writes included), and pulls resolved. The driver
// must send the messages and act on the records before calling Ready again.
type Ready struct {
	Messages []Output
	Applied  []crdt.Record
	Wants    []WantResult
}

// Core is the protocol state machine of one node. It is not safe for
// concurrent use; its driver serialises every call.
type Core struct {
	cfg      Config
	store    *crdt.Store
	verifier crdt.Verifier
	rng      Rand
	clock    *crdt.Clock

	view  View
	own   *memberView // the core's own view, when Config.View is nil
	peers map[string]*peer
	// offsets holds the last clock samples from peers, (received − sent).
	offsets    [32]offsetSample
	offsetsLen int
	offsetsPos int

	out     outbox[Output]
	applied outbox[crdt.Record]
	wants   []WantResult

	forwarded recentSet // (origin, batch, tree) already forwarded
	selfPos   int       // this node's last position in its region's list (selfIndex)
	kids      []string  // forward's scratch buffer for the children it sends to

	repairs map[crdt.Author]*repair
	held    map[crdt.Dot]*heldRecord

	pulls    map[crdt.Serial]*pull
	negative map[crdt.Serial]time.Time

	aeNext  time.Time
	aeRound int

	// synced is set once this node has completed an anti-entropy exchange
	// with a proven peer (see Synced), syncedUnproven once it completed one
	// with a live member that proved nothing (see SyncedUnproven); until
	// synced, exchanging holds the peers it is in an exchange with, and
	// their context once known.
	synced         bool
	syncedUnproven bool
	exchanging     map[string]exchange

	stats Stats
}

// exchange is an anti-entropy exchange in progress before Synced.
type exchange struct {
	ctx    crdt.Context // the peer's context, once known
	proven bool         // ctx came in a proven frame
}

// peer is what a core remembers of a member it synced with. Entries exist
// only for live members of the view (RemoveMember drops them), at most
// maxPeers.
type peer struct {
	lastSync time.Time
	asked    time.Time // when this node last asked it for records (see syncedWith)
	lag      uint64    // records it lacked when it last told us its context
	lagKnown bool
}

type repair struct {
	from    string // who revealed the gap
	upTo    uint64
	due     time.Time
	asked   time.Time // zero until sent
	askedOf string
	tries   int
}

type heldRecord struct {
	rec   crdt.Record
	until time.Time // dropped after this
	retry time.Time // HLC hold: not before this
}

// Stats counts what a Core did. Reasons and types are metric labels.
type Stats struct {
	MessagesIn  MsgCounts
	MessagesOut MsgCounts
	BytesIn     uint64
	BytesOut    uint64
	Applied     uint64
	Rejected    map[string]uint64 // records and messages dropped, by reason
	Pulls       map[string]uint64 // by result: found, not_found, timeout, cached
	Repairs     uint64
}

// MsgCounts counts messages by type (index 0 is unused).
type MsgCounts [MaxMsgType + 1]uint64

// Rand is the core's only source of randomness (batch and want ids, the
// first anti-entropy round, anti-entropy partners and pull targets),
// injected and seeded by the driver so that a simulated run is a pure
// function of its seed. *math/rand/v2.Rand implements it.
type Rand interface {
	Uint64() uint64
	IntN(n int) int
	Int64N(n int64) int64
}

// NewCore returns a Core that replicates into store, verifies received
// records with verifier and draws randomness from rng (seeded by the
// caller, for determinism in simulation).
func NewCore(cfg Config, store *crdt.Store, verifier crdt.Verifier, rng Rand) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Core{
		cfg:      cfg,
		store:    store,
		verifier: verifier,
		rng:      rng,
		clock:    crdt.NewClock(cfg.MaxOffset),
		peers:    make(map[string]*peer),
		repairs:  make(map[crdt.Author]*repair),
		held:     make(map[crdt.Dot]*heldRecord),
		pulls:    make(map[crdt.Serial]*pull),
		negative: make(map[crdt.Serial]time.Time),

		exchanging: make(map[string]exchange),
		stats: Stats{
			Rejected: make(map[string]uint64),
			Pulls:    make(map[string]uint64),
		},
	}
	c.forwarded.init(recentBatches)
	c.view = cfg.View
	if c.view == nil {
		c.own = newMemberView(Member{Name: cfg.Name, Role: cfg.Role, Region: cfg.Region})
		c.view = c.own
	}
	return c, nil
}

// Config returns the core's configuration.
func (c *Core) Config() Config { return c.cfg }

// Store returns the store the core replicates into. Callers may read it
// between calls to the core, never concurrently with them.
func (c *Core) Store() *crdt.Store { return c.store }

// Stats returns the counters. The maps are the core's own: read them
// between calls, never concurrently.
func (c *Core) Stats() *Stats { return &c.stats }

// Now returns an HLC timestamp for a local write at wall time now, above
// every timestamp this node has issued or observed.
func (c *Core) Now(now time.Time) crdt.Timestamp { return c.clock.Now(now) }

// offsetSample is one clock sample: our receive time − peer's send time.
type offsetSample struct {
	peer string
	d    time.Duration
}

// offsetVoters is how many peers the clock offset estimate rests on: the
// most recently heard. Samples come only from proven frames, about one a
// second at a node (anti-entropy requests), so the last 32 span half a
// minute: a median over every peer among them would follow a clock step
// only once most of them had spoken again. Over the last five, three
// fresh samples move it, and a peer whose clock is off, even one that
// speaks often, is one vote of five.
const offsetVoters = 5

// ClockOffset estimates how far this node's clock is from its peers': the
// median, over the offsetVoters peers heard most recently among the last
// proven messages' senders, of each one's latest (our receive time − its
// send time). One vote per peer: a burst of messages from one peer whose
// clock is off (an anti-entropy answer in chunks, say) must not move the
// estimate, or a controller whose clock is fine would refuse writes.
// One-way latency biases it slightly positive.
func (c *Core) ClockOffset() (time.Duration, bool) {
	if c.offsetsLen == 0 {
		return 0, false
	}
	var (
		peers [offsetVoters]string
		offs  [offsetVoters]time.Duration
		n     int
	)
	for i := 0; i < c.offsetsLen && n < offsetVoters; i++ { // newest first
		s := c.offsets[(c.offsetsPos-1-i+len(c.offsets))%len(c.offsets)]
		if !slices.Contains(peers[:n], s.peer) {
			peers[n], offs[n] = s.peer, s.d
			n++
		}
	}
	slices.Sort(offs[:n])
	return offs[n/2], true
}

func (c *Core) sampleOffset(peer string, d time.Duration) {
	c.offsets[c.offsetsPos] = offsetSample{peer, d}
	c.offsetsPos = (c.offsetsPos + 1) % len(c.offsets)
	c.offsetsLen = min(c.offsetsLen+1, len(c.offsets))
}

// View returns the membership view the core uses.
func (c *Core) View() View { return c.view }

// Members returns the known members other than this node, sorted by name.
func (c *Core) Members() []Member {
	var ms []Member
	for _, r := range c.view.Regions() {
		for _, name := range c.view.Region(r) {
			if m, ok := c.view.Member(name); ok && name != c.cfg.Name && c.view.Alive(name) {
				ms = append(ms, m)
			}
		}
	}
	slices.SortFunc(ms, func(a, b Member) int { return compareStrings(a.Name, b.Name) })
	return ms
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SetMember adds or updates a member of the core's own view.
func (c *Core) SetMember(m Member) {
	if c.own == nil || m.Name == c.cfg.Name || m.Name == "" {
		return
	}
	c.own.set(m)
}

// RemoveMember forgets a member that left or failed.
func (c *Core) RemoveMember(name string) {
	if name == c.cfg.Name {
		return
	}
	if c.own != nil {
		c.own.remove(name)
	}
	delete(c.peers, name)
	delete(c.exchanging, name)
}

// Ready returns and clears what the core has for its driver. The slices
// are the driver's to keep: the core never writes to them again.
func (c *Core) Ready() Ready {
	rd := Ready{Messages: c.out.take(), Applied: c.applied.take(), Wants: c.wants}
	c.wants = nil
	return rd
}

// HasReady reports whether Ready would return anything.
func (c *Core) HasReady() bool {
	return len(c.out.buf) > 0 || len(c.applied.buf) > 0 || len(c.wants) > 0
}

func (c *Core) send(to string, m *Message) {
	if to == c.cfg.Name {
		return
	}
	if m.size == 0 {
		if _, err := Encode(m); err != nil {
			// Only our own, well-formed messages get here; an encoding
			// error is a bug, counted rather than crashing the node.
			c.stats.Rejected["encode_error"]++
			return
		}
	}
	c.stats.MessagesOut[m.Type]++
	c.stats.BytesOut += uint64(m.size)
	c.out.add(Output{To: to, Msg: m, Reliable: m.size > c.cfg.PacketBudget})
}

// Publish disseminates records this node wrote, already signed and durably
// stored by the caller. They are merged into the store and pushed along the
// region trees at once.
func (c *Core) Publish(now time.Time, recs []crdt.Record) error {
	var mine []crdt.Record
	for _, r := range recs {
		ok, err := c.store.MergeVerified(r)
		if err != nil {
			return fmt.Errorf("gossip: publish %v: %w", r.Head().Dot(), err)
		}
		if ok {
			mine = append(mine, r)
			c.applied.add(r)
			c.stats.Applied++
		}
	}
	for _, batch := range c.pack(mine, c.cfg.PacketBudget) {
		c.push(now, batch)
	}
	return nil
}

// pack splits records into groups whose push fits budget.
func (c *Core) pack(recs []crdt.Record, budget int) [][]crdt.Record {
	const overhead = 64 + crdt.MaxNameLen // envelope, origin, batch, region
	var out [][]crdt.Record
	var cur []crdt.Record
	size := overhead
	for _, r := range recs {
		n := crdt.EncodedSizeHint(r)
		if len(cur) > 0 && size+n > budget {
			out = append(out, cur)
			cur, size = nil, overhead
		}
		cur = append(cur, r)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// push starts a batch down every tree of every region.
func (c *Core) push(now time.Time, recs []crdt.Record) {
	batch := c.rng.Uint64()
	var buf []string
	var ihave *Message
	for _, region := range c.view.Regions() {
		members := c.view.Region(region)
		for t := 0; t < c.cfg.Trees; t++ {
			m := &Message{Type: MsgPush, SentAt: crdt.MillisOf(now), Origin: c.cfg.Name,
				Batch: batch, Tree: uint8(t), Region: region, Records: recs}
			l := newLayout(members, c.cfg.Name, batch, region, t, c.cfg.Fanout)
			if region == c.cfg.Region {
				buf = c.liveChildren(&l, c.cfg.Name, buf[:0])
				if t >= c.cfg.EagerTrees {
					if ihave == nil || ihave.Tree != uint8(t) {
						ihave = lazyOf(m)
					}
					m = ihave
				}
			} else {
				buf = c.liveRoot(&l, buf[:0])
			}
			for _, to := range buf {
				c.send(to, m)
			}
		}
	}
	c.forwarded.add(keyOf(batch, 0))
}

// Step processes a message received from sender from. Only a proven
// sender's word counts where the sender is trusted (see Sender); answers go
// to from.Name only if it is a live member of the view, so that a made-up
// name costs no work and creates no state.
func (c *Core) Step(now time.Time, from Sender, m *Message) {
	if m.Type <= MaxMsgType {
		c.stats.MessagesIn[m.Type]++
	}
	c.stats.BytesIn += uint64(m.size)
	from = c.checkSender(from)
	member := c.isMember(from.Name)
	// Sample the clock of the member that sent this message only, and only
	// once it proved who it is: any holder of the gossip key can send
	// frames under made-up names with any SentAt. A relayed push or
	// announcement carries its origin's SentAt: sampling it would weight
	// the estimate by how much each controller writes, and two controllers
	// 3s either side of the mesh (6s apart, within the max offset) would
	// each see the other's pushes dominate and refuse writes.
	if from.Proven && m.SentAt != 0 && (m.Origin == from.Name || (m.Type != MsgPush && m.Type != MsgIHave)) {
		c.sampleOffset(from.Name, time.Duration(crdt.MillisOf(now)-m.SentAt)*time.Millisecond)
	}
	switch m.Type {
	case MsgPush:
		// Relay only what verified: a forged push stops at the first
		// honest node instead of running down a whole region tree.
		if c.ingest(now, from.Name, m.Records, nil) {
			if from.Name == m.Origin && c.cfg.EagerTrees < c.cfg.Trees {
				c.passToOtherRoots(m)
			}
			c.forward(m)
		}
	case MsgIHave:
		c.forward(m)
		c.announced(now, from.Name, m.Intervals)
	case MsgRepairReq:
		if member {
			c.answerRepair(now, from.Name, m.Repair)
		}
	case MsgSyncReq:
		c.notePeerContext(from, m.Context)
		if member {
			c.answerSync(now, from.Name, m.Context, true)
			c.syncedWith(now, from, false)
		}
	case MsgDelta:
		c.ingest(now, from.Name, m.Records, m.Intervals)
		if member {
			c.syncedWith(now, from, true)
		}
		if m.Context != nil {
			// The peer has things we lack and asks for what it lacks.
			c.notePeerContext(from, m.Context)
			if member {
				c.answerSync(now, from.Name, m.Context, false)
			}
		}
		c.deltaReceived(from, m.More)
		if m.More && member {
			c.sendSync(now, from.Name)
		}
		if len(c.repairs) > 0 {
			c.repairAnswered(now, from.Name)
		}
	case MsgWantReq:
		if member {
			c.answerWant(now, from.Name, m)
		}
	case MsgWantResp:
		c.onWantResp(now, from, m)
	default:
		c.stats.Rejected["unknown_type"]++
	}
}

// checkSender takes back the proof of a controller the root revoked: its
// key may be in a thief's hands, and its name must stop counting.
func (c *Core) checkSender(from Sender) Sender {
	if from.Proven && from.Role == RoleController {
		if _, revoked := c.store.SignerRevoked(from.Name); revoked {
			return Sender{Name: from.Name}
		}
	}
	return from
}

// isMember reports whether name is a live member of the view other than
// this node.
func (c *Core) isMember(name string) bool {
	return name != c.cfg.Name && name != "" && c.view.Alive(name)
}

// forward relays a push to this node's children in the tree it came by.
func (c *Core) forward(m *Message) {
	if m.Region != c.cfg.Region || int(m.Tree) >= c.cfg.Trees {
		return
	}
	k := keyOf(m.Batch, m.Tree)
	if c.forwarded.has(k) {
		return
	}
	c.forwarded.add(k)
	members := c.view.Region(m.Region)
	self, ok := c.selfIndex(members)
	if !ok {
		return
	}
	l := newLayout(members, m.Origin, m.Batch, m.Region, int(m.Tree), c.cfg.Fanout)
	children := c.liveChildrenAt(&l, self, c.kids[:0])
	c.kids = children[:0] // send does not forward: the buffer is free again
	if m.Type == MsgPush && int(m.Tree) >= c.cfg.EagerTrees && len(children) > 0 {
		m = lazyOf(m) // the root of a lazy tree announces, it does not carry
	}
	for _, to := range children {
		if to != m.Origin {
			c.send(to, m)
		}
	}
}

// passToOtherRoots hands a push that came straight from its origin in
// another region, to this node as the root of one of this region's trees,
// to the roots of the region's other trees. With a lazy tree, its root
// announces what it gets and the eager tree's root carries it: passed on,
// both trees start within one intra-region hop of each other, so an
// announcement reaches a node about when the eager copy does, LazyDelay
// can be short, and a cross-region copy lost to either root costs one
// intra-region hop instead of a pull by every node of the region.
func (c *Core) passToOtherRoots(m *Message) {
	if m.Region != c.cfg.Region {
		return
	}
	members := c.view.Region(m.Region)
	if _, ok := slices.BinarySearch(members, m.Origin); ok {
		return // the origin's own region: it is the root of every tree
	}
	var buf [4]string
	for t := range c.cfg.Trees {
		if t == int(m.Tree) {
			continue
		}
		l := newLayout(members, m.Origin, m.Batch, m.Region, t, c.cfg.Fanout)
		for _, to := range c.liveRoot(&l, buf[:0]) {
			if to == c.cfg.Name {
				continue
			}
			pass := *m
			pass.Tree, pass.size = uint8(t), 0
			c.send(to, &pass)
		}
	}
}

// lazyOf returns the announcement of push m: its dots as intervals.
func lazyOf(m *Message) *Message {
	return &Message{Type: MsgIHave, SentAt: m.SentAt, Origin: m.Origin, Batch: m.Batch,
		Tree: m.Tree, Region: m.Region, Intervals: dotRuns(m.Records)}
}

// dotRuns compresses records' dots into runs of consecutive seqs.
func dotRuns(recs []crdt.Record) []crdt.Interval {
	var ivs []crdt.Interval
	for _, r := range recs {
		h := r.Head()
		if n := len(ivs); n > 0 && ivs[n-1].Author == h.Author && ivs[n-1].To+1 == h.Seq {
			ivs[n-1].To = h.Seq
			continue
		}
		ivs = append(ivs, crdt.Interval{Author: h.Author, From: h.Seq - 1, To: h.Seq})
	}
	return ivs
}

// announced handles the dots a lazy tree announced: any this node lacks
// is asked from the announcer after LazyDelay, unless the eager copy comes
// first.
func (c *Core) announced(now time.Time, from string, ivs []crdt.Interval) {
	for _, iv := range ivs {
		if iv.To-iv.From > MaxRecordsPerMsg {
			c.stats.Rejected["oversized_ihave"]++
			return
		}
		// Every seq up to the author's contiguous one is covered: look
		// above it only, so that announcing dots the node already holds
		// costs O(1), not a walk of the interval.
		for seq := max(iv.From, c.store.Contiguous(iv.Author)) + 1; seq <= iv.To; seq++ {
			if !c.store.Has(crdt.Dot{Author: iv.Author, Seq: seq}) {
				c.scheduleRepair(now, from, iv.Author, iv.To, c.cfg.LazyDelay)
				break
			}
		}
	}
}

// ingest verifies and merges received records. Intervals are covered only
// for authors all of whose records in the message were merged or already
// covered: a held or refused record leaves its gap open. It reports whether
// every record verified (merged, already covered, or held only until local
// time reaches its HLC); only such a push is relayed.
func (c *Core) ingest(now time.Time, from string, recs []crdt.Record, intervals []crdt.Interval) bool {
	var incomplete map[crdt.Author]bool
	signers := false
	genuine := true
	for _, r := range recs {
		res := c.accept(now, r)
		switch res {
		case acceptMerged:
			if _, ok := r.(*crdt.SignerRecord); ok {
				signers = true
			}
			c.noteGap(now, from, r.Head())
		case acceptHeld, acceptHeldSigner, acceptRefused:
			if res != acceptHeld {
				genuine = false
			}
			if incomplete == nil {
				incomplete = make(map[crdt.Author]bool)
			}
			incomplete[r.Head().Author] = true
		}
	}
	if signers {
		c.retryHeld(now, true)
	}
	for _, iv := range intervals {
		if !incomplete[iv.Author] {
			c.store.CoverInterval(iv, crdt.MillisOf(now))
		}
	}
	return genuine
}

type acceptResult int

const (
	acceptDuplicate  acceptResult = iota
	acceptMerged                  // verified and merged
	acceptHeld                    // verified, waits for local time to reach its HLC
	acceptHeldSigner              // waits for its author's signer record
	acceptRefused
)

// accept verifies and merges one record.
func (c *Core) accept(now time.Time, r crdt.Record) acceptResult {
	h := r.Head()
	if c.store.Has(h.Dot()) {
		return acceptDuplicate
	}
	if _, ok := c.held[h.Dot()]; ok {
		return acceptHeld
	}
	if err := c.verify(r); err != nil {
		if errors.Is(err, trust.ErrUnknownSigner) {
			if c.hold(now, r, time.Time{}) == acceptHeld {
				return acceptHeldSigner
			}
			return acceptRefused
		}
		if errors.Is(err, trust.ErrNotCreator) {
			// Genuinely signed by its author, so its dot is covered: no
			// node waits for it, and the record never counts.
			c.store.Refuse(r)
		}
		c.stats.Rejected[rejectReason(err)]++
		return acceptRefused
	}
	if _, err := c.clock.Observe(h.HLC, now); err != nil {
		var ahead *crdt.AheadError
		if errors.As(err, &ahead) {
			// Held until local time reaches the timestamp itself, not
			// just comes within the max offset of it: merged any
			// earlier, it would drag this node's clock ahead of its
			// wall, and the node's own writes would then be held
			// elsewhere in turn.
			return c.hold(now, r, now.Add(ahead.Ahead()))
		}
	}
	ok, err := c.store.MergeVerified(r)
	switch {
	case errors.Is(err, crdt.ErrTooFarAhead):
		// Anti-entropy brings it in order.
		c.stats.Rejected["too_far_ahead"]++
		return acceptRefused
	case errors.Is(err, crdt.ErrAuthorRevoked):
		// Written by a controller after the root revoked it: dropped, but
		// its dot is covered, so it does not hold its interval open.
		c.stats.Rejected["author_revoked"]++
		return acceptDuplicate
	case err != nil:
		c.stats.Rejected[rejectReason(err)]++
		return acceptRefused
	case !ok:
		return acceptDuplicate
	}
	c.applied.add(r)
	c.stats.Applied++
	return acceptMerged
}

// SharedVerifier is implemented by verifiers that check a record object
// once and remember the verdict, as the simulator's does: it shares one
// immutable record among all simulated nodes (ARCHITECTURE.md,
// "Simulation"), so encoding its signed bytes at every node would be waste.
type SharedVerifier interface {
	crdt.Verifier
	VerifyShared(r crdt.Record) error
}

func (c *Core) verify(r crdt.Record) error {
	if sv, ok := c.verifier.(SharedVerifier); ok {
		return sv.VerifyShared(r)
	}
	return crdt.Verify(r, c.verifier)
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, crdt.ErrInvalid):
		return "invalid"
	case errors.Is(err, crdt.ErrAuthorRevoked):
		return "author_revoked"
	case errors.Is(err, crdt.ErrTooManyAuthors):
		return "too_many_authors"
	case errors.Is(err, trust.ErrUnknownSigner):
		return "unknown_signer"
	case errors.Is(err, trust.ErrSignerExpired):
		return "signer_expired"
	case errors.Is(err, trust.ErrBadSigner):
		return "bad_signer"
	case errors.Is(err, trust.ErrBadRevocation):
		return "bad_revocation"
	case errors.Is(err, trust.ErrNotCreator):
		return "not_creator"
	}
	return "bad_signature"
}

func (c *Core) hold(now time.Time, r crdt.Record, retry time.Time) acceptResult {
	if len(c.held) >= c.cfg.MaxHeld {
		c.stats.Rejected["held_full"]++
		return acceptRefused
	}
	c.held[r.Head().Dot()] = &heldRecord{rec: r, until: now.Add(c.cfg.HeldTTL), retry: retry}
	return acceptHeld
}

// retryHeld merges held records whose reason to wait has passed: their
// HLC hold ran out, or, when signers is set, a signer record arrived. It
// drops those held longer than HeldTTL.
func (c *Core) retryHeld(now time.Time, signers bool) {
	if len(c.held) == 0 {
		return
	}
	dots := make([]crdt.Dot, 0, len(c.held))
	for d := range c.held {
		dots = append(dots, d)
	}
	// Oldest first, so an author's seqs merge in order.
	slices.SortFunc(dots, func(a, b crdt.Dot) int {
		if c := compareStrings(a.Author.Name, b.Author.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Author.Incarnation, b.Author.Incarnation); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	mergedSigner := false
	for _, d := range dots {
		h := c.held[d]
		if !now.Before(h.until) {
			delete(c.held, d)
			c.stats.Rejected["held_expired"]++
			continue
		}
		due := signers && h.retry.IsZero() || !h.retry.IsZero() && !now.Before(h.retry)
		if !due {
			continue
		}
		delete(c.held, d)
		switch c.accept(now, h.rec) {
		case acceptHeld, acceptHeldSigner:
			c.held[d].until = h.until // still waiting: the first deadline stands
		case acceptMerged:
			if _, ok := h.rec.(*crdt.SignerRecord); ok {
				mergedSigner = true
			}
		}
	}
	// A signer record held for the clock has just merged: the records
	// waiting for a signer may be its author's.
	if mergedSigner && !signers {
		c.retryHeld(now, true)
	}
}

// noteGap schedules a repair when h's seq leaves a gap behind it.
func (c *Core) noteGap(now time.Time, from string, h *crdt.Header) {
	have := c.store.Contiguous(h.Author)
	if h.Seq <= have+1 {
		return
	}
	c.scheduleRepair(now, from, h.Author, h.Seq-1, c.cfg.RepairDelay)
}

func (c *Core) scheduleRepair(now time.Time, from string, a crdt.Author, upTo uint64, delay time.Duration) {
	if !c.isMember(from) {
		from = a.Name // a made-up name would only cost RepairTimeout
	}
	rp := c.repairs[a]
	if rp == nil {
		c.repairs[a] = &repair{from: from, upTo: upTo, due: now.Add(delay)}
		return
	}
	rp.upTo = max(rp.upTo, upTo)
}

// answerRepair sends what this node has of the requested interval.
func (c *Core) answerRepair(now time.Time, to string, iv crdt.Interval) {
	if iv.To <= iv.From {
		return
	}
	have := c.store.Contiguous(iv.Author)
	// The interval comes from a peer: walk at most what this node could
	// hold of it, never the 2^64 seqs a forged one may claim.
	top := min(iv.To, have+crdt.MaxSeqAhead)
	var recs []crdt.Record
	used := 0
	last := iv.From
	for seq := iv.From + 1; seq <= top; seq++ {
		r := c.store.Get(crdt.Dot{Author: iv.Author, Seq: seq})
		if r != nil {
			n := crdt.EncodedSizeHint(r)
			if used > 0 && used+n > c.cfg.AntiEntropyBudget {
				break
			}
			used += n
			recs = append(recs, r)
		}
		last = seq
	}
	m := &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now), Records: recs}
	if top := min(last, have); top > iv.From {
		m.Intervals = []crdt.Interval{{Author: iv.Author, From: iv.From, To: top}}
	}
	// Answer even with nothing, so the asker can turn to the author at once.
	c.send(to, m)
}

// sendSync starts an anti-entropy exchange with to, a live member.
func (c *Core) sendSync(now time.Time, to string) {
	if p := c.peer(to); p != nil {
		p.lastSync, p.asked = now, now
	}
	if !c.synced {
		if _, ok := c.exchanging[to]; !ok && len(c.exchanging) < MaxExchanging {
			c.exchanging[to] = exchange{}
		}
	}
	c.send(to, &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(now), Context: c.store.Context()})
}

// answerSync sends a peer what it lacks given its context. When the peer
// has things this node lacks and asked (a SyncReq), the answer carries this
// node's context so the peer sends them back.
func (c *Core) answerSync(now time.Time, to string, theirs crdt.Context, askBack bool) {
	d := c.store.DeltaSince(theirs, c.cfg.AntiEntropyBudget)
	m := &Message{Type: MsgDelta, SentAt: crdt.MillisOf(now), Records: d.Records, Intervals: d.Intervals}
	if askBack && lacks(c.store, theirs) {
		m.Context = c.store.Context()
	}
	// The budget cut the answer short: the peer should ask again at once.
	m.More = d.Truncated
	if len(m.Records) > 0 || len(m.Intervals) > 0 || m.Context != nil {
		c.send(to, m)
	}
	if m.Context != nil {
		c.noteAsked(now, to)
	}
}

// noteAsked notes that this node asked member to for records.
func (c *Core) noteAsked(now time.Time, to string) {
	if c.isMember(to) {
		if p := c.peer(to); p != nil {
			p.asked = now
		}
	}
}

// lacks reports whether theirs covers a dot that s does not.
func lacks(s *crdt.Store, theirs crdt.Context) bool {
	for i := range theirs {
		a := &theirs[i]
		have := s.Contiguous(a.Author)
		if a.Max > have {
			return true
		}
		for _, seq := range a.Above {
			if !s.Has(crdt.Dot{Author: a.Author, Seq: seq}) {
				return true
			}
		}
	}
	return false
}

// Tick advances time: repairs due, anti-entropy, pull timeouts, held
// records. Call it at least every NextDeadline.
func (c *Core) Tick(now time.Time) {
	c.tickRepairs(now)
	c.tickWants(now)
	c.retryHeld(now, false)
	if c.aeNext.IsZero() {
		// Random phase, so that nodes started together do not sync in
		// lockstep.
		c.aeNext = now.Add(time.Duration(c.rng.Int64N(int64(c.cfg.AntiEntropyInterval))))
	}
	if !now.Before(c.aeNext) {
		c.antiEntropy(now)
		c.aeNext = now.Add(c.cfg.AntiEntropyInterval)
	}
}

// NextDeadline is the earliest time at which Tick has work to do.
func (c *Core) NextDeadline() time.Time {
	next := c.aeNext
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	// The maps are nearly always empty, and the driver asks after every
	// step: the length checks save starting an iteration over each.
	if len(c.repairs) > 0 {
		for _, rp := range c.repairs {
			if rp.asked.IsZero() {
				consider(rp.due)
			} else {
				consider(rp.asked.Add(c.cfg.RepairTimeout))
			}
		}
	}
	if len(c.pulls) > 0 {
		for _, p := range c.pulls {
			consider(p.deadline)
		}
	}
	if len(c.held) > 0 {
		for _, h := range c.held {
			if !h.retry.IsZero() {
				consider(h.retry)
			}
			consider(h.until)
		}
	}
	return next
}

// tickRepairs asks for gaps that are due. The first request goes to the
// node that revealed the gap (a tree neighbour, usually close); if its
// answer or RepairTimeout leaves the gap open, the second goes to the
// author itself, which has everything it wrote. After that anti-entropy
// closes the gap, and a later record may schedule a new repair.
func (c *Core) tickRepairs(now time.Time) {
	for _, a := range c.repairAuthors() {
		rp := c.repairs[a]
		have := c.store.Contiguous(a)
		switch {
		case have >= rp.upTo:
			delete(c.repairs, a)
		case rp.asked.IsZero() && !now.Before(rp.due):
			c.askRepair(now, a, rp, rp.from)
		case !rp.asked.IsZero() && !now.Before(rp.asked.Add(c.cfg.RepairTimeout)):
			c.escalateRepair(now, a, rp)
		}
	}
}

// repairAuthors lists the authors with a repair in progress, in a
// deterministic order.
func (c *Core) repairAuthors() []crdt.Author {
	as := make([]crdt.Author, 0, len(c.repairs))
	for a := range c.repairs {
		as = append(as, a)
	}
	slices.SortFunc(as, func(x, y crdt.Author) int {
		if c := compareStrings(x.Name, y.Name); c != 0 {
			return c
		}
		return cmp.Compare(x.Incarnation, y.Incarnation)
	})
	return as
}

func (c *Core) askRepair(now time.Time, a crdt.Author, rp *repair, to string) {
	rp.asked, rp.askedOf = now, to
	c.noteAsked(now, to)
	rp.tries++
	c.stats.Repairs++
	c.send(to, &Message{Type: MsgRepairReq, SentAt: crdt.MillisOf(now),
		Repair: crdt.Interval{Author: a, From: c.store.Contiguous(a), To: rp.upTo}})
}

// escalateRepair asks the author after the revealer failed, or gives up.
func (c *Core) escalateRepair(now time.Time, a crdt.Author, rp *repair) {
	if c.view.Alive(a.Name) && rp.tries < 2 && rp.askedOf != a.Name {
		c.askRepair(now, a, rp, a.Name)
		return
	}
	delete(c.repairs, a)
}

// repairAnswered is called after a delta from a node asked for a repair:
// if the gap is still open, escalate at once rather than wait.
func (c *Core) repairAnswered(now time.Time, from string) {
	for _, a := range c.repairAuthors() {
		rp := c.repairs[a]
		if rp.askedOf != from || rp.asked.IsZero() {
			continue
		}
		if c.store.Contiguous(a) >= rp.upTo {
			delete(c.repairs, a)
			continue
		}
		c.escalateRepair(now, a, rp)
	}
}

// aeCandidates is how many random peers an anti-entropy round considers
// before picking the least recently synced: O(1) per round whatever the
// size of the mesh, and still biased towards peers not synced for long.
const aeCandidates = 3

// antiEntropy syncs with one peer: the least recently synced of a few
// random candidates, from another region every third round.
func (c *Core) antiEntropy(now time.Time) {
	c.aeRound++
	regions := c.view.Regions()
	var pool []string
	if c.aeRound%3 == 0 && len(regions) > 1 {
		r := regions[c.rng.IntN(len(regions))]
		if r == c.cfg.Region {
			r = regions[(slices.Index(regions, r)+1)%len(regions)]
		}
		pool = c.view.Region(r)
	} else {
		pool = c.view.Region(c.cfg.Region)
	}
	best := ""
	var bestSync time.Time
	for i := 0; i < aeCandidates && len(pool) > 0; i++ {
		name := pool[c.rng.IntN(len(pool))]
		if name == c.cfg.Name || !c.view.Alive(name) {
			continue
		}
		var last time.Time
		if p, ok := c.peers[name]; ok {
			last = p.lastSync
		}
		if best == "" || last.Before(bestSync) {
			best, bestSync = name, last
		}
	}
	if best != "" {
		c.sendSync(now, best)
	}
}

// maxPeers caps the per-peer entries, whatever membership claims: a mesh
// of 10,000 routers has a tenth of it.
const maxPeers = 1 << 17

// peer returns the entry of name, a live member, creating it; nil when
// maxPeers are held.
func (c *Core) peer(name string) *peer {
	p, ok := c.peers[name]
	if !ok {
		if len(c.peers) >= maxPeers {
			return nil
		}
		p = &peer{}
		c.peers[name] = p
	}
	return p
}

// liveChildren appends name's children in l to buf, replacing a child this
// node believes dead by that child's own children, so that a crashed relay
// does not cut off its subtree.
func (c *Core) liveChildren(l *layout, name string, buf []string) []string {
	p, ok := slices.BinarySearch(l.members, name)
	if !ok {
		return buf
	}
	return c.liveChildrenAt(l, p, buf)
}

// liveChildrenAt is liveChildren for the member at position p of l's
// sorted list.
func (c *Core) liveChildrenAt(l *layout, p int, buf []string) []string {
	start := len(buf)
	buf = l.childrenAt(p, buf)
	for i := start; i < len(buf); i++ {
		if !c.view.Alive(buf[i]) {
			dead := buf[i]
			buf = append(buf[:i], buf[i+1:]...)
			i--
			buf = l.children(dead, buf) // grandchildren, checked in turn
		}
	}
	return buf
}

// liveRoot appends the live root of l, or, if the root is believed dead,
// its live children.
func (c *Core) liveRoot(l *layout, buf []string) []string {
	if len(l.members) == 0 {
		return buf
	}
	p := l.rootPos()
	if root := l.members[p]; c.view.Alive(root) {
		return append(buf, root)
	}
	return c.liveChildrenAt(l, p, buf)
}

// selfIndex returns this node's position in members, its region's sorted
// member list. The position found last is tried first: the list rarely
// changes, and checking one name is cheaper than a binary search per
// forwarded batch. Names are unique, so a match is the position.
func (c *Core) selfIndex(members []string) (int, bool) {
	if p := c.selfPos; p < len(members) && members[p] == c.cfg.Name {
		return p, true
	}
	p, ok := slices.BinarySearch(members, c.cfg.Name)
	if ok {
		c.selfPos = p
	}
	return p, ok
}

// PeerState answers a peer's causal context learned outside the protocol's
// own messages (memberlist's push-pull carries one in each direction): the
// peer is sent what it lacks, within AntiEntropyBudget. It does not ask
// back, since the peer answers this node's context in the same way. It
// takes no clock sample: a push-pull's proof is made for any recipient
// (memberlist does not tell the sender who its peer is), so a replay of it
// could carry an old clock.
func (c *Core) PeerState(now time.Time, from Sender, theirs crdt.Context) {
	if theirs.Validate() != nil {
		c.stats.Rejected["invalid_context"]++
		return
	}
	from = c.checkSender(from)
	c.notePeerContext(from, theirs)
	if c.isMember(from.Name) {
		c.answerSync(now, from.Name, theirs, false)
		c.syncedWith(now, from, false)
	}
}

// syncedWith notes an exchange with from, a live member, which anti-entropy
// then leaves for others a while: it started one with this node (a proven
// sync request or push-pull), or sent records (a delta). Made-up claims
// must not steer anti-entropy away from members, so an unproven delta
// counts only as an answer to something this node asked that member
// within RepairTimeout (a sync or repair request, a delta that asks back):
// a key holder would have to see that request to make one up.
func (c *Core) syncedWith(now time.Time, from Sender, answer bool) {
	p, ok := c.peers[from.Name]
	if !from.Proven && (!answer || !ok || p.asked.IsZero() || now.Sub(p.asked) > c.cfg.RepairTimeout) {
		return
	}
	if !ok {
		if p = c.peer(from.Name); p == nil {
			return
		}
	}
	p.lastSync = now
}

// Synced reports whether this node has completed an anti-entropy exchange
// with a proven peer since it started: it learned a proven peer's causal
// context and holds everything in it, or received from a proven peer it
// was exchanging with the last chunk of what it sent. A new or restarted
// node is caught up from then on; readiness (SPEC.md section 3) waits for
// it.
func (c *Core) Synced() bool { return c.synced }

// SyncedUnproven reports whether this node has completed an exchange, as
// Synced says, with a live member that proved nothing (a node of protocol
// 1.0, or one without an identity). Any holder of the gossip key could have
// claimed that name: the mesh counts it for readiness only where no peer
// has proven itself (Mesh.Ready).
func (c *Core) SyncedUnproven() bool { return c.synced || c.syncedUnproven }

// PeerLag returns how many records member name lacked, compared with this
// node, when it last told this node its causal context.
func (c *Core) PeerLag(name string) (uint64, bool) {
	p, ok := c.peers[name]
	if !ok || !p.lagKnown {
		return 0, false
	}
	return p.lag, true
}

// notePeerContext records a peer's context: its lag, and progress towards
// Synced. Only a proven sender's context counts for either; a live
// member's unproven one counts towards SyncedUnproven.
func (c *Core) notePeerContext(from Sender, theirs crdt.Context) {
	member := c.isMember(from.Name)
	if !from.Proven && !member {
		return
	}
	if from.Proven && member {
		if p := c.peer(from.Name); p != nil {
			p.lag, p.lagKnown = c.store.Missing(theirs), true
		}
	}
	if c.synced {
		return
	}
	if !lacks(c.store, theirs) {
		c.setSyncedBy(from)
		return
	}
	e, ok := c.exchanging[from.Name]
	if !ok && len(c.exchanging) >= MaxExchanging || e.proven && !from.Proven {
		return
	}
	c.exchanging[from.Name] = exchange{ctx: theirs, proven: from.Proven}
}

// MaxExchanging caps the exchanges tracked until Synced, whatever names
// peers claim (see Footprint).
const MaxExchanging = 64

// deltaReceived notes a delta from a peer: one after which this node
// holds the peer's whole context (as it was proven, or not), or the last
// chunk of an exchange (as its sender was proven, or not), makes it Synced
// or SyncedUnproven.
func (c *Core) deltaReceived(from Sender, more bool) {
	if c.synced {
		return
	}
	e, ok := c.exchanging[from.Name]
	switch {
	case !ok:
	case e.ctx != nil && !lacks(c.store, e.ctx):
		c.setSyncedBy(Sender{Name: from.Name, Proven: e.proven})
	case !more && (from.Proven || c.isMember(from.Name)):
		c.setSyncedBy(from)
	}
}

// setSyncedBy notes an exchange completed with from.
func (c *Core) setSyncedBy(from Sender) {
	if !from.Proven {
		c.syncedUnproven = true
		return
	}
	c.synced = true
	c.exchanging = nil
}

// SyncWith starts an anti-entropy exchange with a member at once, as when
// it joins or comes back.
func (c *Core) SyncWith(now time.Time, name string) {
	if c.view.Alive(name) {
		c.sendSync(now, name)
	}
}

// HeldCount is the number of records held for a signer or a future HLC.
func (c *Core) HeldCount() int { return len(c.held) }

// Footprint counts the state a core keeps per peer and per request, which
// stays bounded whatever names and requests peers send: tests of hostile
// input check it, and a driver may report it.
type Footprint struct {
	Peers      int // members it synced with: live members only, at most maxPeers
	Exchanging int // exchanges tracked until Synced, at most MaxExchanging
	Pulls      int // wants in flight
	Negative   int // serials cached as not issued, for NegativeTTL
}

// Footprint returns the core's Footprint.
func (c *Core) Footprint() Footprint {
	return Footprint{Peers: len(c.peers), Exchanging: len(c.exchanging), Pulls: len(c.pulls), Negative: len(c.negative)}
}

// Pull returns the want id of the pull of serial in flight and the nodes it
// waits for in its current wave, sorted; ok is false if none is in flight.
func (c *Core) Pull(serial crdt.Serial) (id uint64, waiting []string, ok bool) {
	p, ok := c.pulls[serial]
	if !ok {
		return 0, nil, false
	}
	for n := range p.waiting {
		waiting = append(waiting, n)
	}
	slices.Sort(waiting)
	return p.id, waiting, true
}

// outbox collects what Ready hands the driver. It allocates a chunk at a
// time and Ready hands out the filled part, clipped: the driver owns it
// (appending to it reallocates) and the core fills the rest of the chunk
// next. A core that emits an item or two per Step then allocates once every
// few steps, not once or more per step. The price: a chunk keeps up to
// outboxChunk items handed out earlier reachable until it is full.
type outbox[T any] struct {
	buf []T
}

const outboxChunk = 16 // items; 512 bytes of Output

func (o *outbox[T]) add(v T) {
	if len(o.buf) == cap(o.buf) {
		o.buf = slices.Grow(o.buf, outboxChunk)
	}
	o.buf = append(o.buf, v)
}

// take returns the items added since the last take, nil if none.
func (o *outbox[T]) take() []T {
	if len(o.buf) == 0 {
		return nil
	}
	items := slices.Clip(o.buf)
	o.buf = o.buf[len(o.buf):]
	return items
}

// forwardKey identifies one tree's copy of a batch. Batch ids are random
// 64-bit numbers, so the id and the tree are enough.
type forwardKey uint64

func keyOf(batch uint64, tree uint8) forwardKey { return forwardKey(batch ^ uint64(tree)<<56) }

// recentSet remembers recently added keys in a direct-mapped table: O(1),
// no allocation, a fixed few KiB per node. A collision forgets the older
// key, which at worst forwards one duplicate copy again.
type recentSet struct {
	slots []forwardKey
	shift uint // 64 - log2(len(slots))
}

// init sizes the table to n slots, a power of two.
func (s *recentSet) init(n int) {
	if n < 2 || n&(n-1) != 0 {
		panic("gossip: recentSet size must be a power of two")
	}
	s.slots = make([]forwardKey, n)
	s.shift = uint(64 - bits.TrailingZeros(uint(n)))
}

// slot is Fibonacci hashing: the top bits of the product, which every bit
// of the key moves. (The middle bits, taken before, ignored the key's top
// byte, where keyOf puts the tree: both trees' copies of a batch shared a
// slot, and a node that forwarded one tree forgot the other.)
func (s *recentSet) slot(k forwardKey) *forwardKey {
	return &s.slots[(uint64(k)*0x9e3779b97f4a7c15)>>s.shift]
}

func (s *recentSet) has(k forwardKey) bool { return *s.slot(k) == k }

func (s *recentSet) add(k forwardKey) { *s.slot(k) = k }
