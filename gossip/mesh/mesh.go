package mesh

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// leaveTimeout bounds how long Close waits for memberlist to announce the
// leave.
const leaveTimeout = 3 * time.Second

// ErrClosed is returned by a Mesh's methods after Close.
var ErrClosed = errors.New("gossip: mesh closed")

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

	// The check stage (check.go).
	checkQ chan *gossip.Frame // frames with a proof or records, for checkLoop
	tasks  chan func()        // work for the check stage's workers
	pre    gossip.Prechecker  // the verifier, if it checks records ahead; else nil
	ahead  atomic.Int64       // records checked, not yet stepped (maxCheckedAhead)
	// stepped wakes the check stage's dispatcher after the loop stepped.
	stepped chan struct{}

	proofMu    sync.Mutex             // guards lastProven
	lastProven map[string]crdt.Millis // SentAt of the last proven frame taken, by sender; members only

	synced         atomic.Bool
	syncedUnproven atomic.Bool // an exchange completed with a member that proved nothing
	provenSeen     atomic.Bool // a peer proved itself since the node started
	sawPeer        atomic.Bool
	joined         atomic.Bool // a join reached a peer: the node is a member, no longer starting
	ready          atomic.Bool
	// restored: the store held records when the mesh started (a router's
	// snapshot, a controller's disk); see Readiness.
	restored bool
	// joinRefused says why the last round of joins failed although a seed
	// answered (wrong gossip key or label); nil once a join succeeds.
	joinRefused atomic.Pointer[string]
	closed      atomic.Bool
	joins       atomic.Uint64
	dropped     atomic.Uint64
	lostPeers   chan struct{} // wakes the joiner when the last peer is gone
	stop        chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup

	// Name conflicts (see nameConflict).
	probeMu  sync.Mutex // guards probing, and orders it with closed
	probing  bool
	probeWG  sync.WaitGroup
	probes   atomic.Uint64 // conflicts probed to the end, for tests
	conflict chan error    // buffered 1: the conflict that stopped a starting node
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
	cfg.Core.EncodeLater = true // send frames each message after the lock
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

		checkQ:     make(chan *gossip.Frame, cfg.MaxQueued),
		tasks:      make(chan func()),
		stepped:    make(chan struct{}, 1),
		lastProven: make(map[string]crdt.Millis),
	}
	m.pre, _ = v.(gossip.Prechecker)
	m.started = m.clock()
	m.restored = store.Len() > 0
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
	m.met.setInfo(cfg.Core.Name, cfg.Core.Role, cfg.Core.Region)
	m.met.setRecords(store.Counts())
	m.updateMemberMetrics()
	m.log.Info("gossip: mesh started", "addr", m.Addr(), "role", cfg.Core.Role.String(), "region", cfg.Core.Region,
		"seeds", m.seeds, "encrypted", m.keyring != nil, "label", cfg.Label, "proves", cfg.Auth.Proves())
	workers := runtime.GOMAXPROCS(0)
	m.wg.Add(3 + workers)
	go m.run()
	go m.joinLoop()
	go m.checkLoop()
	for range workers {
		go m.worker()
	}
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

// Addr returns the host:port this node announces to its peers.
func (m *Mesh) Addr() string { return m.ml.LocalNode().Address() }

// Name returns this node's name.
func (m *Mesh) Name() string { return m.cfg.Core.Name }

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
// this node has issued or observed. It does not take the mesh's lock: the
// writer's stamp never waits behind ingest or collection.
func (m *Mesh) Now() crdt.Timestamp {
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

// ClockOffset estimates how far this node's clock is from its peers'
// (gossip.Core.ClockOffset); false until a peer has been heard.
func (m *Mesh) ClockOffset() (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.core.ClockOffset()
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
