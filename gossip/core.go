package gossip

import (
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Output is a message to send.
type Output struct {
	To       string
	Msg      *Message
	Reliable bool // over memberlist's stream transport; otherwise one packet
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
// every timestamp this node has issued or observed. Unlike the core's
// other methods it may be called concurrently with them (crdt.Clock is
// safe for concurrent use): a controller's writer stamps its writes
// without waiting for the driver's lock.
func (c *Core) Now(now time.Time) crdt.Timestamp { return c.clock.Now(now) }

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
	if c.cfg.EncodeLater {
		c.stats.MessagesOut[m.Type]++
		c.out.add(Output{To: to, Msg: m})
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

// Step processes a message received from sender from. Only a proven
// sender's word counts where the sender is trusted (see Sender); answers go
// to from.Name only if it is a live member of the view, so that a made-up
// name costs no work and creates no state. It is Begin, Ingest of every
// record and Finish.
func (c *Core) Step(now time.Time, from Sender, m *Message) {
	s := c.Begin(now, from, m)
	s.Ingest(len(m.Records))
	s.Finish()
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
