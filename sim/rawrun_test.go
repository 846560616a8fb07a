package sim

import (
	"slices"
	"testing"
	"time"
)

// rawDriver drives a RawRun the way live mode does, in virtual time here:
// its nodes have no messages of their own; a controller acknowledges a
// write at once and every node applies it applyAfter later, or at its
// restart if it is down then.
type rawDriver struct {
	d        *RawRun
	nodes    []*rawNode
	applies  []rawApply // by time
	crashes  []string   // "name@time"
	restarts []string
	admits   int
}

type rawApply struct {
	at   time.Duration
	node NodeID
	id   EventID
}

type rawNode struct {
	drv     *rawDriver
	info    NodeInfo
	down    bool
	applied []EventID // in order; the digest is their count
	missed  []EventID // writes that came while down
}

const applyAfter = 10 * time.Millisecond

func (drv *rawDriver) NewNode(env *Env) Node {
	n := &rawNode{drv: drv, info: env.Info()}
	drv.nodes = append(drv.nodes, n)
	return n
}

func (n *rawNode) Start(time.Duration)                    {}
func (n *rawNode) Receive(time.Duration, NodeID, Message) {}
func (n *rawNode) Timer(time.Duration, Timer)             {}
func (n *rawNode) MembershipChanged(time.Duration)        {}
func (n *rawNode) Digest() uint64                         { return uint64(len(n.applied)) }
func (n *rawNode) Admit(now time.Duration, q Admission) {
	n.drv.admits++
	n.drv.d.Answer(now, n.info.ID, q.Connect, Accept)
}
func (n *rawNode) Crash(now time.Duration) {
	n.down = true
	n.drv.crashes = append(n.drv.crashes, n.at(now))
}
func (n *rawNode) at(now time.Duration) string { return n.info.Name + "@" + now.String() }
func (n *rawNode) apply(at time.Duration, id EventID) {
	n.applied = append(n.applied, id)
	n.drv.d.Applied(at, n.info.ID, id)
}
func (n *rawNode) Write(now time.Duration, w *Write) {
	n.drv.d.Acked(now, w.ID)
	for _, m := range n.drv.nodes {
		n.drv.applies = append(n.drv.applies, rawApply{now + applyAfter, m.info.ID, w.ID})
	}
}

func (n *rawNode) Restart(now time.Duration) {
	n.down = false
	n.drv.restarts = append(n.drv.restarts, n.at(now))
	for _, id := range n.missed {
		n.apply(now, id)
	}
	n.missed = nil
}

// run advances the RawRun and delivers the applies in time order until
// the run is done, and returns the time it ended.
func (drv *rawDriver) run() time.Duration {
	var now time.Duration
	for {
		drv.d.Advance(now)
		for len(drv.applies) > 0 && drv.applies[0].at <= now {
			a := drv.applies[0]
			drv.applies = drv.applies[1:]
			if n := drv.nodes[a.node]; n.down {
				n.missed = append(n.missed, a.id)
			} else {
				n.apply(a.at, a.id)
			}
		}
		if drv.d.Done(now) {
			return now
		}
		now = drv.d.Next()
		if len(drv.applies) > 0 {
			now = min(now, drv.applies[0].at)
		}
	}
}

// TestRawRunGivesRunsFiguresForADriversNodes: a driver that acknowledges
// every write at once and applies it everywhere 10ms later gets the
// workload, the fault schedule (a crash reported through Crasher, then a
// restart) and the report of a model run: every write and connect, sync
// delays of exactly 10ms for the fault-free pairs, catch-up pairs for the
// crashed router, convergence, and the driver's traffic in the counts.
func TestRawRunGivesRunsFiguresForADriversNodes(t *testing.T) {
	top, err := ParseTopology("raw.yaml", []byte(`
name: raw
seed: 3
duration: 2s
regions:
  - {name: a, controllers: 1, routers: 2}
  - {name: b, controllers: 1, routers: 2}
latency: {intra: 1ms, links: [[a, b, 30ms]]}
workload: {rate: 10/s, mix: {issue: 100}}
faults:
  - {at: 500ms, crash: router/b/1, for: 500ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	drv := &rawDriver{}
	d, err := NewRawRun(top, "raw", func(*Cluster) (Strategy, error) { return drv, nil }, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	drv.d = d
	if got := len(d.Cluster().Nodes); got != 6 || len(drv.nodes) != 6 {
		t.Fatalf("%d nodes in the cluster, %d created; want 6", got, len(drv.nodes))
	}
	d.Start()
	end := drv.run()
	nR := d.Cluster().NumRegions()
	res := d.Result(end, Traffic{
		BytesRecv: []int64{0, 600, 600, 0, 600, 600}, MsgsRecv: []int64{0, 20, 20, 0, 20, 20},
		RegionBytes: make([]int64, nR*nR), Deliveries: 80, Dropped: DropStats{Down: 2},
	})

	if want := []string{"router/b/1@500ms"}; !slices.Equal(drv.crashes, want) {
		t.Errorf("crashes %v; want %v", drv.crashes, want)
	}
	if want := []string{"router/b/1@1s"}; !slices.Equal(drv.restarts, want) {
		t.Errorf("restarts %v; want %v", drv.restarts, want)
	}
	// A client that picked the crashed router does not connect.
	if res.Events != 20 || res.Connects != drv.admits || drv.admits == 0 || res.Undelivered != 0 || !res.Converged || res.Stats.CatchUpPairs == 0 {
		t.Errorf("events %d, connects %d (%d admitted), undelivered %d, converged %v, catch-up pairs %d; want 20, those admitted, 0, true and some",
			res.Events, res.Connects, drv.admits, res.Undelivered, res.Converged, res.Stats.CatchUpPairs)
	}
	if res.SyncDelayMs != (Quantiles4{10, 10, 10, 10}) || res.IssueLatencyMs != (Quantiles2{}) {
		t.Errorf("sync delay %+v ms, issue latency %+v ms; want 10 throughout and 0", res.SyncDelayMs, res.IssueLatencyMs)
	}
	if res.Stats.SimTime != end || end >= top.Duration+DefaultConfig().MaxDrain {
		t.Errorf("sim time %v, ended at %v: want the end, before the drain bound", res.Stats.SimTime, end)
	}
	if res.BytesPerEventPerNode != 20 || res.MessagesPerEventPerNode != round(80.0/20/6) ||
		res.Stats.Deliveries != 80 || res.DroppedMessages.Down != 2 {
		t.Errorf("bytes %v, messages %v per event per node, deliveries %d, dropped %+v; want the driver's traffic: 20, %v, 80, 2 down",
			res.BytesPerEventPerNode, res.MessagesPerEventPerNode, res.Stats.Deliveries, res.DroppedMessages, round(80.0/20/6))
	}
}
