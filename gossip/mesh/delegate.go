package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// nodeMeta is what a node announces in memberlist's NodeMeta (at most
// memberlist.MetaMaxSize bytes, msgpack). Role and region are self-asserted
// by any holder of the gossip key: they steer paths, never trust.
type nodeMeta struct {
	Role    gossip.Role `msgpack:"r"`
	Region  string      `msgpack:"g"`
	API     string      `msgpack:"a,omitempty"`
	Major   uint8       `msgpack:"M"`
	Minor   uint8       `msgpack:"m"`
	Boot    uint64      `msgpack:"b"`           // random per start: a changed boot is a restart
	Leaving bool        `msgpack:"l,omitempty"` // set just before a graceful leave
}

const maxAPIAddrLen = 256

func (nm *nodeMeta) encode() ([]byte, error) {
	b, err := msgpack.Marshal(nm)
	if err != nil {
		return nil, err
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata of %d bytes, more than %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// parseMeta decodes a peer's metadata. A node of another protocol major is
// refused here, so that it never reaches the core.
func parseMeta(b []byte) (nodeMeta, error) {
	var nm nodeMeta
	if len(b) == 0 {
		return nm, errors.New("no certmesh metadata")
	}
	if len(b) > memberlist.MetaMaxSize {
		return nm, fmt.Errorf("metadata of %d bytes", len(b))
	}
	if err := msgpack.Unmarshal(b, &nm); err != nil {
		return nm, fmt.Errorf("malformed metadata: %v", err)
	}
	if nm.Major != gossip.ProtocolMajor {
		return nm, fmt.Errorf("it speaks certmesh protocol %d.%d, this node %d.%d", nm.Major, nm.Minor, gossip.ProtocolMajor, gossip.ProtocolMinor)
	}
	if nm.Role != gossip.RoleController && nm.Role != gossip.RoleRouter {
		return nm, fmt.Errorf("unknown role %d", nm.Role)
	}
	if nm.Region == "" || len(nm.Region) > gossip.MaxRegionLen {
		return nm, fmt.Errorf("region of %d bytes", len(nm.Region))
	}
	return nm, nil
}

// delegate implements memberlist's Delegate, EventDelegate and
// AliveDelegate for a Mesh. memberlist calls them from its own goroutines,
// sometimes while holding its locks: none of them blocks, and none waits
// for the mesh's loop.
type delegate struct{ m *Mesh }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.AliveDelegate    = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
)

// NodeMeta implements memberlist.Delegate.
func (d delegate) NodeMeta(limit int) []byte {
	b := *d.m.meta.Load()
	if len(b) > limit {
		return nil // cannot happen: checked at start against MetaMaxSize
	}
	return b
}

// NotifyMsg implements memberlist.Delegate: decode, then hand to the loop
// through a bounded queue, by way of the check stage (check.go) when the
// frame carries a proof or records. memberlist may reuse b after the call.
func (d delegate) NotifyMsg(b []byte) {
	m := d.m
	if m.closed.Load() {
		return
	}
	f, err := gossip.ParseFrame(bytes.Clone(b))
	if err != nil {
		m.met.bytesIn.Add(len(b))
		m.refuse(err, len(b))
		return
	}
	m.met.msgIn(f.Msg.Type, len(b))
	if f.From == m.cfg.Core.Name {
		m.met.drop("spoofed_sender")
		return
	}
	if m.needsCheck(f) {
		m.queueCheck(f)
		return
	}
	m.enqueue(input{kind: inMessage, sender: gossip.Sender{Name: f.From}, msg: f.Msg}, true)
}

// refuse counts an undecodable message; a node of another major is logged
// once.
func (m *Mesh) refuse(err error, size int) {
	switch {
	case errors.Is(err, gossip.ErrVersion):
		m.met.drop("version")
		m.logOnce("version", "gossip: dropping a message of another protocol major", "err", err)
	case errors.Is(err, gossip.ErrTooLarge):
		m.met.drop("too_large")
	default:
		m.met.drop("malformed")
		m.log.Debug("gossip: dropping a malformed message", "bytes", size, "err", err)
	}
}

// GetBroadcasts implements memberlist.Delegate. certmesh does not use
// memberlist's piggybacked broadcasts: its own protocol carries the state.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate: on every memberlist
// push-pull, and on join, this node's causal context (never its state)
// travels to the peer, whose MergeRemoteState answers it with what this
// node lacks. memberlist does not say who the peer is, so the proof is
// made for any recipient, and carried only when every live member reads
// proofs.
func (d delegate) LocalState(join bool) []byte {
	m := d.m
	m.mu.Lock()
	ctx := m.core.Store().Context()
	m.mu.Unlock()
	msg := &gossip.Message{Type: gossip.MsgSyncReq, SentAt: crdt.MillisOf(m.clock()), Context: ctx}
	b, err := m.encodeFrame(msg)
	if err != nil {
		m.log.Error("gossip: encode local state", "err", err)
		return nil
	}
	if m.cfg.protocol&0xf >= gossip.MinorTrailer && m.cfg.Auth.Proves() && m.allRead() {
		if b, err = m.cfg.Auth.Prove(b, ""); err != nil {
			m.log.Error("gossip: prove local state", "err", err)
			return nil
		}
	}
	m.met.msgOut(gossip.MsgSyncReq, len(b))
	return b
}

// MergeRemoteState implements memberlist.Delegate: the peer's causal
// context, answered by the core with what the peer lacks.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	m := d.m
	if m.closed.Load() || len(buf) == 0 {
		return
	}
	f, err := gossip.ParseFrame(bytes.Clone(buf))
	if err != nil {
		m.met.bytesIn.Add(len(buf))
		m.refuse(err, len(buf))
		return
	}
	m.met.msgIn(f.Msg.Type, len(buf))
	if f.Msg.Type != gossip.MsgSyncReq || f.From == m.cfg.Core.Name {
		m.met.drop("malformed")
		return
	}
	// memberlist runs each push-pull on its own goroutine: the proof is
	// checked here, off memberlist's packet handler and the loop.
	m.enqueue(input{kind: inPeerState, sender: m.verifyFrame(f, ""), msg: f.Msg}, true)
}

// NotifyAlive implements memberlist.AliveDelegate: a node without
// certmesh metadata or of another protocol major never becomes a member.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	m := d.m
	if peer.Name == m.cfg.Core.Name {
		return nil
	}
	if _, err := parseMeta(peer.Meta); err != nil {
		m.logOnce("alive:"+peer.Name, "gossip: refusing node", "member", peer.Name, "addr", peer.Address(), "err", err)
		return fmt.Errorf("certmesh: %w", err)
	}
	return nil
}

// NotifyConflict implements memberlist.ConflictDelegate: memberlist saw an
// alive message for a member it knows, from another address (see
// Mesh.nameConflict).
func (d delegate) NotifyConflict(existing, other *memberlist.Node) { d.m.nameConflict(existing, other) }

// NotifyJoin implements memberlist.EventDelegate.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.m.nodeAlive(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.nodeAlive(n) }

// NotifyLeave implements memberlist.EventDelegate.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.m.nodeGone(n) }

// logOnce logs msg at most once per key in an hour, so that a peer
// refused on every gossip round does not flood the log.
func (m *Mesh) logOnce(key, msg string, args ...any) {
	now := m.clock()
	m.logMu.Lock()
	last, ok := m.logged[key]
	if ok && now.Sub(last) < time.Hour {
		m.logMu.Unlock()
		return
	}
	if len(m.logged) > 1024 {
		clear(m.logged)
	}
	m.logged[key] = now
	m.logMu.Unlock()
	m.log.Warn(msg, args...)
}

// slogWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at the matching level.
//
// Traffic that is not this cluster's (a wrong key or label, or garbage: a
// flood of it is one line per packet in memberlist) is counted through
// foreign and logged at most once per foreignLogEvery, with the number of
// lines left out since the last one.
type slogWriter struct {
	log     *slog.Logger
	foreign func()           // nil: not counted
	clock   func() time.Time // the mesh's clock

	mu          sync.Mutex // guards lastForeign and suppressed
	lastForeign time.Time
	suppressed  int
}

// foreignLogEvery spaces the log lines about traffic that is not this
// cluster's.
const foreignLogEvery = 10 * time.Second

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	if level >= slog.LevelWarn && strings.Contains(line, "use of closed network connection") {
		// Only this node's own sockets, closed by its own shutdown, give
		// this error: memberlist's gossip ticker can still fire between
		// the leave and the close. An ERROR on every clean stop would
		// send operators looking for a fault that is not there.
		level = slog.LevelDebug
	}
	if level == slog.LevelError && (strings.Contains(line, "decrypt") || strings.Contains(line, "label")) {
		// Another cluster's or a wrong key's traffic, or garbage: worth
		// a warning, not an error of this node, and not one per packet.
		if w.foreign != nil {
			w.foreign()
		}
		now := w.clock()
		w.mu.Lock()
		if !w.lastForeign.IsZero() && now.Sub(w.lastForeign) < foreignLogEvery {
			w.suppressed++
			w.mu.Unlock()
			return len(p), nil
		}
		n := w.suppressed
		w.lastForeign, w.suppressed = now, 0
		w.mu.Unlock()
		w.log.Warn(line, "similar_lines_left_out", n)
		return len(p), nil
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
