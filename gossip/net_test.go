package gossip

import (
	"container/heap"
	"crypto/sha512"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
)

// testNet is a small in-test network in virtual time: per-message delay,
// loss, duplication and reordering (by jitter). It is deliberately not
// sim/: it only has to exercise the core.
type testNet struct {
	t      testing.TB
	rng    *rand.Rand
	now    time.Time
	nodes  map[string]*Core
	down   map[string]bool
	q      deliveryQueue
	seq    int
	loss   float64
	dup    float64
	drop   func(from, to string, m *Message) bool // if set, true drops the message
	delay  func(from, to string) time.Duration
	region map[string]string
	wants  map[string][]WantResult // resolved pulls, by node
	order  []string                // node names, sorted; rebuilt when nodes change
	// slice, when set, steps each message slice records at a time
	// (Stepping), as gossip/mesh's loop does with long messages.
	slice int
}

type delivery struct {
	at       time.Time
	seq      int
	from, to string
	msg      *Message
}

type deliveryQueue []delivery

func (q deliveryQueue) Len() int { return len(q) }
func (q deliveryQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q deliveryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)   { *q = append(*q, x.(delivery)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	*q = old[:len(old)-1]
	return d
}

var epoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// newTestNet builds nodes "ctrl-<region>" (controllers) and
// "r-<region>-<i>" (routers) over the given regions; cross-region delay is
// 40ms, intra 1ms, each with up to 50% jitter (which reorders).
func newTestNet(t testing.TB, seed uint64, regions []string, routersPer int, v *testVerifier) *testNet {
	return newTestNetConfig(t, seed, regions, routersPer, v, func(cfg *Config) {
		cfg.Fanout = 3 // deep trees even in small regions
	})
}

// newTestNetConfig is newTestNet with each node's config adjusted by edit.
func newTestNetConfig(t testing.TB, seed uint64, regions []string, routersPer int, v *testVerifier, edit func(*Config)) *testNet {
	n := &testNet{
		t: t, rng: rand.New(rand.NewPCG(seed, 1)), now: epoch,
		nodes: make(map[string]*Core), down: make(map[string]bool), region: make(map[string]string),
		wants: make(map[string][]WantResult),
	}
	n.delay = func(from, to string) time.Duration {
		base := time.Millisecond
		if n.region[from] != n.region[to] {
			base = 40 * time.Millisecond
		}
		return base + time.Duration(n.rng.Float64()*0.5*float64(base))
	}
	var members []Member
	for _, r := range regions {
		members = append(members, Member{Name: "ctrl-" + r, Role: RoleController, Region: r})
		for i := 0; i < routersPer; i++ {
			members = append(members, Member{Name: fmt.Sprintf("r-%s-%d", r, i), Role: RoleRouter, Region: r})
		}
	}
	for i, m := range members {
		cfg := DefaultConfig()
		cfg.Name, cfg.Role, cfg.Region = m.Name, m.Role, m.Region
		if edit != nil {
			edit(&cfg)
		}
		c, err := NewCore(cfg, crdt.NewStore(), v, rand.New(rand.NewPCG(seed, uint64(i)+2)))
		if err != nil {
			t.Fatal(err)
		}
		n.nodes[m.Name] = c
		n.region[m.Name] = m.Region
	}
	for _, c := range n.nodes {
		for _, m := range members {
			c.SetMember(m)
		}
	}
	return n
}

// flush moves every node's output into the network.
func (n *testNet) flush() { n.flushNodes(n.names()) }

// flushNodes moves the output of the named nodes, in this order, into the
// network.
func (n *testNet) flushNodes(names []string) {
	for _, name := range names {
		c := n.nodes[name]
		rd := c.Ready()
		n.wants[name] = append(n.wants[name], rd.Wants...)
		for _, o := range rd.Messages {
			if n.down[name] || n.drop != nil && n.drop(name, o.To, o.Msg) {
				continue
			}
			copies := 1
			if n.rng.Float64() < n.dup {
				copies = 2
			}
			for i := 0; i < copies; i++ {
				if !o.Reliable && n.rng.Float64() < n.loss {
					continue
				}
				n.seq++
				heap.Push(&n.q, delivery{at: n.now.Add(n.delay(name, o.To)), seq: n.seq, from: name, to: o.To, msg: o.Msg})
			}
		}
	}
}

func (n *testNet) names() []string {
	if len(n.order) == len(n.nodes) {
		return n.order
	}
	n.order = n.order[:0]
	for name := range n.nodes {
		n.order = append(n.order, name)
	}
	slices.Sort(n.order)
	return n.order
}

// run advances virtual time by d, delivering messages and ticking nodes.
// Only nodes that were stepped or ticked can have new output or a new
// deadline, so after a first full pass only those are looked at again
// (what tests do to nodes between runs is picked up by that first pass).
func (n *testNet) run(d time.Duration) {
	end := n.now.Add(d)
	names := n.names()
	index := make(map[string]int, len(names))
	deadlines := make([]time.Time, len(names))
	touched := make([]bool, len(names))
	for i, name := range names {
		index[name] = i
		touched[i] = true
	}
	var dirty []string
	refresh := func() {
		dirty = dirty[:0]
		for i, t := range touched {
			if t {
				dirty = append(dirty, names[i])
				touched[i] = false
			}
		}
		n.flushNodes(dirty)
		for _, name := range dirty {
			deadlines[index[name]] = n.nodes[name].NextDeadline()
		}
	}
	for {
		refresh()
		next := end
		if len(n.q) > 0 && n.q[0].at.Before(next) {
			next = n.q[0].at
		}
		for _, dl := range deadlines {
			if !dl.IsZero() && dl.Before(next) {
				next = dl
			}
		}
		if next.Before(n.now) {
			next = n.now
		}
		n.now = next
		for len(n.q) > 0 && !n.q[0].at.After(n.now) {
			dv := heap.Pop(&n.q).(delivery)
			if !n.down[dv.to] {
				n.step(n.nodes[dv.to], proven(dv.from), dv.msg)
				touched[index[dv.to]] = true
			}
		}
		for i, name := range names {
			if !n.down[name] && !deadlines[i].After(n.now) {
				n.nodes[name].Tick(n.now)
				touched[i] = true
			}
		}
		if !n.now.Before(end) {
			refresh()
			return
		}
	}
}

// proven is the sender name as NodeAuth would have proven it: the test
// network has no impostors unless a test sends as one.
// step hands m to c, in one Step or in slices of n.slice records.
func (n *testNet) step(c *Core, from Sender, m *Message) {
	if n.slice == 0 {
		c.Step(n.now, from, m)
		return
	}
	s := c.Begin(n.now, from, m)
	for s.Ingest(n.slice) > 0 {
	}
	s.Finish()
}

func proven(name string) Sender {
	role := RoleRouter
	if strings.HasPrefix(name, "ctrl") {
		role = RoleController
	}
	return Sender{Name: name, Proven: true, Role: role}
}

// testVerifier signs with a per-author secret: a stand-in for the signer
// records and ECDSA of production, good enough to tell forged from genuine.
type testVerifier struct{ keys map[string][]byte }

func (v *testVerifier) key(author string) []byte {
	if v.keys == nil {
		v.keys = make(map[string][]byte)
	}
	if k, ok := v.keys[author]; ok {
		return k
	}
	k := []byte("secret-of-" + author)
	v.keys[author] = k
	return k
}

type testSigner struct{ key []byte }

func (s testSigner) Sign(msg []byte) (crdt.Signature, error) {
	h := sha512.Sum512(append(append([]byte{}, s.key...), msg...))
	var sig crdt.Signature
	copy(sig[:], h[:])
	return sig, nil
}

func (v *testVerifier) Verify(r crdt.Record, msg []byte) error {
	k, ok := v.keys[r.Head().Author.Name]
	if !ok {
		return trust.ErrUnknownSigner
	}
	want, _ := testSigner{k}.Sign(msg)
	if want != r.Head().Sig() {
		return fmt.Errorf("bad signature")
	}
	return nil
}

// writer authors records for one controller.
type writer struct {
	author crdt.Author
	seq    uint64
	signer testSigner
}

func newWriter(v *testVerifier, name string) *writer {
	return &writer{author: crdt.Author{Name: name, Incarnation: 1}, signer: testSigner{v.key(name)}}
}

func (w *writer) session(t testing.TB, c *Core, now time.Time, id byte) (*crdt.SessionRecord, *crdt.CertRecord) {
	w.seq++
	s := &crdt.SessionRecord{ID: crdt.SessionID{id, byte(w.seq)}, Identity: "user", Method: "oidc",
		Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(24 * time.Hour))}
	s.Header = crdt.Header{Author: w.author, Seq: w.seq, HLC: c.Now(now)}
	w.seq++
	cert := &crdt.CertRecord{Serial: crdt.Serial{id, byte(w.seq), 1}, Session: s.ID, Identity: "user",
		NotBefore: crdt.MillisOf(now.Add(-time.Minute)), NotAfter: crdt.MillisOf(now.Add(time.Hour))}
	cert.Header = crdt.Header{Author: w.author, Seq: w.seq, HLC: c.Now(now)}
	for _, r := range []crdt.Record{s, cert} {
		if err := crdt.Sign(r, w.signer); err != nil {
			t.Fatal(err)
		}
	}
	return s, cert
}
