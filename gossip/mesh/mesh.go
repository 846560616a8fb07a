package mesh

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmesh/certmesh/gossip"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
)

// Config configures a Mesh. A Config is frozen once passed to
// New.
type Config struct {
	// Core is the protocol's configuration: Name, Role and Region, and
	// its tuning (gossip.DefaultConfig).
	Core gossip.Config
	// Bind is the host:port memberlist listens on, TCP and UDP; port 0
	// picks a free one (see Addr). Ignored with Transport.
	Bind string
	// Advertise is the host:port announced to peers; default: the bound
	// address.
	Advertise string
	// Join lists seeds (host:port). They are tried in the background,
	// with backoff, until one answers, and again whenever this node has
	// lost every peer; listing this node itself is harmless.
	Join []string
	// JoinTimeout: a node none of whose seeds (other than itself) answers
	// within it is ready on its own. Default 5s.
	JoinTimeout time.Duration
	// ReconnectInterval is how often the node tries to rejoin a few
	// members that failed (not left), and its seeds while it sees no
	// controller alive: memberlist gives up on a dead member after
	// GossipToTheDeadTime, so without this a longer partition, or a
	// restart of every controller, would leave the mesh split for good.
	// Default 3s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is retried before it
	// is given up for removed. Default 72h, as Serf's.
	ReconnectTimeout time.Duration
	// Keys is the gossip keyring (AES-GCM): the first key encrypts, all of
	// them decrypt. Empty: no encryption, for tests only.
	Keys [][]byte
	// Label is memberlist's label; clusters with different labels ignore
	// each other. Default "certmesh".
	Label string
	// APIAddr is announced in the node's metadata.
	APIAddr string
	// Preset is "lan" (default, memberlist.DefaultLANConfig) or "wan"
	// (memberlist.DefaultWANConfig).
	Preset string
	// Transport, if set, replaces memberlist's UDP/TCP transport (the
	// simulator's live mode).
	Transport memberlist.NodeAwareTransport
	// Logger receives the mesh's and memberlist's logs; default discards.
	Logger *slog.Logger
	// Clock is the wall clock; default time.Now.
	Clock func() time.Time

	// Memberlist, if set, adjusts the memberlist configuration derived from
	// Preset before memberlist starts (tests and the simulator shorten its
	// timers). It must not replace the delegates, the keyring or the name.
	Memberlist func(*memberlist.Config)
	// MaxQueued caps the messages received and not yet processed; beyond
	// it they are dropped and counted (reason "queue_full"). Default 8192.
	MaxQueued int
	// CollectInterval is how often the store drops records that can no
	// longer matter (crdt.Store.Collect), keeping them CollectGrace past
	// their expiry plus the max clock offset. Defaults 1m and 1h; a
	// negative interval disables collection.
	CollectInterval time.Duration
	CollectGrace    time.Duration
	// Seed seeds the core's random source; zero draws one at random.
	Seed uint64
	// Auth proves this node's frames to its peers and checks theirs: a
	// gossip.NodeAuth for this node's name and role, trusting the root of the
	// trust domain, with the node's certificate and key (SetIdentity) as
	// `pki init` wrote them. Without an identity the node sends unproven
	// frames; without Auth it proves nothing and no sender is proven to
	// it, so clock samples, an issuer's "not issued" and the rest of what
	// trusts a sender's word never count (tests only).
	Auth *gossip.NodeAuth

	// protocol, tests only, replaces the protocol version (major<<4 |
	// minor) this node announces in its metadata and writes at the head
	// of its frames, to rehearse a rolling upgrade against real peers.
	// Zero: ProtocolMajor.ProtocolMinor.
	protocol uint8
}

// Defaults of Config.
const (
	DefaultJoinTimeout       = 5 * time.Second
	DefaultReconnectInterval = 3 * time.Second
	DefaultReconnectTimeout  = 72 * time.Hour
	DefaultLabel             = "certmesh"
	DefaultMaxQueued         = 8192
	DefaultCollectInterval   = time.Minute
	DefaultCollectGrace      = time.Hour
)

// Join backoff: from the first to the longest wait between rounds of join
// attempts while no seed answers.
const (
	minJoinBackoff = 200 * time.Millisecond
	maxJoinBackoff = 30 * time.Second
)

// reconnectFanout is how many failed members one reconnect round tries:
// one that answers brings the membership of its side along.
const reconnectFanout = 2

// settleTime is how long after it starts a node joins its seeds every
// reconnect round (see reconnect).
const settleTime = 30 * time.Second

// leaveTimeout bounds how long Close waits for memberlist to announce the
// leave.
const leaveTimeout = 3 * time.Second

// maxReliableQueue caps the bytes waiting to go to one peer over streams;
// more is dropped (anti-entropy sends it again).
const maxReliableQueue = 32 << 20

// maxHousekeeping is the longest the loop sleeps: readiness, metrics and
// garbage collection are checked at least this often.
const maxHousekeeping = time.Second

// maxVerifyQueue caps the received frames whose proof waits to be checked;
// beyond it they are dropped and counted (reason "queue_full").
const maxVerifyQueue = 1024

// maxProvenSenders caps the senders whose last proven frame time a node
// keeps (replay protection): members only, and only those a root-issued
// certificate names.
const maxProvenSenders = 1 << 16

// ErrClosed is returned by a Mesh's methods after Close.
var ErrClosed = errors.New("gossip: mesh closed")

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = DefaultReconnectInterval
	}
	if cfg.ReconnectTimeout <= 0 {
		cfg.ReconnectTimeout = DefaultReconnectTimeout
	}
	if cfg.Label == "" {
		cfg.Label = DefaultLabel
	}
	if cfg.Preset == "" {
		cfg.Preset = "lan"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.CollectInterval == 0 {
		cfg.CollectInterval = DefaultCollectInterval
	}
	if cfg.CollectGrace == 0 {
		cfg.CollectGrace = DefaultCollectGrace
	}
	if cfg.protocol == 0 {
		cfg.protocol = gossip.ProtocolVersion
	}
	cfg.Join = slices.Clone(cfg.Join)
	cfg.Keys = slices.Clone(cfg.Keys)
	if err := cfg.Core.Validate(); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Core.Region == "" || len(cfg.Core.Region) > gossip.MaxRegionLen:
		return cfg, fmt.Errorf("gossip: mesh config: region of %d bytes, want 1 to %d", len(cfg.Core.Region), gossip.MaxRegionLen)
	case len(cfg.Core.Name) > crdt.MaxNameLen:
		return cfg, fmt.Errorf("gossip: mesh config: name of %d bytes, more than %d", len(cfg.Core.Name), crdt.MaxNameLen)
	case cfg.Preset != "lan" && cfg.Preset != "wan":
		return cfg, fmt.Errorf("gossip: mesh config: preset %q, want lan or wan", cfg.Preset)
	case cfg.Bind == "" && cfg.Transport == nil:
		return cfg, errors.New("gossip: mesh config: no bind address")
	case cfg.JoinTimeout < 0:
		return cfg, fmt.Errorf("gossip: mesh config: join timeout %v", cfg.JoinTimeout)
	case len(cfg.Label) > memberlist.LabelMaxSize:
		return cfg, fmt.Errorf("gossip: mesh config: label longer than %d bytes", memberlist.LabelMaxSize)
	case len(cfg.APIAddr) > maxAPIAddrLen:
		return cfg, fmt.Errorf("gossip: mesh config: API address longer than %d bytes", maxAPIAddrLen)
	case cfg.MaxQueued < 1:
		return cfg, fmt.Errorf("gossip: mesh config: max queued %d", cfg.MaxQueued)
	case cfg.Auth != nil && (cfg.Auth.Name() != cfg.Core.Name || cfg.Auth.Role() != cfg.Core.Role):
		return cfg, fmt.Errorf("gossip: mesh config: node auth of %v %q for %v %q", cfg.Auth.Role(), cfg.Auth.Name(), cfg.Core.Role, cfg.Core.Name)
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return cfg, fmt.Errorf("gossip: mesh config: key %d: %v", i+1, err)
		}
	}
	return cfg, nil
}

// Mesh runs a Core over github.com/hashicorp/memberlist: memberlist gives
// membership, failure detection and the encrypted transport; the Core
// decides what to send. One goroutine, the loop, owns the Core: every
// input (received messages, membership events, local writes, pulls) is
// queued for it, it ticks the core at NextDeadline, and it sends what the
// core has ready. Publish, Now, View, Want and the other methods are safe
// for concurrent use.
type Mesh struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time
	met   *meshMetrics

	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring    // nil without encryption
	meta    atomic.Pointer[[]byte] // this node's NodeMeta
	boot    uint64
	seeds   []string // Join, without this node's own address
	started time.Time
	// packetLimit is the largest frame sent as one packet: memberlist's
	// UDP buffer less its own header, label and encryption overhead.
	packetLimit int

	mu      sync.Mutex // guards core (and so the store) and waiters
	core    *gossip.Core
	waiters map[crdt.Serial][]chan gossip.WantResult

	inMu   sync.Mutex // guards inbox and queued
	inbox  []input
	queued int // messages in inbox, of at most cfg.MaxQueued
	wake   chan struct{}

	subMu  sync.Mutex // guards subs and subSeq
	subs   map[uint64]func([]crdt.Record)
	subSeq uint64

	nodesMu sync.RWMutex // guards nodes
	nodes   map[string]*nodeInfo

	sendMu  sync.Mutex // guards senders
	senders map[string]*reliableSender

	logMu  sync.Mutex // guards logged
	logged map[string]time.Time

	verifyQ chan *gossip.Frame // frames whose proof the verifier goroutine checks

	proofMu    sync.Mutex             // guards lastProven
	lastProven map[string]crdt.Millis // SentAt of the last proven frame taken, by sender; members only

	synced         atomic.Bool
	syncedUnproven atomic.Bool // an exchange completed with a member that proved nothing
	provenSeen     atomic.Bool // a peer proved itself since the node started
	sawPeer        atomic.Bool
	joined         atomic.Bool // a join reached a peer: the node is a member, no longer starting
	ready          atomic.Bool
	closed         atomic.Bool
	joins          atomic.Uint64
	dropped        atomic.Uint64
	lostPeers      chan struct{} // wakes the joiner when the last peer is gone
	stop           chan struct{}
	closeOnce      sync.Once
	wg             sync.WaitGroup

	// Name conflicts (see nameConflict).
	probeMu  sync.Mutex // guards probing, and orders it with closed
	probing  bool
	probeWG  sync.WaitGroup
	probes   atomic.Uint64 // conflicts probed to the end, for tests
	conflict chan error    // buffered 1: the conflict that stopped a starting node
}

// nodeInfo is a member as memberlist last reported it.
type nodeInfo struct {
	node  memberlist.Node
	meta  nodeMeta
	state string    // "alive", "dead" or "left"
	down  time.Time // when it went dead or left
}

type inputKind uint8

const (
	inMessage   inputKind = iota // a message from a peer
	inPeerState                  // a peer's context from memberlist's push-pull
	inMember                     // a member joined, came back or changed
	inGone                       // a member left or failed
	inPublish                    // local writes
	inWant                       // a pull on miss
)

type input struct {
	kind   inputKind
	from   string        // inGone: the member
	sender gossip.Sender // inMessage, inPeerState
	msg    *gossip.Message
	member gossip.Member
	sync   bool // inMember: start an anti-entropy exchange with it
	recs   []crdt.Record
	done   chan error
	serial crdt.Serial
	issuer string
	result chan gossip.WantResult
}

type reliableSender struct {
	node    *memberlist.Node
	queue   [][]byte
	bytes   int
	running bool
}

// New starts memberlist and the loop, and begins joining cfg.Join in
// the background. store is the replicated state: from now on only the mesh
// touches it, and others read it through View. v verifies received records
// (trust.NewVerifier in production).
func New(cfg Config, store *crdt.Store, v crdt.Verifier) (*Mesh, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if store == nil || v == nil {
		return nil, errors.New("gossip: mesh: no store or verifier")
	}
	seed := cfg.Seed
	for seed == 0 {
		seed = randomUint64()
	}
	core, err := gossip.NewCore(cfg.Core, store, v, rand.New(rand.NewPCG(seed, seed>>1|1)))
	if err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:       cfg,
		log:       cfg.Logger.With("node", cfg.Core.Name),
		clock:     cfg.Clock,
		met:       newMeshMetrics(),
		boot:      randomUint64(),
		core:      core,
		waiters:   make(map[crdt.Serial][]chan gossip.WantResult),
		wake:      make(chan struct{}, 1),
		subs:      make(map[uint64]func([]crdt.Record)),
		nodes:     make(map[string]*nodeInfo),
		senders:   make(map[string]*reliableSender),
		logged:    make(map[string]time.Time),
		lostPeers: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		conflict:  make(chan error, 1),

		verifyQ:    make(chan *gossip.Frame, maxVerifyQueue),
		lastProven: make(map[string]crdt.Millis),
	}
	m.started = m.clock()
	if err := m.setMeta(false); err != nil {
		return nil, fmt.Errorf("gossip: mesh: %w", err)
	}
	mc, err := m.memberlistConfig()
	if err != nil {
		return nil, err
	}
	m.keyring = mc.Keyring
	m.packetLimit = mc.UDPBufferSize - packetOverhead(mc)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: mesh: start memberlist: %w", err)
	}
	m.ml = ml
	m.seeds = m.otherSeeds()
	m.met.setRecords(store.Counts())
	m.updateMemberMetrics()
	m.log.Info("gossip: mesh started", "addr", m.Addr(), "role", cfg.Core.Role.String(), "region", cfg.Core.Region,
		"seeds", m.seeds, "encrypted", m.keyring != nil, "label", cfg.Label, "proves", cfg.Auth.Proves())
	m.wg.Add(3)
	go m.run()
	go m.joinLoop()
	go m.verifyLoop()
	return m, nil
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(err) // crypto/rand.Read never fails since Go 1.24
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (m *Mesh) setMeta(leaving bool) error {
	nm := nodeMeta{Role: m.cfg.Core.Role, Region: m.cfg.Core.Region, API: m.cfg.APIAddr,
		Major: m.cfg.protocol >> 4, Minor: m.cfg.protocol & 0xf, Boot: m.boot, Leaving: leaving}
	b, err := nm.encode()
	if err != nil {
		return err
	}
	m.meta.Store(&b)
	return nil
}

func (m *Mesh) memberlistConfig() (*memberlist.Config, error) {
	cfg := m.cfg
	var mc *memberlist.Config
	if cfg.Preset == "wan" {
		mc = memberlist.DefaultWANConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Core.Name
	if cfg.Bind != "" {
		host, port, err := splitHostPort(cfg.Bind)
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: bind: %w", err)
		}
		mc.BindAddr, mc.BindPort = host, port
	}
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: advertise: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	mc.Label = cfg.Label
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: keys: %w", err)
		}
		mc.Keyring = kr
	}
	d := delegate{m}
	mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d
	mc.Logger = log.New(&slogWriter{log: m.log, foreign: func() { m.met.drop("foreign") }}, "", 0)
	mc.LogOutput = nil
	if cfg.Memberlist != nil {
		cfg.Memberlist(mc)
		if mc.Name != cfg.Core.Name {
			return nil, errors.New("gossip: mesh config: the memberlist hook changed the node name")
		}
		mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d
	}
	return mc, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", ps)
	}
	return host, port, nil
}

// packetOverhead is what memberlist adds to a user message sent as a
// packet: its message type, a CRC, the label and the encryption.
func packetOverhead(mc *memberlist.Config) int {
	n := 1 + 5 // user message type, CRC header
	if mc.Label != "" {
		n += 2 + len(mc.Label)
	}
	if mc.Keyring != nil {
		n += 1 + 12 + 16 + 2 // version, nonce, GCM tag, padding slack
	}
	return n
}

// otherSeeds drops this node's own address from the seeds.
func (m *Mesh) otherSeeds() []string {
	self := map[string]bool{m.Addr(): true}
	if m.cfg.Advertise != "" {
		self[m.cfg.Advertise] = true
	}
	if _, port, err := splitHostPort(m.cfg.Bind); err == nil && port != 0 {
		self[m.cfg.Bind] = true
	}
	var out []string
	for _, s := range m.cfg.Join {
		if !self[s] {
			out = append(out, s)
		}
	}
	return out
}

// Addr returns the host:port this node announces to its peers.
func (m *Mesh) Addr() string { return m.ml.LocalNode().Address() }

// Name returns this node's name.
func (m *Mesh) Name() string { return m.cfg.Core.Name }

// enqueue hands an input to the loop. Messages from peers (droppable) are
// dropped and counted when cfg.MaxQueued are already waiting; local calls
// and membership changes never are. It reports whether the input was
// queued.
func (m *Mesh) enqueue(in input, droppable bool) bool {
	m.inMu.Lock()
	if droppable {
		if m.queued >= m.cfg.MaxQueued {
			m.inMu.Unlock()
			m.dropped.Add(1)
			m.met.drop("queue_full")
			return false
		}
		m.queued++
	}
	m.inbox = append(m.inbox, in)
	m.inMu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}

// run is the loop: the only goroutine that calls into the core.
func (m *Mesh) run() {
	defer m.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var batch []input
	lastHousekeeping, lastCollect := m.clock(), m.clock()
	for {
		m.inMu.Lock()
		batch, m.inbox = m.inbox, batch[:0]
		m.queued = 0
		m.inMu.Unlock()

		now := m.clock()
		next := m.step(now, batch)
		clear(batch)

		if now.Sub(lastHousekeeping) >= maxHousekeeping {
			lastHousekeeping = now
			m.mu.Lock()
			m.met.syncCore(m.core.Stats())
			if off, ok := m.core.ClockOffset(); ok {
				m.met.clockOffset.Store(int64(off))
			}
			if m.cfg.CollectInterval > 0 && now.Sub(lastCollect) >= m.cfg.CollectInterval {
				lastCollect = now
				if n := m.core.Store().Collect(crdt.MillisOf(now), m.cfg.Core.MaxOffset, m.cfg.CollectGrace); n > 0 {
					m.log.Debug("gossip: collected expired records", "records", n)
					m.met.setRecords(m.core.Store().Counts())
				}
			}
			m.mu.Unlock()
			m.pruneProven()
			m.Ready() // latch readiness even if nobody asks
		}

		wait := maxHousekeeping
		if !next.IsZero() {
			wait = min(wait, max(0, next.Sub(m.clock())))
		}
		timer.Reset(wait)
		select {
		case <-m.stop:
			return
		case <-m.wake:
		case <-timer.C:
		}
	}
}

// step feeds a batch of inputs to the core, ticks it when due, and acts on
// what it has ready. It returns the core's next deadline.
func (m *Mesh) step(now time.Time, batch []input) time.Time {
	m.mu.Lock()
	c := m.core
	for i := range batch {
		in := &batch[i]
		switch in.kind {
		case inMessage:
			c.Step(now, in.sender, in.msg)
		case inPeerState:
			c.PeerState(now, in.sender, in.msg.Context)
		case inMember:
			c.SetMember(in.member)
			if in.sync {
				c.SyncWith(now, in.member.Name)
			}
		case inGone:
			c.RemoveMember(in.from)
		case inPublish:
			in.done <- c.Publish(now, in.recs)
		case inWant:
			m.waiters[in.serial] = append(m.waiters[in.serial], in.result)
			c.Want(now, in.serial, in.issuer)
		}
	}
	if dl := c.NextDeadline(); dl.IsZero() || !dl.After(now) {
		c.Tick(now)
	}
	rd := c.Ready()
	for _, w := range rd.Wants {
		for _, ch := range m.waiters[w.Serial] {
			ch <- w // buffered, one result per waiter
		}
		delete(m.waiters, w.Serial)
	}
	if len(rd.Applied) > 0 {
		m.met.setRecords(c.Store().Counts())
	}
	if !m.synced.Load() && c.Synced() {
		m.synced.Store(true)
		m.log.Info("gossip: caught up with a peer", "records", c.Store().Len())
	}
	if !m.syncedUnproven.Load() && c.SyncedUnproven() {
		m.syncedUnproven.Store(true)
	}
	next := c.NextDeadline()
	m.mu.Unlock()

	m.send(rd.Messages)
	if len(rd.Applied) > 0 {
		m.observeApplied(now, rd.Applied)
		m.notify(rd.Applied)
	}
	return next
}

// send frames each message once and sends it to every recipient: one
// packet when it fits, over a stream otherwise. A message whose sender
// matters (gossip.NeedsProof) carries this node's proof, made for its recipient,
// to peers that read proofs (protocol 1.1 on).
func (m *Mesh) send(outs []gossip.Output) {
	if len(outs) == 0 {
		return
	}
	frames := make(map[*gossip.Message][]byte)
	prove := m.cfg.protocol&0xf >= gossip.MinorTrailer && m.cfg.Auth.Proves()
	for _, o := range outs {
		f, ok := frames[o.Msg]
		if !ok {
			var err error
			if f, err = m.encodeFrame(o.Msg); err != nil {
				m.log.Error("gossip: encode", "type", o.Msg.Type.String(), "err", err)
				m.met.drop("encode_error")
				continue
			}
			frames[o.Msg] = f
		}
		node, minor := m.lookupMinor(o.To)
		if node == nil {
			m.met.drop("no_route")
			continue
		}
		if prove && minor >= gossip.MinorTrailer && gossip.NeedsProof(o.Msg) {
			pf, err := m.cfg.Auth.Prove(f, o.To)
			if err != nil {
				m.log.Error("gossip: prove", "type", o.Msg.Type.String(), "err", err)
				m.met.drop("encode_error")
				continue
			}
			f = pf
		}
		m.met.msgOut(o.Msg.Type, len(f))
		if o.Reliable || len(f) > m.packetLimit {
			m.sendReliable(node, f)
			continue
		}
		if err := m.ml.SendBestEffort(node, f); err != nil {
			m.log.Debug("gossip: send", "to", o.To, "err", err)
		}
	}
}

// encodeFrame frames msg as sent by this node, with the protocol version
// it announces.
func (m *Mesh) encodeFrame(msg *gossip.Message) ([]byte, error) {
	f, err := gossip.EncodeFrame(m.cfg.Core.Name, msg)
	if err == nil {
		f[0] = m.cfg.protocol
	}
	return f, err
}

// lookup returns a copy of the alive member name, or nil.
func (m *Mesh) lookup(name string) *memberlist.Node {
	n, _ := m.lookupMinor(name)
	return n
}

// lookupMinor returns a copy of the alive member name and the protocol
// minor it announces, or nil.
func (m *Mesh) lookupMinor(name string) (*memberlist.Node, uint8) {
	m.nodesMu.RLock()
	defer m.nodesMu.RUnlock()
	if ni, ok := m.nodes[name]; ok && ni.state == "alive" {
		n := ni.node
		return &n, ni.meta.Minor
	}
	return nil, 0
}

// sendReliable queues f for node's stream sender, which sends one frame
// at a time in order, off the loop: a stream to a dead peer may block for
// memberlist's TCPTimeout.
func (m *Mesh) sendReliable(node *memberlist.Node, f []byte) {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	s := m.senders[node.Name]
	if s == nil {
		s = &reliableSender{}
		m.senders[node.Name] = s
	}
	s.node = node
	if s.bytes+len(f) > maxReliableQueue {
		m.met.drop("send_queue_full")
		return
	}
	s.queue = append(s.queue, f)
	s.bytes += len(f)
	if !s.running {
		s.running = true
		m.wg.Add(1) // the loop, counted, calls this: never from zero
		go m.drainReliable(node.Name, s)
	}
}

func (m *Mesh) drainReliable(name string, s *reliableSender) {
	defer m.wg.Done()
	for {
		m.sendMu.Lock()
		if len(s.queue) == 0 || m.closed.Load() {
			s.running = false
			s.queue, s.bytes = nil, 0
			delete(m.senders, name)
			m.sendMu.Unlock()
			return
		}
		f, node := s.queue[0], s.node
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.bytes -= len(f)
		m.sendMu.Unlock()
		if err := m.ml.SendReliable(node, f); err != nil {
			m.log.Debug("gossip: stream send", "to", name, "bytes", len(f), "err", err)
		}
	}
}

// observeApplied records the write-to-apply delay of records received
// from others. Records written before this node started are catch-up,
// not sync delay, and are left out.
func (m *Mesh) observeApplied(now time.Time, recs []crdt.Record) {
	start := crdt.MillisOf(m.started)
	nowMs := crdt.MillisOf(now)
	for _, r := range recs {
		h := r.Head()
		if h.Author.Name == m.cfg.Core.Name || h.HLC.Millis() < start {
			continue
		}
		m.met.syncDelay.Update(max(0, float64(nowMs-h.HLC.Millis())/1000))
	}
}

// notify calls the subscribers with applied records, in order.
func (m *Mesh) notify(recs []crdt.Record) {
	m.subMu.Lock()
	fns := make([]func([]crdt.Record), 0, len(m.subs))
	ids := make([]uint64, 0, len(m.subs))
	for id := range m.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fns = append(fns, m.subs[id])
	}
	m.subMu.Unlock()
	for _, fn := range fns {
		fn(recs)
	}
}

// nodeAlive handles a member that joined, came back or changed.
func (m *Mesh) nodeAlive(n *memberlist.Node) {
	if n.Name == m.cfg.Core.Name {
		return
	}
	meta, err := parseMeta(n.Meta)
	if err != nil {
		return // NotifyAlive refused it already
	}
	m.nodesMu.Lock()
	ni, known := m.nodes[n.Name]
	restarted := !known || ni.state != "alive" || ni.meta.Boot != meta.Boot
	if !known {
		ni = &nodeInfo{}
		m.nodes[n.Name] = ni
	}
	ni.node = *n
	ni.node.Addr = slices.Clone(n.Addr)
	ni.node.Meta = slices.Clone(n.Meta)
	ni.meta = meta
	ni.state = "alive"
	m.nodesMu.Unlock()
	m.sawPeer.Store(true)
	if restarted {
		m.log.Info("gossip: member up", "member", n.Name, "role", meta.Role.String(), "region", meta.Region, "addr", n.Address())
	}
	m.updateMemberMetrics()
	m.enqueue(input{kind: inMember, member: gossip.Member{Name: n.Name, Role: meta.Role, Region: meta.Region}, sync: restarted}, false)
}

// nodeGone handles a member that left or was declared dead.
func (m *Mesh) nodeGone(n *memberlist.Node) {
	if n.Name == m.cfg.Core.Name {
		return
	}
	m.nodesMu.Lock()
	ni, known := m.nodes[n.Name]
	if known {
		if ni.state == "alive" {
			ni.down = m.clock()
		}
		ni.state = "dead"
		if ni.meta.Leaving {
			ni.state = "left"
		}
		m.log.Info("gossip: member down", "member", n.Name, "state", ni.state)
	}
	alive := 0
	for _, o := range m.nodes {
		if o.state == "alive" {
			alive++
		}
	}
	forget := len(m.nodes) > 4096
	if forget {
		m.forgetGoneLocked()
	}
	m.nodesMu.Unlock()
	if forget {
		m.pruneProven()
	}
	m.updateMemberMetrics()
	if !known {
		return
	}
	m.enqueue(input{kind: inGone, from: n.Name}, false)
	if alive == 0 {
		select {
		case m.lostPeers <- struct{}{}:
		default:
		}
	}
}

// forgetGoneLocked drops members that left or died, keeping the map of a
// churning mesh bounded. The caller holds nodesMu.
func (m *Mesh) forgetGoneLocked() {
	for name, ni := range m.nodes {
		if ni.state != "alive" {
			delete(m.nodes, name)
		}
	}
}

func (m *Mesh) alivePeers() int {
	m.nodesMu.RLock()
	defer m.nodesMu.RUnlock()
	n := 0
	for _, ni := range m.nodes {
		if ni.state == "alive" {
			n++
		}
	}
	return n
}

func (m *Mesh) updateMemberMetrics() {
	counts := map[[2]string]int{{m.cfg.Core.Role.String(), labelValue(m.cfg.Core.Region)}: 1}
	m.nodesMu.RLock()
	for _, ni := range m.nodes {
		if ni.state == "alive" {
			counts[[2]string{ni.meta.Role.String(), labelValue(ni.meta.Region)}]++
		}
	}
	m.nodesMu.RUnlock()
	m.met.setMembers(counts)
}

// joinLoop joins the seeds in the background: with backoff while none
// answers, and again at once whenever the node has lost every peer. Every
// ReconnectInterval it also reconnects (see reconnect).
func (m *Mesh) joinLoop() {
	defer m.wg.Done()
	backoff := minJoinBackoff
	warned := false
	tick := time.NewTicker(m.cfg.ReconnectInterval/2 + rand.N(m.cfg.ReconnectInterval/2+1))
	defer tick.Stop()
	for {
		if len(m.seeds) > 0 && m.alivePeers() == 0 {
			m.joins.Add(1)
			n, err := m.ml.Join(m.seeds)
			switch {
			case m.alivePeers() > 0:
				m.joined.Store(true)
				m.log.Info("gossip: joined the mesh", "seeds_answering", n)
				backoff, warned = minJoinBackoff, false
			case !warned && m.clock().Sub(m.started) >= m.cfg.JoinTimeout:
				m.log.Warn("gossip: no seed answers; retrying in the background", "seeds", m.seeds, "err", err)
				warned = true
			default:
				m.log.Debug("gossip: join", "seeds", m.seeds, "err", err)
			}
		}
		var retry *time.Timer
		var fire <-chan time.Time
		if len(m.seeds) > 0 && m.alivePeers() == 0 {
			retry = time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			fire = retry.C
			backoff = min(2*backoff, maxJoinBackoff)
		}
		select {
		case <-m.stop:
			if retry != nil {
				retry.Stop()
			}
			return
		case <-m.lostPeers:
			m.log.Warn("gossip: lost every peer; joining the seeds again")
			backoff = minJoinBackoff
		case <-fire:
		case <-tick.C:
			tick.Reset(m.cfg.ReconnectInterval/2 + rand.N(m.cfg.ReconnectInterval+1))
			m.reconnect()
		}
		if retry != nil {
			retry.Stop()
		}
	}
}

// reconnect tries to rejoin what memberlist itself no longer reaches, as
// Serf does: reconnectFanout random members that failed (not left) within
// ReconnectTimeout, and the seeds while no controller is alive. The second
// heals the split after every controller restarts: the routers still see
// each other, so they never lose every peer, and the controllers, joining
// only each other, do not know them. During its first settleTime a node
// also joins its seeds every round: nodes that start together (a whole
// cluster) learn each other even where one missed another's announcement,
// rather than at memberlist's next push-pull (30 s). The joins run
// concurrently, so an unreachable address costs one TCP timeout, not one
// each.
func (m *Mesh) reconnect() {
	now := m.clock()
	var failed []string
	controller := m.cfg.Core.Role == gossip.RoleController
	m.nodesMu.RLock()
	for _, ni := range m.nodes {
		switch {
		case ni.state == "alive" && ni.meta.Role == gossip.RoleController:
			controller = true
		case ni.state == "dead" && now.Sub(ni.down) < m.cfg.ReconnectTimeout:
			failed = append(failed, ni.node.Address())
		}
	}
	m.nodesMu.RUnlock()
	rand.Shuffle(len(failed), func(i, j int) { failed[i], failed[j] = failed[j], failed[i] })
	targets := failed[:min(len(failed), reconnectFanout)]
	if !controller || now.Sub(m.started) < settleTime {
		targets = append(targets, m.seeds...)
	}
	if len(targets) == 0 {
		return
	}
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, addr := range slices.Compact(slices.Sorted(slices.Values(targets))) {
		wg.Go(func() {
			m.joins.Add(1)
			if n, _ := m.ml.Join([]string{addr}); n > 0 {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	m.log.Debug("gossip: reconnect", "tried", targets, "answered", answered.Load(), "controller_alive", controller)
}

// Publish disseminates records this node wrote, already signed and durably
// stored: they are merged into the store and pushed at once. It returns
// once they are in the store. Routers never author.
func (m *Mesh) Publish(recs []crdt.Record) error {
	if m.cfg.Core.Role != gossip.RoleController {
		return errors.New("gossip: publish: routers never author records")
	}
	if len(recs) == 0 {
		return nil
	}
	done := make(chan error, 1)
	if m.closed.Load() {
		return ErrClosed
	}
	m.enqueue(input{kind: inPublish, recs: recs, done: done}, false)
	select {
	case err := <-done:
		return err
	case <-m.stop:
		return ErrClosed
	}
}

// Now returns an HLC timestamp for a local write, above every timestamp
// this node has issued or observed.
func (m *Mesh) Now() crdt.Timestamp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.Now(m.clock())
}

// View calls fn with the store under the mesh's lock. fn must not keep
// the store, block, or call the mesh.
func (m *Mesh) View(fn func(*crdt.Store)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.core.Store())
}

// Subscribe calls fn with the records merged into the store (local writes
// included) after each merge, in order, from the mesh's goroutine; the
// store already holds them. fn must not block; it may call View. cancel
// stops the calls.
func (m *Mesh) Subscribe(fn func(applied []crdt.Record)) (cancel func()) {
	m.subMu.Lock()
	m.subSeq++
	id := m.subSeq
	m.subs[id] = fn
	m.subMu.Unlock()
	return func() {
		m.subMu.Lock()
		delete(m.subs, id)
		m.subMu.Unlock()
	}
}

// Want pulls the records of a certificate this node has not seen: it asks
// the issuing controller and a nearby node, then the other controllers and
// a few peers (gossip.Core.Want). It returns when the record is in the store
// (Found), the issuer said it never issued the serial (Authoritative),
// everyone asked failed to answer, or ctx is done.
func (m *Mesh) Want(ctx context.Context, serial crdt.Serial, issuer string) (gossip.WantResult, error) {
	if m.closed.Load() {
		return gossip.WantResult{Serial: serial}, ErrClosed
	}
	ch := make(chan gossip.WantResult, 1)
	m.enqueue(input{kind: inWant, serial: serial, issuer: issuer, result: ch}, false)
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		m.mu.Lock()
		ws := m.waiters[serial]
		if i := slices.Index(ws, ch); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(m.waiters, serial)
		} else {
			m.waiters[serial] = ws
		}
		m.mu.Unlock()
		return gossip.WantResult{Serial: serial}, fmt.Errorf("gossip: want %v: %w", serial, ctx.Err())
	case <-m.stop:
		return gossip.WantResult{Serial: serial}, ErrClosed
	}
}

// MemberStatus is one member as this node sees it, for /v1/status.
type MemberStatus struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Region string `json:"region"`
	// State is "alive", "dead" (failed) or "left" (left gracefully).
	// memberlist does not report suspicion to its delegates, so a suspect
	// member shows as alive until it is declared dead.
	State string `json:"state"`
	// Lag is how many records the member lacked, compared with this node,
	// at their last exchange of causal contexts.
	Lag uint64 `json:"lag"`
}

// Members returns every member this node knows of, itself included, sorted
// by name.
func (m *Mesh) Members() []MemberStatus {
	out := []MemberStatus{{Name: m.cfg.Core.Name, Role: m.cfg.Core.Role.String(), Region: m.cfg.Core.Region, State: "alive"}}
	m.nodesMu.RLock()
	for name, ni := range m.nodes {
		out = append(out, MemberStatus{Name: name, Role: ni.meta.Role.String(), Region: ni.meta.Region, State: ni.state})
	}
	m.nodesMu.RUnlock()
	m.mu.Lock()
	for i := range out[1:] {
		out[i+1].Lag, _ = m.core.PeerLag(out[i+1].Name)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Ready reports readiness as SPEC.md section 3 defines it: the listeners
// are up (memberlist started in New) and this node has either
// completed an anti-entropy exchange with a peer, or found no seed other
// than itself answering within JoinTimeout. Once ready, a mesh stays ready.
//
// The exchange must be with a proven peer (gossip.Core.Synced): a holder of the
// gossip key must not make a restarted router ready before it caught up.
// Only while no peer has proven itself, JoinTimeout after the start (a
// node of 1.1 among 1.0 nodes during a rolling upgrade, or a mesh without
// identities), does an exchange with an unproven member count.
func (m *Mesh) Ready() bool {
	if m.ready.Load() {
		return true
	}
	joined := m.clock().Sub(m.started) >= m.cfg.JoinTimeout
	ok := m.synced.Load() || len(m.seeds) == 0 || !m.sawPeer.Load() && joined ||
		m.syncedUnproven.Load() && !m.provenSeen.Load() && joined
	if ok && m.ready.CompareAndSwap(false, true) {
		m.log.Info("gossip: ready", "synced", m.synced.Load(), "after", m.clock().Sub(m.started).String())
	}
	return ok
}

// ClockOffset estimates how far this node's clock is from its peers'
// (gossip.Core.ClockOffset); false until a peer has been heard.
func (m *Mesh) ClockOffset() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.ClockOffset()
}

// StatsSnapshot is a copy of a Mesh's counters.
type StatsSnapshot struct {
	MessagesIn, MessagesOut map[string]uint64 // by message type, as the core counted them
	BytesIn, BytesOut       uint64
	Applied                 uint64            // records merged, local writes included
	Rejected                map[string]uint64 // records and messages refused, by reason
	Pulls                   map[string]uint64 // pulls on miss, by result
	Repairs                 uint64
	Held                    int    // records waiting for a signer or for the clock
	Dropped                 uint64 // received messages dropped because the loop was behind
	JoinAttempts            uint64
	AlivePeers              int
	Synced                  bool
}

// Stats returns a copy of the mesh's counters.
func (m *Mesh) Stats() StatsSnapshot {
	s := StatsSnapshot{
		MessagesIn: map[string]uint64{}, MessagesOut: map[string]uint64{},
		Rejected: map[string]uint64{}, Pulls: map[string]uint64{},
		Dropped: m.dropped.Load(), JoinAttempts: m.joins.Load(), AlivePeers: m.alivePeers(),
		Synced: m.synced.Load(),
	}
	m.mu.Lock()
	st := m.core.Stats()
	m.met.syncCore(st)
	for t := gossip.MsgType(1); t <= gossip.MaxMsgType; t++ {
		if n := st.MessagesIn[t]; n > 0 {
			s.MessagesIn[t.String()] = n
		}
		if n := st.MessagesOut[t]; n > 0 {
			s.MessagesOut[t.String()] = n
		}
	}
	s.BytesIn, s.BytesOut, s.Applied, s.Repairs = st.BytesIn, st.BytesOut, st.Applied, st.Repairs
	for r, n := range st.Rejected {
		s.Rejected[r] = n
	}
	for r, n := range st.Pulls {
		s.Pulls[r] = n
	}
	s.Held = m.core.HeldCount()
	m.mu.Unlock()
	m.met.mu.Lock()
	for r, n := range m.met.dropped {
		s.Rejected[r] += n
	}
	m.met.mu.Unlock()
	return s
}

// Close leaves the mesh gracefully (peers see this node as "left"), stops
// memberlist and the loop, and waits for the mesh's goroutines.
func (m *Mesh) Close() error {
	return m.shutdown(true)
}

// shutdown stops the mesh, announcing the leave when leave is set (a
// crash otherwise, for tests).
func (m *Mesh) shutdown(leave bool) error {
	var err error
	m.closeOnce.Do(func() {
		m.probeMu.Lock()
		m.closed.Store(true)
		m.probeMu.Unlock()
		close(m.stop)
		if leave {
			if e := m.setMeta(true); e == nil {
				if e := m.ml.UpdateNode(leaveTimeout); e != nil {
					m.log.Debug("gossip: announce leaving", "err", e)
				}
			}
			if e := m.ml.Leave(leaveTimeout); e != nil {
				m.log.Warn("gossip: leave", "err", e)
			}
		}
		err = m.ml.Shutdown()
		m.wg.Wait()
		m.probeWG.Wait()
		m.log.Info("gossip: mesh stopped", "left", leave)
	})
	if err != nil {
		return fmt.Errorf("gossip: close: %w", err)
	}
	return nil
}

var _ io.Writer = (*slogWriter)(nil)
