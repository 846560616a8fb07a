package mesh

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// The check stage: what received frames cost in crypto is paid here, on
// every core, before the loop takes the mesh's lock, which admission
// lookups take too. Frames that carry a sender's proof or records go
// through a bounded queue to one dispatcher goroutine (checkLoop), which
// takes whatever has queued, up to maxCheckBatch frames, and spreads the
// work over a pool of GOMAXPROCS workers: each proof (gossip.NodeAuth),
// and each record's signature (gossip.Prechecker, trust.Verifier's
// Precheck), except the records the store already covers (a record that
// comes again before its first copy is merged, down another tree or in
// anti-entropy, is known to the verifier as a copy of one it verified,
// and costs no second signature verification). It then hands
// the frames to the loop in the order they arrived, applying the replay
// rule to their proofs in that order. Under the lock, the core's
// verification of a prechecked record is a few map lookups
// (trust.Verifier.VerifyShared), so a delta of 1,300 records holds the
// lock for about a millisecond instead of a hundred.

// maxCheckBatch caps the frames the dispatcher takes at once, and
// maxCheckRecords the records: enough to keep every worker busy on a
// burst of small pushes, few enough that the first frame of a batch does
// not wait long for the last.
const (
	maxCheckBatch   = 64
	maxCheckRecords = 4096
)

// maxCheckedAhead caps the records checked and not yet stepped by the loop.
// The verifier remembers its verdicts for a bounded number of records
// (trust's maxPrechecked, 65,536): a check stage running further ahead of
// the loop would see its verdicts forgotten before they are used, and
// the loop would verify those records again, under its lock. Beyond it
// the dispatcher waits for the loop, frames queue up, and what the queue
// cannot hold is dropped, counted and repaired later.
const maxCheckedAhead = 16384

// precheckChunk is how many records a worker checks per task: a quarter
// of a millisecond of ECDSA or so, after which the worker yields, so that
// a goroutine made runnable meanwhile (an admission lookup, a handshake,
// the loop) does not wait long for a core while every core verifies.
const precheckChunk = 4

// checkLoop is the dispatcher of the check stage.
func (m *Mesh) checkLoop() {
	defer m.wg.Done()
	batch := make([]*gossip.Frame, 0, maxCheckBatch)
	for {
		select {
		case <-m.stop:
			return
		case f := <-m.checkQ:
			batch = append(batch[:0], f)
		}
		n := len(batch[0].Msg.Records)
	fill:
		for len(batch) < maxCheckBatch && n < maxCheckRecords {
			select {
			case f := <-m.checkQ:
				batch = append(batch, f)
				n += len(f.Msg.Records)
			default:
				break fill
			}
		}
		for m.ahead.Load() > maxCheckedAhead {
			select {
			case <-m.stop:
				return
			case <-m.stepped:
			}
		}
		m.check(batch)
		clear(batch)
	}
}

// worker runs the check stage's tasks.
func (m *Mesh) worker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case task := <-m.tasks:
			task()
			runtime.Gosched()
		}
	}
}

// spawn hands fn to a worker; wg.Wait waits for it. After Close it drops fn.
func (m *Mesh) spawn(wg *sync.WaitGroup, fn func()) {
	wg.Add(1)
	select {
	case m.tasks <- func() { defer wg.Done(); fn() }:
	case <-m.stop:
		wg.Done()
	}
}

// needsCheck reports whether a received frame goes through the check
// stage: it carries a proof this node checks, or records.
func (m *Mesh) needsCheck(f *gossip.Frame) bool {
	return f.Proof != nil && m.cfg.Auth != nil || m.pre != nil && len(f.Msg.Records) > 0
}

// queueCheck hands a frame to the check stage, or drops and counts it when
// MaxQueued frames wait already.
func (m *Mesh) queueCheck(f *gossip.Frame) {
	select {
	case m.checkQ <- f:
	default:
		m.dropped.Add(1)
		m.met.drop("queue_full")
	}
}

// check checks a batch of frames and queues them for the loop.
func (m *Mesh) check(batch []*gossip.Frame) {
	type proof struct {
		now time.Time
		s   gossip.Sender
		err error
	}
	proofs := make([]proof, len(batch))
	var wg sync.WaitGroup
	for i, f := range batch {
		if f.Proof != nil && m.cfg.Auth != nil {
			m.spawn(&wg, func() {
				p := &proofs[i]
				p.now = m.clock()
				p.s, p.err = m.cfg.Auth.Verify(p.now, f, m.cfg.Core.Name)
			})
		}
	}
	var copies []crdt.Record
	if m.pre != nil {
		var signers, others []crdt.Record
		signers, others, copies = m.unseen(batch)
		// Here, before the rest: the others may be signed with their keys.
		m.pre.Precheck(signers)
		for chunk := range slices.Chunk(others, precheckChunk) {
			m.spawn(&wg, func() { m.pre.Precheck(chunk) })
		}
	}
	wg.Wait()
	if len(copies) > 0 {
		// After the first copies: identical ones take their verdicts
		// without a signature verification of their own.
		m.pre.Precheck(copies)
	}
	for i, f := range batch {
		s := gossip.Sender{Name: f.From}
		if f.Proof != nil && m.cfg.Auth != nil {
			s = m.takeProof(f, m.cfg.Core.Name, proofs[i].now, proofs[i].s, proofs[i].err)
		}
		m.ahead.Add(int64(len(f.Msg.Records)))
		if !m.enqueue(input{kind: inMessage, sender: s, msg: f.Msg, checked: true}, true) {
			m.ahead.Add(-int64(len(f.Msg.Records)))
		}
	}
}

// unseen returns the records of a batch that the store does not cover,
// signer records apart, and the copies of a dot seen earlier in the
// batch. It takes the mesh's lock once per frame, for a lookup per record.
func (m *Mesh) unseen(batch []*gossip.Frame) (signers, others, copies []crdt.Record) {
	var seen map[crdt.Dot]struct{}
	if len(batch) > 1 {
		seen = make(map[crdt.Dot]struct{})
	}
	for _, f := range batch {
		recs := f.Msg.Records
		if len(recs) == 0 {
			continue
		}
		m.mu.Lock()
		store := m.core.Store()
		for _, r := range recs {
			d := r.Head().Dot()
			if store.Has(d) {
				continue
			}
			if seen != nil {
				if _, dup := seen[d]; dup {
					copies = append(copies, r)
					continue
				}
				seen[d] = struct{}{}
			}
			if r.Kind() == crdt.KindSigner {
				signers = append(signers, r)
			} else {
				others = append(others, r)
			}
		}
		m.mu.Unlock()
	}
	return signers, others, copies
}
