package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// The "gossip" baseline: what memberlist's own broadcast does for Serf user
// events (docs/meshsim-model.md). It uses memberlist's real
// TransmitLimitedQueue, so the retransmit limit (RetransmitMult *
// ceil(log10(n+1))), the order of the queue (fewest transmits first, then
// largest, then newest) and the packet budget are memberlist's own:
//
//   - every GossipInterval (200ms, each node at its own random phase) a node
//     picks GossipNodes (3) random peers, alive or dead for less than
//     GossipToTheDeadTime (30s), as kRandomNodes does, and for each one takes
//     from its queue what fits in UDPBufferSize (1400) minus the compound
//     header and the encryption overhead, with memberlist's per-message
//     overheads; it sends nothing more when the queue is empty, and a
//     message larger than the budget is never sent;
//   - a node that receives an event for the first time re-queues it, as Serf
//     does for user events (without that a broadcast reaches only about
//     RetransmitMult*log10(n+1) nodes); the queue is pruned to Serf's
//     MaxQueueDepth (4096) every 30s;
//   - every 30s (random phase) a node runs a push-pull with one random live
//     peer over TCP (one RTT to connect): version vectors both ways, then
//     each side sends what the other lacks. Events learned so are not
//     re-broadcast, as in Serf. memberlist would scale this interval with
//     the cluster size (pushPullScale: 150s at 303 nodes); the architecture
//     asks for 30s. The member list that memberlist's push-pull also carries
//     is membership, not state, and is not counted.
//
// A controller acknowledges a write at once (Serf's UserEvent is local). On
// restart a node keeps its events (persisted) and loses its queue, then
// pushes-pulls at once as memberlist does when it joins.
//
// Not modelled: piggybacking of broadcasts on probe pings and acks (about
// 2 packets a second per node against gossip's 15), Serf's Lamport-time
// event buffer that drops events too far behind, memberlist's own
// membership broadcasts.
func newGossipStrategy(c *Cluster) (Strategy, error) {
	return &gossipStrategy{cl: c}, nil
}

func init() { register("gossip", newGossipStrategy) }

// memberlist and Serf constants (memberlist DefaultLANConfig, net.go,
// security.go; Serf DefaultConfig). The first four are the defaults of
// GossipParams (params.go), which a run may change.
const (
	gossipInterval         = 200 * time.Millisecond // GossipInterval
	gossipNodes            = 3                      // GossipNodes
	retransmitMult         = 4                      // RetransmitMult
	gossipToTheDeadTime    = 30 * time.Second       // GossipToTheDeadTime
	pushPullInterval       = 30 * time.Second       // PushPullInterval (unscaled)
	compoundHeaderOverhead = 2                      // type and count bytes of a compound message
	compoundOverhead       = 2                      // length prefix per part of a compound message
	userMsgOverhead        = 1                      // userMsg type byte
	encryptOverhead        = 29                     // AES-GCM version 1: version, 12-byte nonce, 16-byte tag
	serfEventOverhead      = 40                     // Serf messageUserEvent: type byte, msgpack map of LTime, Name, Payload, CC
	maxQueueDepth          = 4096                   // Serf MaxQueueDepth
	queueCheckInterval     = 30 * time.Second       // Serf QueueCheckInterval
	// gossipBudget is what one gossip packet may carry (state.go gossip()).
	gossipBudget = MaxDatagram - compoundHeaderOverhead - encryptOverhead
)

// Message and timer kinds of the gossip baseline.
const (
	gkGossip    uint16 = iota + 1 // a gossip packet of user messages
	gkPPReq                       // push-pull: initiator's version vector
	gkPPResp                      // push-pull: responder's version vector and what the initiator lacks
	gkPPRecords                   // push-pull: what the responder lacks
)

const (
	gtGossip       uint16 = iota + 1 // gossip round
	gtPushPull                       // push-pull round
	gtPushPullDial                   // push-pull: connected, send the version vector
	gtPrune                          // queue depth check
)

// KindName names the gossip baseline's messages in traces.
func (s *gossipStrategy) KindName(k uint16) string {
	names := [...]string{gkGossip: "gossip", gkPPReq: "pushpull-req", gkPPResp: "pushpull-resp", gkPPRecords: "pushpull-records"}
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("kind=%d", k)
}

type gossipStrategy struct {
	cl      *Cluster
	payload [][]byte // shared encoded message of each event, by EventID
}

// message returns the shared Serf user event of write w: its id in the
// first 4 bytes, zero padding to the size of the event framing and its
// records.
func (s *gossipStrategy) message(w *Write) []byte {
	for int(w.ID) >= len(s.payload) {
		s.payload = append(s.payload, nil)
	}
	if s.payload[w.ID] == nil {
		b := make([]byte, serfEventOverhead+s.cl.WriteBytes(w))
		binary.BigEndian.PutUint32(b, uint32(w.ID))
		s.payload[w.ID] = b
	}
	return s.payload[w.ID]
}

// recordBytes is the size of the records of writes ids.
func (s *gossipStrategy) recordBytes(env *Env, ids []EventID) int32 {
	n := 0
	for _, id := range ids {
		n += s.cl.WriteBytes(env.Write(id))
	}
	return int32(min(n, math.MaxInt32))
}

func (s *gossipStrategy) NewNode(env *Env) Node {
	g := &gossipNode{s: s, env: env}
	g.resetQueue()
	return g
}

type gossipNode struct {
	s      *gossipStrategy
	env    *Env
	q      *memberlist.TransmitLimitedQueue
	have   eventSet
	adm    admitter
	copies int64 // user messages received, duplicates included (tests)
}

// serfBroadcast is a queued user event. Serf's broadcast never invalidates
// another; marking it unique spares the queue a scan that has no effect.
type serfBroadcast struct{ msg []byte }

func (b *serfBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *serfBroadcast) Message() []byte                       { return b.msg }
func (b *serfBroadcast) Finished()                             {}
func (b *serfBroadcast) UniqueBroadcast()                      {}

var _ memberlist.UniqueBroadcast = (*serfBroadcast)(nil)

// gossipPacket is the payload of a gossip datagram: the user messages it
// carries (shared, immutable slices).
type gossipPacket struct{ msgs [][]byte }

// ppState is the payload of the push-pull messages.
type ppState struct {
	vv      *eventSet // the sender's version vector (a snapshot)
	records []EventID // records the receiver lacks
}

func (g *gossipNode) resetQueue() {
	n := len(g.s.cl.Nodes)
	// Serf's NumMembers counts failed members until they are reaped.
	g.q = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return n }, RetransmitMult: g.s.cl.Params.Gossip.RetransmitMult}
}

func (g *gossipNode) Start(now time.Duration) {
	rng := g.env.Rand()
	gp := g.s.cl.Params.Gossip
	g.env.After(time.Duration(rng.Int64N(int64(gp.Interval))), Timer{Kind: gtGossip})
	g.env.After(time.Duration(rng.Int64N(int64(gp.PushPullInterval))), Timer{Kind: gtPushPull})
	g.env.After(time.Duration(rng.Int64N(int64(queueCheckInterval))), Timer{Kind: gtPrune})
}

func (g *gossipNode) Restart(now time.Duration) {
	g.resetQueue()
	g.adm.waiting = nil
	g.Start(now)
	g.pushPull() // memberlist pushes-pulls with a peer when it joins
}

func (g *gossipNode) MembershipChanged(time.Duration) {}

func (g *gossipNode) Digest() uint64 { return g.have.digest }

func (g *gossipNode) Write(now time.Duration, w *Write) {
	g.apply(w.ID, true)
	g.env.Acked(w.ID)
}

func (g *gossipNode) Admit(now time.Duration, q Admission) {
	g.adm.admit(g.env, &g.have, q)
}

// apply adds id to the state; a new event is re-broadcast when rebroadcast.
func (g *gossipNode) apply(id EventID, rebroadcast bool) {
	if !g.have.add(id) {
		return
	}
	g.env.Applied(id)
	if rebroadcast {
		g.q.QueueBroadcast(&serfBroadcast{msg: g.s.message(g.env.Write(id))})
	}
	if g.env.Info().Role == RoleRouter {
		g.adm.applied(g.env, g.env.Write(id))
	}
}

func (g *gossipNode) Timer(now time.Duration, t Timer) {
	switch t.Kind {
	case gtGossip:
		g.gossip()
		g.env.After(g.s.cl.Params.Gossip.Interval, t)
	case gtPushPull:
		g.pushPull()
		g.env.After(g.s.cl.Params.Gossip.PushPullInterval, t)
	case gtPushPullDial:
		g.env.Send(NodeID(t.Arg), Message{
			Payload: &ppState{vv: g.have.clone()}, Size: vvBytes(g.s.cl),
			Kind: gkPPReq, State: true, Reliable: true,
		})
	case gtPrune:
		if g.q.NumQueued() > maxQueueDepth { // as Serf's checkQueueDepth (Prune panics on an empty queue)
			g.q.Prune(maxQueueDepth)
		}
		g.env.After(queueCheckInterval, t)
	case timerAdmit:
		g.adm.timeout(g.env, int32(t.Arg))
	}
}

// gossip is memberlist's gossip(): one packet to each of k random peers.
func (g *gossipNode) gossip() {
	for _, peer := range g.randomPeers(g.s.cl.Params.Gossip.Nodes, gossipToTheDeadTime) {
		msgs := g.q.GetBroadcasts(compoundOverhead+userMsgOverhead, gossipBudget)
		if len(msgs) == 0 {
			return
		}
		size := encryptOverhead
		for _, m := range msgs {
			size += userMsgOverhead + len(m)
		}
		if len(msgs) > 1 {
			size += compoundHeaderOverhead + compoundOverhead*len(msgs)
		}
		g.env.Send(peer, Message{Payload: &gossipPacket{msgs: msgs}, Size: int32(size), Kind: gkGossip, State: true})
	}
}

// randomPeers is memberlist's kRandomNodes: up to k distinct random peers
// other than this node, held up or down for less than deadFor.
func (g *gossipNode) randomPeers(k int, deadFor time.Duration) []NodeID {
	env := g.env
	nodes := len(env.r.cl.Nodes)
	now := env.Now()
	ok := func(p NodeID) bool {
		if p == env.id {
			return false
		}
		return env.r.net.seenUpWithin(env.id, p, now-deadFor, now)
	}
	peers := make([]NodeID, 0, k)
	rng := env.Rand()
	if nodes < 3*k {
		for _, i := range rng.Perm(nodes) {
			if len(peers) < k && ok(NodeID(i)) {
				peers = append(peers, NodeID(i))
			}
		}
		return peers
	}
outer:
	for i := 0; i < 3*nodes && len(peers) < k; i++ {
		p := NodeID(rng.IntN(nodes))
		if !ok(p) {
			continue
		}
		for _, q := range peers {
			if q == p {
				continue outer
			}
		}
		peers = append(peers, p)
	}
	return peers
}

// pushPull starts a push-pull with one random live peer: a TCP connect
// (one RTT), then the version vector.
func (g *gossipNode) pushPull() {
	peers := g.randomPeers(1, 0)
	if len(peers) == 0 {
		return
	}
	rtt := 2 * g.env.Cluster().BaseDelay(g.env.id, peers[0])
	g.env.After(rtt, Timer{Kind: gtPushPullDial, Arg: int64(peers[0])})
}

func (g *gossipNode) Receive(now time.Duration, from NodeID, m Message) {
	switch m.Kind {
	case gkGossip:
		for _, msg := range m.Payload.(*gossipPacket).msgs {
			g.copies++
			g.apply(EventID(binary.BigEndian.Uint32(msg)), true)
		}
	case gkPPReq:
		theirs := m.Payload.(*ppState).vv
		lack := g.have.missingFrom(theirs)
		g.env.Send(from, Message{
			Payload: &ppState{vv: g.have.clone(), records: lack},
			Size:    vvBytes(g.s.cl) + g.s.recordBytes(g.env, lack),
			Kind:    gkPPResp, State: true, Reliable: true,
		})
	case gkPPResp:
		p := m.Payload.(*ppState)
		for _, id := range p.records {
			g.apply(id, false)
		}
		if lack := g.have.missingFrom(p.vv); len(lack) > 0 {
			g.env.Send(from, Message{
				Payload: &ppState{records: lack},
				Size:    g.s.recordBytes(g.env, lack),
				Kind:    gkPPRecords, State: true, Reliable: true,
			})
		}
	case gkPPRecords:
		for _, id := range m.Payload.(*ppState).records {
			g.apply(id, false)
		}
	}
}
