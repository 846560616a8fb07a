package mesh

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/gossip"
)

// nodeInfo is a member as memberlist last reported it.
type nodeInfo struct {
	node  memberlist.Node
	meta  nodeMeta
	state string    // "alive", "dead" or "left"
	down  time.Time // when it went dead or left
}

// Join backoff: from the first to the longest wait between rounds of join
// attempts while no seed answers.
const (
	minJoinBackoff = 200 * time.Millisecond
	maxJoinBackoff = 30 * time.Second
)

// reconnectFanout is how many failed members one reconnect round tries:
// one that answers brings the membership of its side along.
const reconnectFanout = 2

// settleTime is how long after it starts a node joins its seeds every
// reconnect round (see reconnect).
const settleTime = 30 * time.Second

// otherSeeds drops this node's own address from the seeds.
func (m *Mesh) otherSeeds() []string {
	self := map[string]bool{m.Addr(): true}
	if m.cfg.Advertise != "" {
		self[m.cfg.Advertise] = true
	}
	if _, port, err := splitHostPort(m.cfg.Bind); err == nil && port != 0 {
		self[m.cfg.Bind] = true
	}
	var out []string
	for _, s := range m.cfg.Join {
		if !self[s] {
			out = append(out, s)
		}
	}
	return out
}

// nodeAlive handles a member that joined, came back or changed.
func (m *Mesh) nodeAlive(n *memberlist.Node) {
	if n.Name == m.cfg.Core.Name {
		return
	}
	meta, err := parseMeta(n.Meta)
	if err != nil {
		return // NotifyAlive refused it already
	}
	m.nodesMu.Lock()
	ni, known := m.nodes[n.Name]
	restarted := !known || ni.state != "alive" || ni.meta.Boot != meta.Boot
	if !known {
		ni = &nodeInfo{}
		m.nodes[n.Name] = ni
	}
	ni.node = *n
	ni.node.Addr = slices.Clone(n.Addr)
	ni.node.Meta = slices.Clone(n.Meta)
	ni.meta = meta
	ni.state = "alive"
	m.nodesMu.Unlock()
	m.sawPeer.Store(true)
	if restarted {
		m.log.Info("gossip: member up", "member", n.Name, "role", meta.Role.String(), "region", meta.Region, "addr", n.Address())
	}
	m.updateMemberMetrics()
	m.enqueue(input{kind: inMember, member: gossip.Member{Name: n.Name, Role: meta.Role, Region: meta.Region}, sync: restarted}, false)
}

// nodeGone handles a member that left or was declared dead.
func (m *Mesh) nodeGone(n *memberlist.Node) {
	if n.Name == m.cfg.Core.Name {
		return
	}
	m.nodesMu.Lock()
	ni, known := m.nodes[n.Name]
	if known {
		if ni.state == "alive" {
			ni.down = m.clock()
		}
		ni.state = "dead"
		if ni.meta.Leaving {
			ni.state = "left"
		}
		m.log.Info("gossip: member down", "member", n.Name, "state", ni.state)
	}
	alive := 0
	for _, o := range m.nodes {
		if o.state == "alive" {
			alive++
		}
	}
	forget := len(m.nodes) > 4096
	if forget {
		m.forgetGoneLocked()
	}
	m.nodesMu.Unlock()
	if forget {
		m.pruneProven()
	}
	m.updateMemberMetrics()
	if !known {
		return
	}
	m.enqueue(input{kind: inGone, from: n.Name}, false)
	if alive == 0 {
		select {
		case m.lostPeers <- struct{}{}:
		default:
		}
	}
}

// forgetGoneLocked drops members that left or died, keeping the map of a
// churning mesh bounded. The caller holds nodesMu.
func (m *Mesh) forgetGoneLocked() {
	for name, ni := range m.nodes {
		if ni.state != "alive" {
			delete(m.nodes, name)
		}
	}
}

func (m *Mesh) alivePeers() int {
	m.nodesMu.RLock()
	defer m.nodesMu.RUnlock()
	n := 0
	for _, ni := range m.nodes {
		if ni.state == "alive" {
			n++
		}
	}
	return n
}

func (m *Mesh) updateMemberMetrics() {
	counts := map[[2]string]int{{m.cfg.Core.Role.String(), labelValue(m.cfg.Core.Region)}: 1}
	m.nodesMu.RLock()
	for _, ni := range m.nodes {
		if ni.state == "alive" {
			counts[[2]string{ni.meta.Role.String(), labelValue(ni.meta.Region)}]++
		}
	}
	m.nodesMu.RUnlock()
	m.met.setMembers(counts)
}

// joinLoop joins the seeds in the background: with backoff while none
// answers, and again at once whenever the node has lost every peer. Every
// ReconnectInterval it also reconnects (see reconnect).
func (m *Mesh) joinLoop() {
	defer m.wg.Done()
	backoff := minJoinBackoff
	warned := false
	wrong := map[string]bool{} // seeds already reported as not mesh ports
	tick := time.NewTicker(m.cfg.ReconnectInterval/2 + rand.N(m.cfg.ReconnectInterval/2+1))
	defer tick.Stop()
	for {
		if len(m.seeds) > 0 && m.alivePeers() == 0 {
			m.joins.Add(1)
			n, err := m.ml.Join(m.seeds)
			m.noteJoin(err)
			// A seed that is not a mesh port is a mistake in the
			// configuration: said at once, and once.
			for seed, why := range wrongSeeds(err, wrong) {
				wrong[seed] = true
				m.log.Error("gossip: "+why, "seed", seed)
			}
			switch {
			case m.alivePeers() > 0:
				m.joined.Store(true)
				m.log.Info("gossip: joined the mesh", "seeds_answering", n)
				backoff, warned = minJoinBackoff, false
			case !warned && m.clock().Sub(m.started) >= m.cfg.JoinTimeout:
				m.log.Warn("gossip: no seed answers; retrying in the background", "seeds", m.seeds, "err", err)
				warned = true
			default:
				m.log.Debug("gossip: join", "seeds", m.seeds, "err", err)
			}
		}
		var retry *time.Timer
		var fire <-chan time.Time
		if len(m.seeds) > 0 && m.alivePeers() == 0 {
			retry = time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			fire = retry.C
			backoff = min(2*backoff, maxJoinBackoff)
		}
		select {
		case <-m.stop:
			if retry != nil {
				retry.Stop()
			}
			return
		case <-m.lostPeers:
			m.log.Warn("gossip: lost every peer; joining the seeds again")
			backoff = minJoinBackoff
		case <-fire:
		case <-tick.C:
			tick.Reset(m.cfg.ReconnectInterval/2 + rand.N(m.cfg.ReconnectInterval+1))
			m.reconnect()
		}
		if retry != nil {
			retry.Stop()
		}
	}
}

// reconnect tries to rejoin what memberlist itself no longer reaches, as
// Serf does: reconnectFanout random members that failed (not left) within
// ReconnectTimeout, and the seeds while no controller is alive. The second
// heals the split after every controller restarts: the routers still see
// each other, so they never lose every peer, and the controllers, joining
// only each other, do not know them. During its first settleTime a node
// also joins its seeds every round: nodes that start together (a whole
// cluster) learn each other even where one missed another's announcement,
// rather than at memberlist's next push-pull (30 s). The joins run
// concurrently, so an unreachable address costs one TCP timeout, not one
// each.
func (m *Mesh) reconnect() {
	now := m.clock()
	var failed []string
	controller := m.cfg.Core.Role == gossip.RoleController
	m.nodesMu.RLock()
	for _, ni := range m.nodes {
		switch {
		case ni.state == "alive" && ni.meta.Role == gossip.RoleController:
			controller = true
		case ni.state == "dead" && now.Sub(ni.down) < m.cfg.ReconnectTimeout:
			failed = append(failed, ni.node.Address())
		}
	}
	m.nodesMu.RUnlock()
	rand.Shuffle(len(failed), func(i, j int) { failed[i], failed[j] = failed[j], failed[i] })
	targets := failed[:min(len(failed), reconnectFanout)]
	if !controller || now.Sub(m.started) < settleTime {
		targets = append(targets, m.seeds...)
	}
	if len(targets) == 0 {
		return
	}
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, addr := range slices.Compact(slices.Sorted(slices.Values(targets))) {
		wg.Go(func() {
			m.joins.Add(1)
			if n, _ := m.ml.Join([]string{addr}); n > 0 {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	m.log.Debug("gossip: reconnect", "tried", targets, "answered", answered.Load(), "controller_alive", controller)
}

// MemberStatus is one member as this node sees it: the members of the
// status answer (api.MemberStatus).
type MemberStatus = api.MemberStatus

// Members returns every member this node knows of, itself included, sorted
// by name.
func (m *Mesh) Members() []MemberStatus {
	out := []MemberStatus{{Name: m.cfg.Core.Name, Role: m.cfg.Core.Role.String(), Region: m.cfg.Core.Region, State: "alive"}}
	m.nodesMu.RLock()
	for name, ni := range m.nodes {
		out = append(out, MemberStatus{Name: name, Role: ni.meta.Role.String(), Region: ni.meta.Region, State: ni.state})
	}
	m.nodesMu.RUnlock()
	m.mu.Lock()
	for i := range out[1:] {
		out[i+1].Lag, _ = m.core.PeerLag(out[i+1].Name)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
