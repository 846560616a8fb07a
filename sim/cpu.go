package sim

import (
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// The mesh strategy's CPU model (docs/meshsim-model.md, "CPU").
//
// Without it a node handles every message the instant it arrives, so a
// login storm costs nothing. With it, each node has CPUParams.Cores cores
// and one queue, the mesh loop's: a received message is stepped into the
// core only once its cost has been served, and a controller's write is
// committed and acknowledged only once its signatures are made. A job goes
// to the core that frees first and its results come out in arrival order,
// as the real loop steps messages one after another while verification may
// spread over cores. What the model charges:
//
//   - a received message: VerifyProof if it carries a sender proof
//     (gossip.NeedsProof), VerifyBatch if it carries records the node does
//     not hold yet, and VerifyRecord + MergeRecord for each of them (records
//     the node holds already are dropped before verification, as
//     gossip.Core does);
//   - a write at its controller: SignBatch (one group commit) and
//     SignRecord for each of its records.
//
// Admission decisions, timers, sends and the join exchange are free: the
// data plane must not wait behind ingest, and the rest is small beside
// signatures. Messages with nothing to charge still wait their turn
// behind the jobs ahead of them.
//
// All costs are 0 by default: the model is off, every node handles
// messages as before, and a run's report is unchanged. A node crashes with
// its queue: queued messages are lost (repair and anti-entropy bring their
// records), queued writes are committed at its restart (a write's records
// are stamped when it reaches the controller, so its seqs are taken).

// CPUParams are the CPU model's costs per operation, and the cores of a
// node. Every cost is 0 by default (defaultCPU); docs/meshsim-model.md gives
// today's measured costs, and examples/topologies/login-storm.yaml uses them.
type CPUParams struct {
	Cores        int           // cores per node
	VerifyRecord time.Duration // one record's signature and author checks (trust.Verifier)
	VerifyBatch  time.Duration // once per received message that carries new records (a batch signature)
	MergeRecord  time.Duration // one record into the store (crdt.Store.MergeVerified)
	VerifyProof  time.Duration // a frame's sender proof (gossip.NodeAuth)
	SignRecord   time.Duration // one record signed at its controller
	SignBatch    time.Duration // once per write (a group commit's batch signature)
}

// defaultCPU is the model off: no cost; two cores once costs are given.
func defaultCPU() CPUParams { return CPUParams{Cores: 2} }

// on reports whether the model charges for anything.
func (p CPUParams) on() bool {
	return p.VerifyRecord > 0 || p.VerifyBatch > 0 || p.MergeRecord > 0 || p.VerifyProof > 0 ||
		p.SignRecord > 0 || p.SignBatch > 0
}

// meshTimerCPU fires when the job at the head of a node's queue is done.
const meshTimerCPU = 2

// cpuQueue is one node's CPU: when each core is free, and the jobs
// waiting for theirs to be served, in arrival order.
type cpuQueue struct {
	p    CPUParams
	free []time.Duration // virtual time each core is next free
	last time.Duration   // completion time of the latest job: jobs complete in order
	jobs []cpuJob        // queued, in arrival (= completion) order
	head int             // jobs[:head] are done

	busy, waited time.Duration // counters: CPU time served, time jobs spent queued
	waits        int64         // counters: jobs that did not complete as soon as served alone
}

// cpuJob is a received message or a write waiting for the CPU.
type cpuJob struct {
	done time.Duration
	from NodeID
	msg  *gossip.Message
	w    *Write // a write, with its records
	recs []crdt.Record
}

// newCPUQueue returns the queue of a node, nil when the model is off.
func newCPUQueue(p CPUParams) *cpuQueue {
	if !p.on() {
		return nil
	}
	return &cpuQueue{p: p, free: make([]time.Duration, max(p.Cores, 1))}
}

// signs reports whether writes cost anything.
func (q *cpuQueue) signs() bool { return q.p.SignRecord > 0 || q.p.SignBatch > 0 }

// admit serves a job of cost c arriving at now on the core that frees
// first, and returns when it completes: no sooner than the job ahead.
func (q *cpuQueue) admit(now, c time.Duration) time.Duration {
	core := 0
	for i, f := range q.free {
		if f < q.free[core] {
			core = i
		}
	}
	start := max(now, q.free[core])
	q.free[core] = start + c
	done := max(start+c, q.last)
	q.last = done
	q.busy += c
	if w := done - now - c; w > 0 {
		q.waits++
		q.waited += w
	}
	return done
}

// push queues a job and arms the timer of its completion.
func (n *meshNode) push(now time.Duration, j cpuJob) {
	n.cpu.jobs = append(n.cpu.jobs, j)
	n.env.After(j.done-now, Timer{Kind: meshTimerCPU, Arg: int64(j.done)})
}

// queueMessage charges a received message; false when it costs nothing
// and nothing waits ahead of it, so that the caller steps it now.
func (n *meshNode) queueMessage(now time.Duration, from NodeID, m *gossip.Message) bool {
	p := n.cpu.p
	var c time.Duration
	if gossip.NeedsProof(m) {
		c += p.VerifyProof
	}
	fresh := 0
	for _, r := range m.Records {
		if !n.store.Has(r.Head().Dot()) {
			fresh++
		}
	}
	if fresh > 0 {
		c += p.VerifyBatch + time.Duration(fresh)*(p.VerifyRecord+p.MergeRecord)
	}
	done := n.cpu.admit(now, c)
	if done == now && n.cpu.head == len(n.cpu.jobs) {
		return false
	}
	n.push(now, cpuJob{done: done, from: from, msg: m})
	return true
}

// queueWrite charges a write's signatures; it is committed when done.
func (c *meshController) queueWrite(now time.Duration, w *Write, recs []crdt.Record) {
	p := c.cpu.p
	done := c.cpu.admit(now, p.SignBatch+time.Duration(len(recs))*p.SignRecord)
	c.push(now, cpuJob{done: done, w: w, recs: recs})
}

// cpuDone runs the jobs whose time has come, in order.
func (n *meshNode) cpuDone(now time.Duration) {
	q := n.cpu
	if q == nil {
		return
	}
	for q.head < len(q.jobs) && q.jobs[q.head].done <= now {
		j := q.jobs[q.head]
		q.jobs[q.head] = cpuJob{}
		q.head++
		if j.w != nil {
			(&meshController{n}).commit(now, j.w, j.recs)
		} else {
			n.step(now, n.s.cl.Nodes[j.from].Name, j.msg)
		}
	}
	if q.head == len(q.jobs) {
		q.jobs, q.head = q.jobs[:0], 0
	}
}

// writes returns the writes still queued (nil for a nil queue).
func (q *cpuQueue) writes() []cpuJob {
	if q == nil {
		return nil
	}
	var out []cpuJob
	for _, j := range q.jobs[q.head:] {
		if j.w != nil {
			out = append(out, j)
		}
	}
	return out
}

// recommit commits, at a controller's restart, the writes its queue held
// when it crashed: their records were stamped, so their seqs are taken.
func (n *meshNode) recommit(now time.Duration, pending []cpuJob) {
	for _, j := range pending {
		(&meshController{n}).commit(now, j.w, j.recs)
	}
}

// cpuCounters adds the CPU model's counters (nothing when it is off):
// CPU time served and time jobs waited for a core, in microseconds over
// all nodes, and how many jobs waited.
func (n *meshNode) cpuCounters(add func(name string, v int64)) {
	if n.cpu == nil {
		return
	}
	add("cpu_busy_us", n.cpu.busy.Microseconds())
	add("cpu_wait_us", n.cpu.waited.Microseconds())
	add("cpu_waits", n.cpu.waits)
}

// cpuSettings are the CPU model's settings (mesh.cpu_*), appended to the
// table of settings.
var cpuSettings = []Setting{
	intSetting("mesh.cores", "mesh", "CPU model: cores per node", 1, 1024,
		func(p *Params) *int { return &p.Mesh.CPU.Cores }),
	cpuCost("mesh.cpu_verify_record", "one received record's verification (today ~70us)",
		func(c *CPUParams) *time.Duration { return &c.VerifyRecord }),
	cpuCost("mesh.cpu_verify_batch", "one batch signature, per received message with new records",
		func(c *CPUParams) *time.Duration { return &c.VerifyBatch }),
	cpuCost("mesh.cpu_merge_record", "one record's merge into the store (today ~0.4us)",
		func(c *CPUParams) *time.Duration { return &c.MergeRecord }),
	cpuCost("mesh.cpu_verify_proof", "one received frame's sender proof (today ~70us)",
		func(c *CPUParams) *time.Duration { return &c.VerifyProof }),
	cpuCost("mesh.cpu_sign_record", "one record signed at its controller (today ~25us)",
		func(c *CPUParams) *time.Duration { return &c.SignRecord }),
	cpuCost("mesh.cpu_sign_batch", "one batch signature, per write at its controller",
		func(c *CPUParams) *time.Duration { return &c.SignBatch }),
}

func cpuCost(key, help string, field func(*CPUParams) *time.Duration) Setting {
	return durationSetting(key, "mesh", "CPU model: "+help+"; 0: free",
		func(p *Params, _ *Topology) *time.Duration { return field(&p.Mesh.CPU) })
}

func init() { settings = append(settings, cpuSettings...) }
