package sim

import (
	"math"
	"slices"
	"testing"
	"time"
)

const twoRegions = `
name: net
duration: 10s
regions:
  - {name: a, controllers: 1, routers: 1}
  - {name: b, controllers: 0, routers: 1}
latency: {intra: 1ms, links: [[a, b, 40ms]]}
workload: {rate: 0/s}
`

// sendEvery makes from send n datagrams to to, one every step from start.
func sendEvery(r *run, from, to NodeID, start, step time.Duration, n int, reliable bool) {
	for i := range n {
		r.at(from, start+time.Duration(i)*step, func(e *Env) {
			e.Send(to, Message{Size: 100, Kind: 7, State: true, Reliable: reliable})
		})
	}
}

func delays(rcv []received, step time.Duration) []time.Duration {
	var ds []time.Duration
	for _, m := range rcv {
		// Sends are at multiples of step and delays are shorter than step.
		ds = append(ds, m.at%step)
	}
	slices.Sort(ds)
	return ds
}

func TestDelayDistribution(t *testing.T) {
	top := mustTopology(t, twoRegions+"jitter: 10%\n")
	r, s := newScriptRun(t, top, 3)
	const n, step = 20000, 100 * time.Millisecond
	sendEvery(r, 1, 2, 0, step, n, false) // router/a/0 -> router/b/0
	r.runUntil(never)
	ds := delays(s.nodes[2].received, step)
	if len(ds) != n {
		t.Fatalf("%d of %d delivered without loss", len(ds), n)
	}
	// One-way delay = 40ms * uniform(1, 1.1): check the bounds and the quantiles.
	if ds[0] < 40*time.Millisecond || ds[n-1] >= 44*time.Millisecond {
		t.Fatalf("delays span [%v, %v], want within [40ms, 44ms)", ds[0], ds[n-1])
	}
	for _, p := range []float64{0.1, 0.5, 0.9} {
		got := ds[int(p*n)]
		want := time.Duration(float64(40*time.Millisecond) * (1 + 0.1*p))
		if diff := got - want; diff < -100*time.Microsecond || diff > 100*time.Microsecond {
			t.Errorf("p%.0f delay %v, want %v ± 0.1ms", p*100, got, want)
		}
	}
	// Back the other way and inside a region: same base, symmetric; intra 1ms.
	r2, s2 := newScriptRun(t, mustTopology(t, twoRegions), 3)
	r2.at(2, 0, func(e *Env) { e.Send(1, Message{Size: 1}) })
	r2.at(0, 0, func(e *Env) { e.Send(1, Message{Size: 1}) })
	r2.runUntil(never)
	got := []time.Duration{s2.nodes[1].received[0].at, s2.nodes[1].received[1].at}
	if want := []time.Duration{time.Millisecond, 40 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("arrivals at router/a/0 %v, want %v (no jitter)", got, want)
	}
}

func TestLossRate(t *testing.T) {
	top := mustTopology(t, twoRegions+"loss: 5%\n")
	r, s := newScriptRun(t, top, 11)
	const n = 40000
	sendEvery(r, 1, 2, 0, time.Millisecond, n, false)
	sendEvery(r, 2, 1, 0, time.Second, 1000, true)
	r.runUntil(never)
	got := float64(len(s.nodes[2].received)) / n
	// Binomial standard deviation is about 0.0011; allow four.
	if math.Abs(got-0.95) > 0.0045 {
		t.Errorf("delivered %.4f of datagrams, want 0.95 ± 0.0045", got)
	}
	if r.dropped.Loss != int64(n-len(s.nodes[2].received)) {
		t.Errorf("loss counter %d, lost %d", r.dropped.Loss, n-len(s.nodes[2].received))
	}
	if len(s.nodes[1].received) != 1000 {
		t.Errorf("reliable: %d of 1000 delivered", len(s.nodes[1].received))
	}
	late := 0
	for _, m := range s.nodes[1].received {
		if m.at%time.Second != 40*time.Millisecond {
			late++
		}
	}
	if late < 20 || late > 90 {
		t.Errorf("%d of 1000 reliable messages were retransmitted, want about 50 (5%%)", late)
	}
}

func TestPartitionBlocksBothWaysAndHeals(t *testing.T) {
	top := mustTopology(t, twoRegions+"faults: [{at: 1s, partition: [[a], [b]], for: 1s}]\n")
	r, s := newScriptRun(t, top, 1)
	send := func(at time.Duration, from, to NodeID, reliable bool) {
		r.at(from, at, func(e *Env) { e.Send(to, Message{Size: 10, Kind: uint16(at / time.Millisecond), Reliable: reliable}) })
	}
	send(500*time.Millisecond, 1, 2, false)  // before: delivered at 540ms
	send(500*time.Millisecond, 2, 1, false)  // before, other way: delivered
	send(980*time.Millisecond, 1, 2, false)  // in flight when the partition starts: lost
	send(1500*time.Millisecond, 1, 2, false) // during, a to b: blocked
	send(1500*time.Millisecond, 2, 1, false) // during, b to a: blocked
	send(1500*time.Millisecond, 0, 1, false) // during, inside a: delivered
	send(1500*time.Millisecond, 1, 2, true)  // during, stream: retransmitted after the heal
	send(2500*time.Millisecond, 1, 2, false) // after the heal: delivered
	send(2500*time.Millisecond, 2, 1, false) // after, other way: delivered
	lines := traceLines(r)
	r.runUntil(never)
	at := func(n int) (out []time.Duration) {
		for _, m := range s.nodes[n].received {
			out = append(out, m.at)
		}
		return out
	}
	ms := time.Millisecond
	if got, want := at(2), []time.Duration{540 * ms, 2140 * ms, 2540 * ms}; !slices.Equal(got, want) {
		t.Errorf("router/b/0 received at %v, want %v\n%s", got, want, joinLines(*lines))
	}
	if got, want := at(1), []time.Duration{540 * ms, 1501 * ms, 2540 * ms}; !slices.Equal(got, want) {
		t.Errorf("router/a/0 received at %v, want %v", got, want)
	}
	if r.dropped.Partition != 3 {
		t.Errorf("partition drops %d, want 3", r.dropped.Partition)
	}
	// Membership: the cut is seen after detection (2s default), the heal at once.
	for _, c := range []struct {
		at time.Duration
		up bool
	}{{999 * ms, true}, {1500 * ms, true}, {1999 * ms, true}, {2000 * ms, true}} {
		if got := r.net.seenUp(1, 2, c.at); got != c.up {
			t.Errorf("seenUp(a->b) at %v = %v, want %v (a 1s cut is shorter than detection)", c.at, got, c.up)
		}
	}
}

func TestMembershipViewAndCrash(t *testing.T) {
	top := mustTopology(t, twoRegions+`
membership: {detection: 500ms}
faults:
  - {at: 1s, crash: router/b/0, for: 2s}
  - {at: 5s, partition: [[a], [b]], for: 1s}
`)
	r, s := newScriptRun(t, top, 1)
	ms := time.Millisecond
	fired := 0
	r.at(2, 500*ms, func(e *Env) { e.After(time.Second, Timer{Data: func(*Env) { fired++ }}) }) // due at 1.5s, during the crash
	r.at(2, 3500*ms, func(e *Env) { e.After(0, Timer{Data: func(*Env) { fired += 10 }}) })
	r.at(1, 2*time.Second, func(e *Env) { e.Send(2, Message{Size: 1}) }) // to a crashed node
	r.runUntil(never)
	if fired != 10 {
		t.Errorf("timers: %d, want only the one armed after the restart (10)", fired)
	}
	if len(s.nodes[2].received) != 0 || r.dropped.Down != 1 {
		t.Errorf("crashed node received %d messages, %d dropped", len(s.nodes[2].received), r.dropped.Down)
	}
	if s.nodes[2].restarts != 1 {
		t.Errorf("restarts %d", s.nodes[2].restarts)
	}
	for _, c := range []struct {
		at time.Duration
		up bool
	}{
		{1499 * ms, true}, {1500 * ms, false}, {2999 * ms, false}, {3000 * ms, true}, // crash seen after 500ms, restart at once
		{5499 * ms, true}, {5500 * ms, false}, {6000 * ms, true}, // partition likewise
	} {
		if got := r.net.seenUp(0, 2, c.at); got != c.up {
			t.Errorf("seenUp(controller/a/0 -> router/b/0) at %v = %v, want %v", c.at, got, c.up)
		}
	}
	if !r.net.seenUp(2, 2, 2*time.Second) {
		t.Error("a node must see itself up")
	}
	if got := r.net.firstReachable(0, 2, 1500*ms); got != 3*time.Second {
		t.Errorf("firstReachable = %v, want 3s", got)
	}
}

func TestOversizeDatagramDropped(t *testing.T) {
	r, s := newScriptRun(t, mustTopology(t, twoRegions), 1)
	r.at(0, 0, func(e *Env) {
		e.Send(1, Message{Size: MaxDatagram + 1})
		e.Send(1, Message{Size: 10 * MaxDatagram, Reliable: true, State: true})
	})
	r.runUntil(never)
	if len(s.nodes[1].received) != 1 || r.dropped.Oversize != 1 {
		t.Fatalf("received %d, oversize drops %d", len(s.nodes[1].received), r.dropped.Oversize)
	}
	if r.msgsRecv[1] != 10 || r.bytesRecv[1] != 10*MaxDatagram {
		t.Errorf("a 14,000-byte stream counts %d packets and %d bytes, want 10 and 14000", r.msgsRecv[1], r.bytesRecv[1])
	}
}

func TestSchedulerOrder(t *testing.T) {
	var s scheduler
	r := newRand(5)
	var want []event
	for i := range 5000 {
		ev := event{at: time.Duration(r.IntN(100)), arg: int64(i)}
		s.push(ev)
		ev.seq = s.seq
		want = append(want, ev)
	}
	slices.SortStableFunc(want, func(a, b event) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return int(a.seq) - int(b.seq)
	})
	for i := range want {
		got := s.pop()
		if got.at != want[i].at || got.arg != want[i].arg {
			t.Fatalf("pop %d = (%v, %d), want (%v, %d)", i, got.at, got.arg, want[i].at, want[i].arg)
		}
	}
	if s.len() != 0 {
		t.Fatal("heap not empty")
	}
}

func BenchmarkScheduler(b *testing.B) {
	var s scheduler
	r := newRand(1)
	for range 100000 {
		s.push(event{at: time.Duration(r.IntN(1e9))})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ev := s.pop()
		ev.at += time.Duration(r.IntN(1e8))
		s.push(ev)
	}
}

// TestBackToBackCrashes checks that a crash starting when another of the
// same node ends leaves the node down, whatever the order in the file.
func TestBackToBackCrashes(t *testing.T) {
	top := mustTopology(t, twoRegions+`
faults:
  - {at: 2s, crash: router/b/0, for: 1s}
  - {at: 1s, crash: router/b/0, for: 1s}
`)
	r, s := newScriptRun(t, top, 1)
	r.runUntil(2500 * time.Millisecond)
	if r.alive[2] || s.nodes[2].restarts != 1 {
		t.Errorf("at 2.5s: alive %v, restarts %d; want down after one restart", r.alive[2], s.nodes[2].restarts)
	}
	r.runUntil(never)
	if !r.alive[2] || s.nodes[2].restarts != 2 {
		t.Errorf("at the end: alive %v, restarts %d", r.alive[2], s.nodes[2].restarts)
	}
}
