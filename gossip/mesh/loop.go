package mesh

import (
	"runtime"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

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
	// checked: an inMessage that came through the check stage, whose
	// records count in Mesh.ahead until the loop steps it.
	checked bool
}

// maxHousekeeping is the longest the loop sleeps: readiness, metrics and
// garbage collection are checked at least this often.
const maxHousekeeping = time.Second

// The loop never holds the mesh's lock, which admission lookups take, for
// long: it lets go once it has merged maxRecordsPerHold records, between
// inputs or within a long message (each one verified ahead by the check
// stage: about a microsecond each to confirm and merge), and the messages
// the core sends are encoded after it lets go (gossip.Config.EncodeLater).
// A collection visits
// collectStepRecords records per hold (a few hundred microseconds in a
// store of millions), between which the loop goes on with everything
// else. A lock held briefly is also one the OS rarely preempts its holder
// in.
const (
	maxRecordsPerHold  = 256
	collectStepRecords = 256
)

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
	var collecting *crdt.Collection
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
			if collecting == nil && m.cfg.CollectInterval > 0 && now.Sub(lastCollect) >= m.cfg.CollectInterval {
				lastCollect = now
				collecting = m.core.Store().StartCollect(crdt.MillisOf(now), m.cfg.Core.MaxOffset, m.cfg.CollectGrace)
			}
			m.mu.Unlock()
			m.pruneProven()
			m.Ready() // latch readiness even if nobody asks
		}
		var stepped time.Duration
		if collecting != nil {
			start := time.Now()
			if m.collectStep(collecting) {
				collecting = nil
			}
			stepped = time.Since(start)
		}

		wait := maxHousekeeping
		if !next.IsZero() {
			wait = min(wait, max(0, next.Sub(m.clock())))
		}
		if collecting != nil {
			// As long again before the next step: a collection holds the
			// lock at most half the time, so that the OS, on a loaded
			// machine, seldom preempts the loop while it holds it.
			wait = min(wait, stepped)
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

// collectStep makes one step of a collection under the mesh's lock and
// reports whether it is done.
func (m *Mesh) collectStep(c *crdt.Collection) bool {
	m.mu.Lock()
	done := c.Step(collectStepRecords)
	if done {
		if n := c.Dropped(); n > 0 {
			m.log.Debug("gossip: collected expired records", "records", n)
			m.met.setRecords(m.core.Store().Counts())
		}
	}
	m.mu.Unlock()
	runtime.Gosched() // let a lookup that waited for the lock in first
	return done
}

// step feeds a batch of inputs to the core, ticks it when due, and acts on
// what it has ready. It returns the core's next deadline.
func (m *Mesh) step(now time.Time, batch []input) time.Time {
	m.mu.Lock()
	c := m.core
	held := 0
	letGo := func() {
		m.mu.Unlock()
		runtime.Gosched() // let a lookup that waited for the lock in first
		m.mu.Lock()
		held = 0
	}
	for i := range batch {
		in := &batch[i]
		if held >= maxRecordsPerHold {
			letGo()
		}
		held++
		switch in.kind {
		case inMessage:
			n := len(in.msg.Records) // before the core sees the message
			// A long message (a delta of 1,300 records) is merged a slice
			// at a time, letting go of the lock between slices; nothing
			// else is stepped in between (gossip.Stepping).
			s := c.Begin(now, in.sender, in.msg)
			left := n
			for left > 0 {
				if held >= maxRecordsPerHold {
					letGo()
				}
				rest := s.Ingest(maxRecordsPerHold - held)
				held += left - rest
				if rest == left { // not a message whose records Ingest merges
					held += left
					break
				}
				left = rest
			}
			s.Finish()
			if in.checked {
				m.ahead.Add(-int64(n))
			}
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
			held += len(in.recs)
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
	select {
	case m.stepped <- struct{}{}: // the check stage may be waiting for us
	default:
	}

	m.send(rd.Messages)
	if len(rd.Applied) > 0 {
		m.observeApplied(now, rd.Applied)
		m.notify(rd.Applied)
	}
	return next
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
