package issuer

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// errStorage is returned for writes after the store failed: the controller
// stops writing rather than risk reusing a dot.
var errStorage = errors.New("issuer: durable store failed; writes are refused until restart")

// errClosed is returned for writes after Close.
var errClosed = errors.New("issuer: controller is shutting down")

// writer turns record bodies into this controller's signed, durable,
// published records.
//
// Ordering contract, per write:
//  1. under mu: take the dots and the HLC timestamps (so seq order is HLC
//     order), and queue the write in seq order;
//  2. outside mu, concurrently with other writes: sign, unless the mesh
//     allows batch signatures (Mesh.BatchSigning), in which case the
//     committer signs;
//  3. in the committer goroutine: sign what is to be signed in batches,
//     one signature per run of consecutive records (signBatches), and
//     commit the longest signed prefix of the queue in one bbolt
//     transaction (group commit: concurrent writes
//     share one fsync), THEN publish those records to the mesh in seq order,
//     THEN answer each write.
//
// So a record is on disk before any peer can see it, the next seq on disk
// is above every seq ever sent, and peers receive each author's records in
// seq order (no spurious repair requests). bbolt's own DB.Batch would share
// commits too, but it may commit (and so publish) seq n+1 before seq n, and
// a crash between the two would leave a gap that peers wait on.
type writer struct {
	author crdt.Author
	db     *durable
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	mesh    Mesh        // guarded by mu; nil until start
	nextSeq uint64      // guarded by mu
	signer  crdt.Signer // guarded by mu
	signGen uint64      // guarded by mu; counts signer swaps
	queue   []*slot     // guarded by mu; in seq order, not yet committed
	failed  error       // guarded by mu; set once the store fails
	closed  bool        // guarded by mu

	// rmu guards received. It is never held while calling the mesh, so
	// the mesh's subscription callback can take it under the mesh's lock.
	rmu      sync.Mutex
	received []crdt.Record

	kick chan struct{} // wakes the committer; capacity 1
	stop chan struct{}
	done chan struct{}

	// Hooks for metrics, called from the committer.
	onCommit func(own, received int, took time.Duration)
}

// slot is one write in the queue.
type slot struct {
	recs  []crdt.Record
	ready bool  // signed, failed or left to the committer; guarded by writer.mu
	err   error // signing error
	done  chan error
	// batchSigner, when not nil, is the signer the committer signs recs
	// with, in a batch with the slots around it that have the same
	// signGen.
	batchSigner crdt.Signer
	signGen     uint64
}

func newWriter(author crdt.Author, db *durable, log *slog.Logger, now func() time.Time) *writer {
	return &writer{
		author:  author,
		db:      db,
		log:     log,
		now:     now,
		nextSeq: db.nextSeq,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start attaches the mesh and starts the committer.
func (w *writer) start(m Mesh, s crdt.Signer) {
	w.mu.Lock()
	w.mesh, w.signer = m, s
	w.mu.Unlock()
	go w.commitLoop()
}

// setSigner makes s sign every record whose dot is taken from now on, and
// writes first the records of first (such as the new key's signer record)
// with it. It returns once they are durable and published.
func (w *writer) setSigner(s crdt.Signer, first []crdt.Record) error {
	return w.write(first, s)
}

// write assigns dots and timestamps to recs, signs them, and returns once
// they are durable and published (or failed). If swap is set, it becomes
// the signer of recs and of every later write.
func (w *writer) write(recs []crdt.Record, swap crdt.Signer) error {
	sl := &slot{recs: recs, done: make(chan error, 1)}
	w.mu.Lock()
	switch {
	case w.closed || w.mesh == nil:
		w.mu.Unlock()
		return errClosed
	case w.failed != nil:
		w.mu.Unlock()
		return errStorage
	}
	if swap != nil {
		w.signer = swap
		w.signGen++
	}
	signer, mesh := w.signer, w.mesh
	w.nextSeq = crdt.Stamp(recs, w.author, w.nextSeq, mesh.Now)
	w.queue = append(w.queue, sl)
	sl.signGen = w.signGen
	w.mu.Unlock()

	var err error
	if mesh.BatchSigning() {
		sl.batchSigner = signer
	} else {
		for _, r := range recs {
			if err = crdt.Sign(r, signer); err != nil {
				break
			}
		}
	}
	w.mu.Lock()
	sl.ready, sl.err = true, err
	w.mu.Unlock()
	w.wake()
	return <-sl.done
}

// receive queues records applied from peers for persistence. It is the
// mesh subscription callback: it must not block or call the mesh.
func (w *writer) receive(recs []crdt.Record) {
	w.rmu.Lock()
	before := len(w.received)
	for _, r := range recs {
		if r.Head().Author != w.author {
			w.received = append(w.received, r)
		}
	}
	added := len(w.received) > before
	w.rmu.Unlock()
	if added {
		w.wake()
	}
}

func (w *writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// commitLoop is the committer goroutine.
func (w *writer) commitLoop() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
		case <-w.stop:
			w.commitReady() // what is already signed still commits
			w.failPending(errClosed)
			return
		}
		for w.commitReady() {
		}
	}
}

// commitReady commits the signed prefix of the queue and the received
// records, and reports whether it did anything.
func (w *writer) commitReady() bool {
	w.mu.Lock()
	n := 0
	for n < len(w.queue) && w.queue[n].ready {
		n++
	}
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	mesh, failed := w.mesh, w.failed
	w.mu.Unlock()
	w.rmu.Lock()
	recv := w.received
	w.received = nil
	w.rmu.Unlock()
	if n == 0 && len(recv) == 0 {
		return false
	}
	if failed != nil {
		for _, sl := range batch {
			sl.done <- errStorage
		}
		return true
	}

	signBatches(batch)
	var own []crdt.Record
	var nextSeq uint64
	for _, sl := range batch {
		if sl.err != nil {
			w.log.Error("record signing failed; its dots stay unused", "err", sl.err)
		} else {
			own = append(own, sl.recs...)
		}
		if len(sl.recs) > 0 {
			nextSeq = sl.recs[len(sl.recs)-1].Head().Seq + 1
		}
	}
	start := time.Now()
	nrecv, err := w.db.commit(w.author, own, nextSeq, recv)
	if err != nil {
		w.log.Error("durable store failed; refusing writes", "err", err)
		w.mu.Lock()
		w.failed = err
		w.mu.Unlock()
		for _, sl := range batch {
			sl.done <- errStorage
		}
		return true
	}
	if w.onCommit != nil {
		w.onCommit(len(own), nrecv, time.Since(start))
	}
	if len(own) > 0 {
		if perr := mesh.Publish(own); perr != nil {
			// Durable but not applied here: a restart loads it.
			err = fmt.Errorf("issuer: publish: %w", perr)
			w.log.Error("publish failed", "err", perr)
		}
	}
	for _, sl := range batch {
		switch {
		case sl.err != nil:
			sl.done <- sl.err
		default:
			sl.done <- err
		}
	}
	return true
}

// signBatches signs the records of the slots left to the committer: one
// signature per run of consecutive records with the same signer, at most
// crdt.MaxBatch, signer records alone. A failure fails the slots of its
// run, whose dots then stay unused, as a failure to sign at write does.
func signBatches(slots []*slot) {
	var run []crdt.Record
	var runSlots []*slot
	var signer crdt.Signer
	gen := uint64(0)
	flush := func() {
		if len(run) > 0 {
			if err := crdt.SignBatch(run, signer); err != nil {
				for _, sl := range runSlots {
					sl.err = err
				}
			}
		}
		run, runSlots = nil, nil
	}
	for _, sl := range slots {
		if sl.batchSigner == nil || sl.err != nil {
			flush()
			continue
		}
		if signer == nil || sl.signGen != gen {
			flush()
			signer, gen = sl.batchSigner, sl.signGen
		}
		runSlots = append(runSlots, sl)
		for _, r := range sl.recs {
			if r.Kind() == crdt.KindSigner {
				flush()
				runSlots = append(runSlots, sl)
				if err := crdt.Sign(r, signer); err != nil {
					sl.err = err
				}
				continue
			}
			run = append(run, r)
			if len(run) == crdt.MaxBatch {
				flush()
				runSlots = append(runSlots, sl)
			}
		}
	}
	flush()
}

func (w *writer) failPending(err error) {
	w.mu.Lock()
	q := w.queue
	w.queue = nil
	w.mu.Unlock()
	for _, sl := range q {
		sl.done <- err
	}
}

// close stops accepting writes, commits those already signed and stops the
// committer. Writes still signing when it runs fail with errClosed.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	started := w.mesh != nil
	w.mu.Unlock()
	if !started {
		return
	}
	close(w.stop)
	<-w.done
}
