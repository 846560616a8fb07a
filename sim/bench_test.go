package sim

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// treeStrategy is the cheapest plausible dissemination, to measure what the
// simulator itself costs per delivery: a controller sends each write to the
// first node of every region, and node i of a region forwards it to nodes
// 16i+1 .. 16i+16 of its region (each node receives it once).
type treeStrategy struct{ cl *Cluster }

type treeNode struct {
	s      *treeStrategy
	env    *Env
	region []NodeID // this node's region, controllers first
	pos    int
	have   eventSet
}

func (s *treeStrategy) NewNode(env *Env) Node {
	info := env.Info()
	region := append(append([]NodeID(nil), s.cl.RegionControllers[info.Region]...), s.cl.RegionRouters[info.Region]...)
	pos := 0
	for i, id := range region {
		if id == env.ID() {
			pos = i
		}
	}
	return &treeNode{s: s, env: env, region: region, pos: pos}
}

func (n *treeNode) Start(time.Duration)             {}
func (n *treeNode) Timer(time.Duration, Timer)      {}
func (n *treeNode) MembershipChanged(time.Duration) {}
func (n *treeNode) Restart(time.Duration)           {}
func (n *treeNode) Digest() uint64                  { return n.have.digest }
func (n *treeNode) Admit(_ time.Duration, q Admission) {
	v := RejectUnknown
	if n.have.has(q.CertWrite) {
		v = Accept
	}
	n.env.Answer(q.Connect, v)
}

func (n *treeNode) Write(_ time.Duration, w *Write) {
	n.env.Acked(w.ID)
	n.apply(w)
	for r, ctrls := range n.s.cl.RegionControllers {
		first := append(ctrls, n.s.cl.RegionRouters[r]...)
		if len(first) > 0 && first[0] != n.env.ID() {
			n.env.Send(first[0], Message{Payload: w, Size: 300, State: true})
		}
	}
}

func (n *treeNode) Receive(_ time.Duration, _ NodeID, m Message) { n.apply(m.Payload.(*Write)) }

func (n *treeNode) apply(w *Write) {
	if !n.have.add(w.ID) {
		return
	}
	n.env.Applied(w.ID)
	for c := 16*n.pos + 1; c <= 16*n.pos+16 && c < len(n.region); c++ {
		n.env.Send(n.region[c], Message{Payload: w, Size: 300, State: true})
	}
}

// BenchmarkSimulatorOverhead runs the tree strategy over 5 regions at 100
// writes/s for 30s: one delivery per node per write, so the figure is the
// simulator's own cost per delivery (scheduler, network model, metrics).
func BenchmarkSimulatorOverhead(b *testing.B) {
	for _, routers := range []int{400, 2000} {
		b.Run(fmt.Sprintf("routers=%dx5", routers), func(b *testing.B) {
			top := mustTopology(b, fmt.Sprintf(`
duration: 30s
regions:
  - {name: us-east, controllers: 1, routers: %[1]d, location: {lat: 38.9, lon: -77.0}}
  - {name: us-west, controllers: 1, routers: %[1]d, location: {lat: 37.4, lon: -122.1}}
  - {name: eu-west, controllers: 1, routers: %[1]d, location: {lat: 53.3, lon: -6.3}}
  - {name: ap-southeast, controllers: 1, routers: %[1]d, location: {lat: 1.35, lon: 103.8}}
  - {name: ap-northeast, controllers: 1, routers: %[1]d, location: {lat: 35.7, lon: 139.7}}
jitter: 10%%
loss: 1%%
workload: {rate: 100/s}
`, routers))
			b.ReportAllocs()
			var deliveries int64
			for range b.N {
				r, err := newRun(top, "tree", func(c *Cluster) (Strategy, error) { return &treeStrategy{c}, nil }, DefaultConfig().withSeed(1))
				if err != nil {
					b.Fatal(err)
				}
				r.start()
				r.runUntil(r.end)
				res := r.result()
				deliveries += res.Stats.Deliveries
			}
			b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deliveries), "ns/delivery")
		})
	}
}

// BenchmarkMeshWorkers runs the mesh strategy (real stores and cores) on
// 2,000 routers in 5 regions at 100 writes/s for 5s, stepped by one worker
// and by one per CPU: the ratio of their deliveries/s, in one run, is what
// parallel stepping buys on the machine (the scale target's 10,000 routers
// are meshsim's job: docs/meshsim.md, "Scale").
func BenchmarkMeshWorkers(b *testing.B) {
	top := mustTopology(b, `
duration: 5s
regions:
  - {name: us-east, controllers: 1, routers: 400, location: {lat: 38.9, lon: -77.0}}
  - {name: us-west, controllers: 1, routers: 400, location: {lat: 37.4, lon: -122.1}}
  - {name: eu-west, controllers: 1, routers: 400, location: {lat: 53.3, lon: -6.3}}
  - {name: ap-southeast, controllers: 1, routers: 400, location: {lat: 1.35, lon: 103.8}}
  - {name: ap-northeast, controllers: 1, routers: 400, location: {lat: 35.7, lon: 139.7}}
latency: {intra: 1ms}
jitter: 10%
loss: 1%
workload: {rate: 100/s}
`)
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var deliveries int64
			for range b.N {
				cfg := DefaultConfig().withSeed(1)
				cfg.Workers = workers
				res, err := Run(top, "mesh", cfg)
				if err != nil {
					b.Fatal(err)
				}
				deliveries += res.Stats.Deliveries
			}
			b.ReportMetric(float64(deliveries)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
