package sim

import "time"

// evKind says what a scheduled event does when it fires.
type evKind uint8

const (
	evDeliver evKind = iota + 1 // a message arrives at to
	evTimer                     // a timer of node to fires
	evFault                     // fault transition arg (see network.transitions)
	evView                      // membership views change: notify every live node
	evArrival                   // the workload's next request
	evConnect                   // a client's connect reaches a router; arg = connect index
	evCheck                     // drain: stop once everything converged
	evCall                      // data is a func() to call (tests drive runs with it)
)

// event is one entry of the scheduler. It is a value type so that the heap
// holds no pointers of its own and pushing or popping allocates nothing;
// data carries the shared, immutable payload of a message or timer.
type event struct {
	at    time.Duration // virtual time at which it fires
	seq   uint64        // tie-breaker at the same time: see scheduler
	data  any           // message payload or timer data
	arg   int64         // timer argument, connect index, fault transition
	size  int32         // message size in bytes
	to    NodeID        // receiving node
	from  NodeID        // sending node
	inc   uint32        // incarnation of to when scheduled (timers, reliable messages)
	kind  evKind        //
	flags msgFlags      //
	mk    uint16        // message or timer kind, chosen by the strategy
}

// msgFlags are the boolean attributes of a Message on the heap.
type msgFlags uint8

const (
	flagState    msgFlags = 1 << iota // counts in bytes/messages metrics
	flagReliable                      // stream: delayed, never lost
)

// scheduler is a 4-ary min-heap of events ordered by (at, seq). Ordering by
// a sequence number makes runs deterministic: nothing depends on heap
// internals or on map order. The run's global heap stamps seq in push
// order (push); the shards' heaps of node events take the key the run
// gives (pushKeyed), which does not depend on how nodes are sharded.
//
// Invariant: for every i > 0, !less(h[i], h[(i-1)/4]).
type scheduler struct {
	h   []event
	seq uint64
}

func less(a, b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// push schedules ev, stamping its sequence number.
func (s *scheduler) push(ev event) {
	s.seq++
	ev.seq = s.seq
	s.pushKeyed(ev)
}

// pushKeyed schedules ev with the sequence number it carries.
func (s *scheduler) pushKeyed(ev event) {
	s.h = append(s.h, ev)
	h := s.h
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !less(&ev, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = ev
}

// pop removes and returns the earliest event. The heap must not be empty.
func (s *scheduler) pop() event {
	h := s.h
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h[n] = event{} // drop the payload reference
	h = h[:n]
	s.h = h
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := min(c+4, n)
		for j := c + 1; j < end; j++ {
			if less(&h[j], &h[m]) {
				m = j
			}
		}
		if !less(&h[m], &last) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = last
	return top
}

func (s *scheduler) len() int { return len(s.h) }

// peekTime returns the time of the earliest event; the heap must not be empty.
func (s *scheduler) peekTime() time.Duration { return s.h[0].at }
