package sim

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel stepping (docs/meshsim-model.md: 10,000 routers on two
// cores). The nodes are split into shards, each with its own heap of node
// events (deliveries and timers); the run's own heap keeps the global
// events (faults, views, the workload, drain checks), which run alone.
// Between global events, virtual time advances in windows no longer than
// the lookahead, the smallest one-way base delay of the topology: a
// message sent at t arrives at t+lookahead or later, so inside a window no
// shard can affect another and the shards step their nodes at the same
// time. A message for another shard waits in an outbox until the window
// is over; what a node reports to the workload's bookkeeping (Applied,
// Acked, Refused, Answer), which all shards share, is noted and replayed
// in (time, node) order at the end of the window. Nothing a node reads
// depends on those reports, and what they schedule (connects, failovers)
// lies a round trip or more ahead, beyond the window.
//
// A run's result does not depend on the number of shards: every node event
// carries a key made of the node that scheduled it and that node's count of
// events scheduled so far, each node draws its network randomness from its
// own source, and the notes replay in an order fixed by time and node. A
// run with one shard goes through the same windows as a run with eight.

// parallelStrategy is implemented by strategies whose nodes share no
// mutable state except through their Env (shared immutable data is fine),
// so that nodes of different shards may be stepped at the same time.
// Other strategies run on one shard, with the same result.
type parallelStrategy interface {
	Parallel() bool
}

// shardsPerWorker: the workers take shards from a common list in each
// window, so that one shard with more work (more controllers, say) does
// not hold the others up.
const shardsPerWorker = 2

// maxShards bounds the shards of a run.
const maxShards = 256

// shard is the part of a run that one goroutine steps during a window.
type shard struct {
	id    int
	sched scheduler // node events of this shard's nodes
	now   time.Duration
	// active is set while the shard steps a window: sends to other shards
	// go to the outbox and reports to the workload are noted.
	active bool
	// out[p][d] holds events for shard d scheduled in a window of parity
	// p; shard d takes them at the start of the next window. outMin[p] is
	// the earliest of them.
	out    [2][][]event
	outMin [2]time.Duration
	notes  []note

	// Counters, folded into the run's by foldShards.
	events, deliveries int64
	dropped            DropStats
	regionBytes        []int64
}

// noteKind says which workload report a note replays.
type noteKind uint8

const (
	noteApplied noteKind = iota + 1
	noteAcked
	noteRefused
	noteAnswer
)

// note is a node's report to the workload, made during a window.
type note struct {
	at      time.Duration
	seq     uint32 // order of the shard's notes: a node's notes keep their order
	node    NodeID
	kind    noteKind
	verdict Verdict
	id      int32 // EventID, or the connect for noteAnswer
}

// initShards splits the nodes into shards for workers goroutines
// (GOMAXPROCS when zero): shardsPerWorker shards each, or one shard and one
// worker when the strategy is not a parallelStrategy or the topology has a
// zero delay. start calls it again with one worker for a traced run.
func (r *run) initShards(workers int) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	r.lookahead = never
	for _, d := range r.cl.delay {
		r.lookahead = min(r.lookahead, d)
	}
	if ps, ok := r.strat.(parallelStrategy); !ok || !ps.Parallel() || r.lookahead <= 0 {
		workers = 1
	}
	r.lookahead = max(r.lookahead, 1) // with a zero delay: windows of one instant, one shard
	r.workers = max(1, min(workers, len(r.nodes)))
	n := 1
	if r.workers > 1 {
		n = min(r.workers*shardsPerWorker, maxShards, len(r.nodes))
	}
	r.shards = make([]*shard, n)
	for i := range r.shards {
		sh := &shard{id: i, regionBytes: make([]int64, len(r.regionBytes)), outMin: [2]time.Duration{never, never}}
		for p := range sh.out {
			sh.out[p] = make([][]event, n)
		}
		r.shards[i] = sh
	}
}

// shardOf returns the shard that steps node id.
func (r *run) shardOf(id NodeID) *shard { return r.shards[int(id)%len(r.shards)] }

// nowIn is the virtual time in the context of shard sh: its own clock
// while it steps a window, the run's otherwise.
func (r *run) nowIn(sh *shard) time.Duration {
	if sh.active {
		return sh.now
	}
	return r.now
}

// schedule pushes node event ev, scheduled by node origin in the context of
// shard sh, onto the heap of the shard of ev.to.
func (r *run) schedule(sh *shard, origin NodeID, ev event) {
	r.pushed[origin]++
	ev.seq = uint64(origin+1)<<40 | r.pushed[origin]
	dst := r.shardOf(ev.to)
	if !sh.active || dst == sh {
		dst.sched.pushKeyed(ev)
		return
	}
	p := r.windows & 1
	sh.out[p][dst.id] = append(sh.out[p][dst.id], ev)
	sh.outMin[p] = min(sh.outMin[p], ev.at)
}

// report runs a node's report to the workload, or notes it for the end of
// the window when the node's shard is stepping one.
func (r *run) report(sh *shard, n note) {
	if !sh.active {
		r.replay(&n)
		return
	}
	n.at = sh.now
	n.seq = uint32(len(sh.notes))
	sh.notes = append(sh.notes, n)
}

func (r *run) replay(n *note) {
	switch n.kind {
	case noteApplied:
		r.applied(n.node, EventID(n.id))
	case noteAcked:
		r.acked(EventID(n.id))
	case noteRefused:
		r.refused(n.node, EventID(n.id))
	case noteAnswer:
		r.answer(n.node, n.id, n.verdict)
	}
}

// nextNodeEvent returns the time of the earliest node event, in a heap or
// in an outbox, or never.
func (r *run) nextNodeEvent() time.Duration {
	t := never
	p := (r.windows - 1) & 1 // the last window's outboxes
	for _, sh := range r.shards {
		if sh.sched.len() > 0 {
			t = min(t, sh.sched.peekTime())
		}
		t = min(t, sh.outMin[p])
	}
	return t
}

// window steps every shard through the node events before end, then
// replays the notes in order.
func (r *run) window(end time.Duration) {
	in := (r.windows - 1) & 1 // outboxes filled by the last window
	step := func(sh *shard) {
		for _, from := range r.shards {
			box := from.out[in][sh.id]
			for _, ev := range box {
				sh.sched.pushKeyed(ev)
			}
			clear(box)
			from.out[in][sh.id] = box[:0]
		}
		sh.active = true
		for sh.sched.len() > 0 && sh.sched.peekTime() < end {
			ev := sh.sched.pop()
			sh.now = ev.at
			if r.trace != nil {
				r.now = ev.at // trace lines carry r.now; a traced run has one shard
			}
			sh.events++
			r.dispatchNode(sh, &ev)
		}
		sh.active = false
		slices.SortFunc(sh.notes, compareNotes)
	}
	if r.workers == 1 {
		for _, sh := range r.shards {
			step(sh)
		}
	} else {
		var (
			next atomic.Int32
			wg   sync.WaitGroup
		)
		work := func() {
			for i := int(next.Add(1)) - 1; i < len(r.shards); i = int(next.Add(1)) - 1 {
				step(r.shards[i])
			}
		}
		for range r.workers - 1 {
			wg.Go(work)
		}
		work()
		wg.Wait()
	}
	r.windows++
	last := r.now
	for _, sh := range r.shards {
		sh.outMin[in] = never
		last = max(last, sh.now)
	}
	r.replayNotes()
	r.now = last
}

// compareNotes orders notes by time, then node, then the order in which
// the node made them.
func compareNotes(a, b note) int {
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.node, b.node), cmp.Compare(a.seq, b.seq))
}

// replayNotes merges the shards' sorted notes and replays them in order.
func (r *run) replayNotes() {
	heads := make([]int, len(r.shards))
	for {
		var next *note
		from := -1
		for i, sh := range r.shards {
			if heads[i] < len(sh.notes) && (next == nil || compareNotes(sh.notes[heads[i]], *next) < 0) {
				next, from = &sh.notes[heads[i]], i
			}
		}
		if next == nil {
			break
		}
		heads[from]++
		r.now = next.at
		r.replay(next)
	}
	for _, sh := range r.shards {
		sh.notes = sh.notes[:0]
	}
}

// foldShards adds the shards' counters to the run's, once the run is over
// (or paused, in tests).
func (r *run) foldShards() {
	for _, sh := range r.shards {
		r.events += sh.events
		r.deliveries += sh.deliveries
		r.dropped.Loss += sh.dropped.Loss
		r.dropped.Partition += sh.dropped.Partition
		r.dropped.Down += sh.dropped.Down
		r.dropped.Oversize += sh.dropped.Oversize
		r.dropped.Queue += sh.dropped.Queue
		for i, b := range sh.regionBytes {
			r.regionBytes[i] += b
		}
		sh.events, sh.deliveries, sh.dropped = 0, 0, DropStats{}
		clear(sh.regionBytes)
	}
}
