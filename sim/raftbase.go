package sim

import (
	"fmt"
	"slices"
	"time"
)

// The "raft" baseline: a leader-based control plane as in Raft-based
// deployments such as OpenZiti's HA controllers (docs/meshsim-model.md,
// "The strategies").
//
//   - The leader is the first controller of the first region, or the one
//     raft.leader names (RaftParams.Leader). Leadership moves only when the
//     leader stops qualifying: a controller qualifies while it sees a
//     majority of controllers up (itself included) and a majority sees it
//     up, in the membership view (so a leader's crash or isolation is
//     noticed after membership.detection, comparable to Raft's election
//     timeout). The new leader is the first qualifying controller in
//     election order (raft.leader first, then topology order); it already
//     holds every committed entry (Raft's election restriction), applies
//     those it had not applied, and probes the followers so that they
//     catch up.
//   - A controller that receives a write forwards it to the leader and acks
//     the client when it learns that the write committed. While it sees no
//     leader, or cannot reach it, the write waits (and is retried after
//     every membership change). The leader appends the entry, replicates it
//     to every follower, and commits once a majority (itself included) has
//     acknowledged it; it then tells every follower at once (as etcd-raft
//     does; hashicorp/raft may wait up to CommitTimeout, 50ms).
//   - Every controller, on applying a committed entry, pushes it to the
//     routers attached to it: each router to one controller of its own
//     region (round robin), or to the nearest controller when its region
//     has none.
//   - All of it runs over streams (TCP): delayed by losses and partitions,
//     never lost; a stream to a crashed node breaks. How a stream gets
//     through once a partition heals is raft.reconnect (reconnect.go):
//     hashicorp/raft's transport by default. A restarted router asks
//     its controller for what it lacks; a restarted controller asks the
//     leader and probes its routers; the leader probes a follower that comes
//     back into view. Routers keep their state (a snapshot), controllers
//     their log.
//   - A router admits a known certificate, refuses a revoked one, and polls
//     an unknown one for up to 5s (OpenZiti), then refuses it.
func newRaftStrategy(c *Cluster) (Strategy, error) {
	s := &raftStrategy{cl: c, leader: -1, majority: len(c.Controllers)/2 + 1}
	// raft.leader: the preferred leader comes first in the election order.
	s.order = slices.Clone(c.Controllers)
	if l := c.Params.Raft.Leader; l != "" {
		name, err := c.Topology.raftLeader(l)
		if err != nil {
			return nil, fmt.Errorf("raft.leader: %w", err)
		}
		id, _ := c.NodeByName(name)
		i := slices.Index(s.order, id)
		s.order = append(append([]NodeID{id}, s.order[:i]...), s.order[i+1:]...)
	}
	n := len(c.Nodes)
	s.home = make([]NodeID, n)
	s.routersOf = make([][]NodeID, n)
	s.envs = make([]*Env, n)
	for region, routers := range c.RegionRouters {
		ctrls := c.RegionControllers[region]
		if len(ctrls) == 0 {
			best := c.Controllers[0]
			for _, ctrl := range c.Controllers {
				if c.RegionDelay(region, c.Nodes[ctrl].Region) < c.RegionDelay(region, c.Nodes[best].Region) {
					best = ctrl
				}
			}
			ctrls = []NodeID{best}
		}
		for i, rt := range routers {
			h := ctrls[i%len(ctrls)]
			s.home[rt] = h
			s.routersOf[h] = append(s.routersOf[h], rt)
		}
	}
	return s, nil
}

func init() { register("raft", newRaftStrategy) }

// Reconnect implements reconnecter: raft.reconnect (reconnect.go).
func (s *raftStrategy) Reconnect() ReconnectPolicy { return s.cl.Params.Raft.Reconnect }

// Header sizes of the raft baseline's messages.
const (
	raftHeader = 48 // an RPC header: type, term, index, ids
	pushHeader = 32 // a controller-to-router update header
)

// Message kinds of the raft baseline.
const (
	rkPropose   uint16 = iota + 1 // origin -> leader: a write
	rkAppend                      // leader -> follower: an entry
	rkAppendAck                   // follower -> leader
	rkCommit                      // leader -> follower: entry committed
	rkPush                        // controller -> router: a committed entry
	rkProbe                       // ask the receiver to send its version vector
	rkSyncReq                     // version vector: send me what I lack
	rkSyncResp                    // committed entries the receiver lacks
)

// KindName names the raft baseline's messages in traces.
func (s *raftStrategy) KindName(k uint16) string {
	names := [...]string{rkPropose: "propose", rkAppend: "append", rkAppendAck: "append-ack", rkCommit: "commit",
		rkPush: "push", rkProbe: "probe", rkSyncReq: "sync-req", rkSyncResp: "sync-resp"}
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("kind=%d", k)
}

type raftStrategy struct {
	cl        *Cluster
	order     []NodeID // controllers in election order: raft.leader first, then topology order
	majority  int
	leader    NodeID   // -1 while no controller qualifies
	term      int      // bumped at every leader change
	committed eventSet // entries a majority acknowledged: the committed log
	home      []NodeID // router -> the controller that pushes to it
	routersOf [][]NodeID
	envs      []*Env
}

// currentLeader returns the leader under the current membership views,
// electing a new one when the old one no longer qualifies.
func (s *raftStrategy) currentLeader() NodeID {
	if s.leader >= 0 && s.qualifies(s.leader) {
		return s.leader
	}
	prev := s.leader
	s.leader = -1
	for _, c := range s.order {
		if s.qualifies(c) {
			s.leader = c
			break
		}
	}
	if s.leader != prev {
		s.term++
	}
	return s.leader
}

func (s *raftStrategy) qualifies(c NodeID) bool {
	env := s.envs[c]
	sees, seen := 0, 0
	for _, o := range s.cl.Controllers {
		if env.Up(o) {
			sees++
		}
		if s.envs[o].Up(c) {
			seen++
		}
	}
	return sees >= s.majority && seen >= s.majority
}

func (s *raftStrategy) NewNode(env *Env) Node {
	s.envs[env.id] = env
	return &raftNode{s: s, env: env, ctrl: env.Info().Role == RoleController}
}

type raftNode struct {
	s    *raftStrategy
	env  *Env
	ctrl bool
	have eventSet // applied: committed entries (controllers), pushed ones (routers)
	adm  admitter // routers

	// Controllers.
	logged   eventSet // entries in the log (durable)
	pending  []*Write // writes received here and not yet acknowledged (volatile)
	term     int      // the strategy term this node last acted on
	inflight map[EventID]*raftEntry
	wasDown  []bool // leader: followers it saw down, by NodeID
}

type raftEntry struct {
	w    *Write
	acks int
	from []bool // by NodeID: who acknowledged
}

type raftMsg struct {
	term int
	w    *Write
	vv   *eventSet
	ids  []EventID
}

func (n *raftNode) send(to NodeID, kind uint16, size int, state bool, m *raftMsg) {
	n.env.Send(to, Message{Payload: m, Size: int32(size), Kind: kind, State: state, Reliable: true})
}

func (n *raftNode) Start(now time.Duration) {
	if n.ctrl {
		n.leaderCheck()
	}
}

func (n *raftNode) Digest() uint64 { return n.have.digest }

func (n *raftNode) Restart(now time.Duration) {
	if !n.ctrl {
		n.adm.waiting = nil
		n.send(n.s.home[n.env.id], rkSyncReq, int(vvBytes(n.s.cl)), true, &raftMsg{vv: n.have.clone()})
		return
	}
	n.pending, n.inflight, n.wasDown, n.term = nil, nil, nil, 0
	if l := n.s.currentLeader(); l >= 0 && l != n.env.id {
		n.send(l, rkSyncReq, int(vvBytes(n.s.cl)), true, &raftMsg{vv: n.have.clone()})
	}
	for _, rt := range n.s.routersOf[n.env.id] {
		n.send(rt, rkProbe, raftHeader, false, &raftMsg{})
	}
	n.leaderCheck()
}

func (n *raftNode) MembershipChanged(now time.Duration) {
	if n.ctrl {
		n.leaderCheck()
	}
}

// leaderCheck reacts to the leader under the current views: a new leader
// takes over, a controller forwards its waiting writes.
func (n *raftNode) leaderCheck() {
	s := n.s
	l := s.currentLeader()
	if l == n.env.id {
		if n.term != s.term {
			n.becomeLeader()
		}
		for _, c := range s.cl.Controllers {
			switch up := n.env.Up(c); {
			case !up:
				n.wasDown[c] = true
			case n.wasDown[c]:
				n.wasDown[c] = false
				n.send(c, rkProbe, raftHeader, false, &raftMsg{term: s.term})
			}
		}
	} else {
		n.inflight = nil
	}
	n.term = s.term
	for _, w := range n.pending {
		n.forward(w)
	}
}

func (n *raftNode) becomeLeader() {
	s := n.s
	n.inflight = make(map[EventID]*raftEntry)
	n.wasDown = make([]bool, len(s.cl.Nodes))
	for _, id := range s.committed.missingFrom(&n.have) {
		n.applyCommitted(n.env.Write(id))
	}
	for _, c := range s.cl.Controllers {
		if c != n.env.id {
			n.send(c, rkProbe, raftHeader, false, &raftMsg{term: s.term})
		}
	}
}

func (n *raftNode) Write(now time.Duration, w *Write) {
	n.pending = append(n.pending, w)
	n.forward(w)
}

// forward sends a waiting write to the leader if this node can reach it.
func (n *raftNode) forward(w *Write) {
	l := n.s.leader
	switch {
	case l == n.env.id:
		n.propose(w)
	case l >= 0 && n.env.Up(l):
		n.send(l, rkPropose, raftHeader+n.s.cl.WriteBytes(w), true, &raftMsg{term: n.s.term, w: w})
	}
}

// propose appends w at the leader and replicates it.
func (n *raftNode) propose(w *Write) {
	s := n.s
	switch {
	case s.committed.has(w.ID):
		if w.Controller == n.env.id {
			n.applyCommitted(w)
		} else {
			n.send(w.Controller, rkCommit, raftHeader, true, &raftMsg{term: s.term, w: w})
		}
		return
	case n.inflight == nil: // elected while this node was elsewhere in its callbacks
		n.becomeLeader()
		n.term = s.term
	case n.inflight[w.ID] != nil:
		return
	}
	n.logged.add(w.ID)
	e := &raftEntry{w: w, acks: 1, from: make([]bool, len(s.cl.Nodes))}
	e.from[n.env.id] = true
	n.inflight[w.ID] = e
	for _, c := range s.cl.Controllers {
		if c != n.env.id {
			n.send(c, rkAppend, raftHeader+s.cl.WriteBytes(w), true, &raftMsg{term: s.term, w: w})
		}
	}
	n.maybeCommit(e)
}

func (n *raftNode) maybeCommit(e *raftEntry) {
	s := n.s
	if e.acks < s.majority {
		return
	}
	delete(n.inflight, e.w.ID)
	s.committed.add(e.w.ID)
	n.applyCommitted(e.w)
	for _, c := range s.cl.Controllers {
		if c != n.env.id {
			n.send(c, rkCommit, raftHeader, true, &raftMsg{term: s.term, w: e.w})
		}
	}
}

// applyCommitted applies a committed entry at a controller: pushes it to
// its routers and, at the origin, acknowledges the client.
func (n *raftNode) applyCommitted(w *Write) {
	if w.Controller == n.env.id {
		n.env.Acked(w.ID)
		for i, p := range n.pending {
			if p == w {
				n.pending = append(n.pending[:i], n.pending[i+1:]...)
				break
			}
		}
	}
	if !n.have.add(w.ID) {
		return
	}
	n.logged.add(w.ID)
	n.env.Applied(w.ID)
	for _, rt := range n.s.routersOf[n.env.id] {
		n.send(rt, rkPush, pushHeader+n.s.cl.WriteBytes(w), true, &raftMsg{w: w})
	}
}

func (n *raftNode) Receive(now time.Duration, from NodeID, m Message) {
	s := n.s
	p := m.Payload.(*raftMsg)
	switch m.Kind {
	case rkPropose:
		if s.leader == n.env.id && n.inflight != nil {
			n.propose(p.w)
		}
	case rkAppend:
		if p.term == s.term {
			n.logged.add(p.w.ID)
			n.send(from, rkAppendAck, raftHeader, false, &raftMsg{term: p.term, w: p.w})
		}
	case rkAppendAck:
		if e := n.inflight[p.w.ID]; e != nil && p.term == s.term && !e.from[from] {
			e.from[from] = true
			e.acks++
			n.maybeCommit(e)
		}
	case rkCommit:
		n.applyCommitted(p.w)
	case rkPush:
		n.applyRouter(p.w)
	case rkProbe:
		n.send(from, rkSyncReq, int(vvBytes(s.cl)), true, &raftMsg{vv: n.have.clone()})
	case rkSyncReq:
		if lack := n.have.missingFrom(p.vv); len(lack) > 0 {
			size := raftHeader
			for _, id := range lack {
				size += s.cl.WriteBytes(n.env.Write(id))
			}
			n.send(from, rkSyncResp, size, true, &raftMsg{ids: lack})
		}
	case rkSyncResp:
		for _, id := range p.ids {
			if n.ctrl {
				n.applyCommitted(n.env.Write(id))
			} else {
				n.applyRouter(n.env.Write(id))
			}
		}
	}
}

func (n *raftNode) applyRouter(w *Write) {
	if n.have.add(w.ID) {
		n.env.Applied(w.ID)
		n.adm.applied(n.env, w)
	}
}

func (n *raftNode) Timer(now time.Duration, t Timer) {
	if t.Kind == timerAdmit {
		n.adm.timeout(n.env, int32(t.Arg))
	}
}

func (n *raftNode) Admit(now time.Duration, q Admission) {
	n.adm.admit(n.env, &n.have, q)
}
