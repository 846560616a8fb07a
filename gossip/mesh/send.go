package mesh

import (
	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/gossip"
)

type reliableSender struct {
	node    *memberlist.Node
	queue   [][]byte
	bytes   int
	running bool
}

// maxReliableQueue caps the bytes waiting to go to one peer over streams;
// more is dropped (anti-entropy sends it again).
const maxReliableQueue = 32 << 20

// send frames each message once and sends it to every recipient: one
// packet when it fits, over a stream otherwise. A message whose sender
// matters (gossip.NeedsProof) carries this node's proof, made for its recipient,
// to peers that read proofs (protocol 1.1 on).
func (m *Mesh) send(outs []gossip.Output) {
	if len(outs) == 0 {
		return
	}
	frames := make(map[*gossip.Message][]byte)
	stream := make(map[*gossip.Message]bool)
	nameLen := msgpackStringLen(m.cfg.Core.Name)
	prove := m.cfg.protocol&0xf >= gossip.MinorTrailer && m.cfg.Auth.Proves()
	for _, o := range outs {
		f, ok := frames[o.Msg]
		if !ok {
			var err error
			if f, err = m.encodeFrame(o.Msg); err != nil {
				m.log.Error("gossip: encode", "type", o.Msg.Type.String(), "err", err)
				m.met.drop("encode_error")
				continue
			}
			frames[o.Msg] = f
			// The core encodes nothing (gossip.Config.EncodeLater): a
			// message larger than its packet budget, its frame less the
			// sender's name, goes over a stream, as the core would have
			// decided.
			stream[o.Msg] = len(f)-nameLen > m.cfg.Core.PacketBudget
		}
		node, minor := m.lookupMinor(o.To)
		if node == nil {
			m.met.drop("no_route")
			continue
		}
		if prove && minor >= gossip.MinorTrailer && gossip.NeedsProof(o.Msg) {
			pf, err := m.cfg.Auth.Prove(f, o.To)
			if err != nil {
				m.log.Error("gossip: prove", "type", o.Msg.Type.String(), "err", err)
				m.met.drop("encode_error")
				continue
			}
			f = pf
		}
		m.met.msgOut(o.Msg.Type, len(f))
		if o.Reliable || stream[o.Msg] || len(f) > m.packetLimit {
			m.sendReliable(node, f)
			continue
		}
		if err := m.ml.SendBestEffort(node, f); err != nil {
			m.log.Debug("gossip: send", "to", o.To, "err", err)
		}
	}
}

// msgpackStringLen is the size of s encoded as a msgpack string, as a
// frame carries its sender's name.
func msgpackStringLen(s string) int {
	switch n := len(s); {
	case n < 32:
		return 1 + n
	case n < 1<<8:
		return 2 + n
	case n < 1<<16:
		return 3 + n
	default:
		return 5 + n
	}
}

// encodeFrame frames msg as sent by this node, with the protocol version
// it announces.
func (m *Mesh) encodeFrame(msg *gossip.Message) ([]byte, error) {
	f, err := gossip.EncodeFrame(m.cfg.Core.Name, msg)
	if err == nil {
		f[0] = m.cfg.protocol
	}
	return f, err
}

// lookup returns a copy of the alive member name, or nil.
func (m *Mesh) lookup(name string) *memberlist.Node {
	n, _ := m.lookupMinor(name)
	return n
}

// lookupMinor returns a copy of the alive member name and the protocol
// minor it announces, or nil.
func (m *Mesh) lookupMinor(name string) (*memberlist.Node, uint8) {
	m.nodesMu.RLock()
	defer m.nodesMu.RUnlock()
	if ni, ok := m.nodes[name]; ok && ni.state == "alive" {
		n := ni.node
		return &n, ni.meta.Minor
	}
	return nil, 0
}

// sendReliable queues f for node's stream sender, which sends one frame
// at a time in order, off the loop: a stream to a dead peer may block for
// memberlist's TCPTimeout.
func (m *Mesh) sendReliable(node *memberlist.Node, f []byte) {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	s := m.senders[node.Name]
	if s == nil {
		s = &reliableSender{}
		m.senders[node.Name] = s
	}
	s.node = node
	if s.bytes+len(f) > maxReliableQueue {
		m.met.drop("send_queue_full")
		return
	}
	s.queue = append(s.queue, f)
	s.bytes += len(f)
	if !s.running {
		s.running = true
		m.wg.Add(1) // the loop, counted, calls this: never from zero
		go m.drainReliable(node.Name, s)
	}
}

func (m *Mesh) drainReliable(name string, s *reliableSender) {
	defer m.wg.Done()
	for {
		m.sendMu.Lock()
		if len(s.queue) == 0 || m.closed.Load() {
			s.running = false
			s.queue, s.bytes = nil, 0
			delete(m.senders, name)
			m.sendMu.Unlock()
			return
		}
		f, node := s.queue[0], s.node
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.bytes -= len(f)
		m.sendMu.Unlock()
		if err := m.ml.SendReliable(node, f); err != nil {
			m.log.Debug("gossip: stream send", "to", name, "bytes", len(f), "err", err)
		}
	}
}
