package sim

import (
	"math"
	"time"
)

// Driving a run from outside the model (live mode, package sim/live).
//
// Run is one loop over virtual time: the run's own events (the workload's
// requests and connects, fault transitions, drain checks) and the nodes'
// (messages and timers), with the network model in between. A driver
// whose nodes do their own messaging and timing, such as live mode's real
// memberlist meshes on the wall clock, needs only the first half. RawRun
// is that half, in the manner of etcd raft's RawNode: it does no I/O,
// reads no clock and starts no goroutine; its driver says what time it is
// and what its nodes did, and gets the same workload, the same fault
// schedule and a report with Run's definitions.

// RawRun is a run whose nodes' messages and timers are the driver's own:
// the workload, the fault schedule and the bookkeeping behind the report.
// It is not safe for concurrent use; its driver calls it from one
// goroutine, the node callbacks it makes included (a Controller.Write may
// call Acked before it returns). Times are run times: the time since the
// driver's time zero.
type RawRun struct{ r *run }

// NewRawRun prepares a run of top with the strategy that f creates,
// reported under name, and creates its nodes (Strategy.NewNode, in NodeID
// order). A driven node uses its Env for Info and Cluster only: it sends,
// times and reports nothing through it, but reports to the RawRun, at the
// time its driver gives.
func NewRawRun(top *Topology, name string, f Factory, cfg Config) (*RawRun, error) {
	r, err := newRun(top, name, f, cfg)
	if err != nil {
		return nil, err
	}
	return &RawRun{r}, nil
}

// Cluster returns the run's read-only description.
func (rr *RawRun) Cluster() *Cluster { return rr.r.cl }

// Start schedules the workload, the fault schedule and the drain checks
// from time zero, and starts every node (Node.Start).
func (rr *RawRun) Start() { rr.r.start() }

// Next returns when the driver must call Advance next at the latest: the
// time of the next scheduled event, or the end of the run (the workload,
// the last fault and Config.MaxDrain) if that is earlier.
func (rr *RawRun) Next() time.Duration {
	next := rr.r.end
	if rr.r.sched.len() > 0 {
		next = min(next, rr.r.sched.peekTime())
	}
	return next
}

// Advance runs every scheduled event due at or before now, each at its own
// time, as Run does: requests reach controllers (Controller.Write),
// connects reach routers (Router.Admit), faults begin and heal. A node that
// a fault takes down is told so if it is a Crasher, after the transition;
// a node that comes back is restarted (Node.Restart).
func (rr *RawRun) Advance(now time.Duration) {
	r := rr.r
	for r.sched.len() > 0 && !r.stopped && r.sched.peekTime() <= now {
		ev := r.sched.pop()
		r.now = ev.at
		r.events++
		if ev.kind != evFault {
			r.dispatch(&ev)
			continue
		}
		before := append([]bool(nil), r.alive...)
		r.dispatch(&ev)
		for i, up := range r.alive {
			if c, ok := r.nodes[i].(Crasher); ok && before[i] && !up {
				c.Crash(r.now)
			}
		}
	}
}

// Done reports whether the run is over at now: it converged (every write
// applied at every node, all digests equal), or now reached its end.
func (rr *RawRun) Done(now time.Duration) bool { return rr.r.stopped || now >= rr.r.end }

// Applied reports that node can enforce write id from time at (Env.Applied).
func (rr *RawRun) Applied(at time.Duration, node NodeID, id EventID) {
	rr.r.now = at
	rr.r.applied(node, id)
}

// Acked reports that write id was acknowledged to its client at at
// (Env.Acked).
func (rr *RawRun) Acked(at time.Duration, id EventID) {
	rr.r.now = at
	rr.r.acked(id)
}

// Answer reports router's verdict v on the connect of an Admission at at
// (Env.Answer).
func (rr *RawRun) Answer(at time.Duration, router NodeID, connect int32, v Verdict) {
	rr.r.now = at
	rr.r.answer(router, connect, v)
}

// Result returns the run's result, as it stands when the run ended at now,
// with the traffic the driver's network carried in place of the model
// network's counts. WallSeconds is left to the driver.
func (rr *RawRun) Result(now time.Duration, t Traffic) *Result {
	r := rr.r
	r.now = now
	copy(r.bytesRecv, t.BytesRecv)
	copy(r.msgsRecv, t.MsgsRecv)
	copy(r.regionBytes, t.RegionBytes)
	r.deliveries = t.Deliveries
	r.dropped = t.Dropped
	return r.result()
}

// Crasher is implemented by the nodes of a RawRun whose state lives
// outside the simulator, such as live mode's meshes, which must stop as a
// crashed process does. The nodes of Run need no such call: the simulator
// stops delivering their messages and timers.
type Crasher interface {
	// Crash says that a fault took the node down at now. Node.Restart
	// follows when the fault ends.
	Crash(now time.Duration)
}

// Traffic is what a driver's network carried, counted as Run counts the
// model network's: it gives the report's bytes, messages, deliveries and
// drops.
type Traffic struct {
	// BytesRecv and MsgsRecv are, by NodeID, the state-carrying bytes and
	// messages each node received.
	BytesRecv, MsgsRecv []int64
	// RegionBytes are the bytes carried between regions, by region pair
	// (from*R+to, R regions).
	RegionBytes []int64
	// Deliveries counts every message delivered.
	Deliveries int64
	// Dropped counts what the network did not deliver.
	Dropped DropStats
}

// Partitions returns the run's partition schedule, which a driver's
// network applies; crashes are the driver's through Crasher.
func (rr *RawRun) Partitions() *Partitions { return &Partitions{newNetwork(rr.r.cl)} }

// Partitions answers when the topology's partitions separate two nodes.
// It is read-only, so safe for concurrent use.
type Partitions struct{ n *network }

// HealAt returns the first run time at or after t at which no partition
// separates a and b: t itself when none does. ok is false if one does
// until the end of time.
func (p *Partitions) HealAt(a, b NodeID, t time.Duration) (heal time.Duration, ok bool) {
	h := p.n.healAt(a, b, t)
	return h, h != never
}

// StreamRetry returns when a stream transfer first sent at sent, and
// blocked by a partition until heal, gets through: at its first
// retransmission at or after heal (Env.Send). ok is false if the stream
// gives up first.
func StreamRetry(sent, heal time.Duration) (at time.Duration, ok bool) {
	at = streamRetry(sent, heal)
	return at, at != never
}

// StreamLossDelay returns the time that lost attempts add to a stream
// transfer of size bytes (Env.Send): a retransmission timeout, from 200ms
// doubling up to 60s, for each attempt that lost says was lost, given the
// attempt's packets (ceil(size/MaxDatagram)). The stream never gives up
// here; drivers bound it with their own timeouts.
func StreamLossDelay(size int, lost func(packets int64) bool) time.Duration {
	var d time.Duration
	for rto := minRTO; lost(packets(int32(min(size, math.MaxInt32)), true)); rto = min(2*rto, maxRTO) {
		d += rto
	}
	return d
}

// Mix64 is splitmix64's finaliser, from which a run derives its random
// streams (its seed and a small integer each); a driver derives its own
// the same way.
func Mix64(x uint64) uint64 { return mix64(x) }
