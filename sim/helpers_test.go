package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// scriptStrategy is a strategy whose nodes do what a test tells them: a
// Timer whose Data is a func(*Env) runs it. Received messages are recorded.
type scriptStrategy struct {
	nodes []*scriptNode
}

type scriptNode struct {
	env      *Env
	received []received
	restarts int
	digest   uint64
}

type received struct {
	at   time.Duration
	from NodeID
	m    Message
}

func (s *scriptStrategy) NewNode(env *Env) Node {
	n := &scriptNode{env: env}
	s.nodes = append(s.nodes, n)
	return n
}

func (n *scriptNode) Start(time.Duration) {}
func (n *scriptNode) Receive(now time.Duration, from NodeID, m Message) {
	n.received = append(n.received, received{now, from, m})
}
func (n *scriptNode) Timer(now time.Duration, t Timer) {
	if f, ok := t.Data.(func(*Env)); ok {
		f(n.env)
	}
}
func (n *scriptNode) MembershipChanged(time.Duration)      {}
func (n *scriptNode) Restart(time.Duration)                { n.restarts++ }
func (n *scriptNode) Digest() uint64                       { return n.digest }
func (n *scriptNode) Write(now time.Duration, w *Write)    { n.env.Acked(w.ID); n.env.Applied(w.ID) }
func (n *scriptNode) Admit(now time.Duration, q Admission) { n.env.Answer(q.Connect, RejectUnknown) }

// newScriptRun starts a run of top with a scriptStrategy.
func newScriptRun(t testing.TB, top *Topology, seed int64) (*run, *scriptStrategy) {
	t.Helper()
	s := &scriptStrategy{}
	cfg := DefaultConfig().withSeed(seed)
	r, err := newRun(top, "script", func(*Cluster) (Strategy, error) { return s, nil }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.noStop = true
	r.start()
	return r, s
}

// at makes node id run f at virtual time t if it is up then.
func (r *run) at(id NodeID, t time.Duration, f func(*Env)) {
	r.sched.push(event{at: t, kind: evCall, data: func() {
		if r.alive[id] {
			f(&r.envs[id])
		}
	}})
}

// directStrategy is the simplest correct strategy: a controller acks a write
// at once and sends it straight to every other node in one datagram (or a
// reliable message); a router admits what it has. Its sync delay is the
// direct path's, so the report's figures can be checked by hand.
type directStrategy struct {
	reliable bool
	size     int32
}

type directNode struct {
	s    *directStrategy
	env  *Env
	have eventSet
}

func (s *directStrategy) NewNode(env *Env) Node { return &directNode{s: s, env: env} }

func (n *directNode) Start(time.Duration)             {}
func (n *directNode) Timer(time.Duration, Timer)      {}
func (n *directNode) MembershipChanged(time.Duration) {}
func (n *directNode) Restart(time.Duration)           {}
func (n *directNode) Digest() uint64                  { return n.have.digest }
func (n *directNode) Receive(now time.Duration, from NodeID, m Message) {
	if w := m.Payload.(*Write); n.have.add(w.ID) {
		n.env.Applied(w.ID)
	}
}
func (n *directNode) Write(now time.Duration, w *Write) {
	n.have.add(w.ID)
	n.env.Acked(w.ID)
	n.env.Applied(w.ID)
	for i := range n.env.Cluster().Nodes {
		if id := NodeID(i); id != n.env.ID() {
			n.env.Send(id, Message{Payload: w, Size: n.s.size, Kind: 1, State: true, Reliable: n.s.reliable})
		}
	}
}
func (n *directNode) Admit(now time.Duration, q Admission) {
	switch {
	case n.revoked(q.Session):
		n.env.Answer(q.Connect, RejectRevoked)
	case n.have.has(q.CertWrite):
		n.env.Answer(q.Connect, Accept)
	default:
		n.env.Answer(q.Connect, RejectUnknown)
	}
}
func (n *directNode) revoked(s SessionID) bool {
	for i, w := range n.have.bits {
		for b := 0; b < 64; b++ {
			if w&(1<<b) != 0 {
				if wr := n.env.Write(EventID(i*64 + b)); wr.Kind == WriteRevoke && wr.Session == s {
					return true
				}
			}
		}
	}
	return false
}

func init() {
	// test-reject-all applies nothing at routers and refuses every connect.
	register("test-reject-all", func(*Cluster) (Strategy, error) { return &scriptStrategy{}, nil })
	register("test-direct", func(*Cluster) (Strategy, error) { return &directStrategy{size: 300}, nil })
	register("test-direct-reliable", func(*Cluster) (Strategy, error) {
		return &directStrategy{size: 300, reliable: true}, nil
	})
}

// mustTopology parses a topology or fails the test.
func mustTopology(t testing.TB, yaml string) *Topology {
	t.Helper()
	top, err := ParseTopology("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// traceLines collects a run's trace with virtual timestamps.
func traceLines(r *run) *[]string {
	var lines []string
	r.trace = func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf("%v %s", r.now, fmt.Sprintf(format, args...)))
	}
	return &lines
}

func joinLines(lines []string) string { return strings.Join(lines, "\n") }

// reportJSON is the JSON report of results without what may differ between
// identical runs (wall_seconds and machine), for byte comparisons.
func reportJSON(t *testing.T, top *Topology, seed int64, results ...*Result) []byte {
	t.Helper()
	for _, res := range results {
		res.WallSeconds = 0
	}
	rep := NewReport(top, seed, "model", results)
	rep.Machine = Machine{}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

// withSeed returns c with Seed set.
func (c Config) withSeed(seed int64) Config {
	c.Seed = seed
	return c
}
