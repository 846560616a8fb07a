package router

import (
	"container/list"
	"net"
	"sync"
)

// Reasons a pending connection was shed, values of
// certmesh_handshakes_shed_total{reason}.
const (
	shedSource  = "source_limit"  // its source had MaxPendingPerSource newer ones
	shedPending = "pending_limit" // the router had MaxPending newer ones
)

// pendingPool holds the connections that have not finished their TLS
// handshake: their clients have proven nothing, so they may be anyone's,
// and none of them may hold the listener. It never makes a new connection
// wait: when a source has MaxPendingPerSource pending, its oldest is
// closed; when the router has MaxPending, the oldest of all is. A client
// that sends its flights on time leaves the pool within a round trip or
// two, so to shed it a flood must open more connections than the cap in
// that time, from its own addresses first; connections that send nothing,
// or trickle, are the oldest and go first. All methods are safe for
// concurrent use and O(1).
type pendingPool struct {
	max, perSource int

	mu    sync.Mutex            // guards the fields below
	all   list.List             // of *pendingConn, oldest first
	bySrc map[string]*list.List // of *pendingConn, oldest first, per source
}

// pendingConn is one connection in the pool.
type pendingConn struct {
	conn net.Conn
	src  string
	// Guarded by the pool's mu; nil once the connection left the pool.
	inAll, inSrc *list.Element
}

func newPendingPool(max, perSource int) *pendingPool {
	return &pendingPool{max: max, perSource: perSource, bySrc: make(map[string]*list.List)}
}

// add puts conn in the pool and closes what it pushes out, returning how
// many were shed for each reason.
func (p *pendingPool) add(conn net.Conn) (pc *pendingConn, bySource, byPending int) {
	pc = &pendingConn{conn: conn, src: sourceOf(conn.RemoteAddr())}
	var shed []*pendingConn
	p.mu.Lock()
	if src := p.bySrc[pc.src]; p.perSource > 0 && src != nil && src.Len() >= p.perSource {
		old := src.Front().Value.(*pendingConn)
		p.unlinkLocked(old)
		shed = append(shed, old)
		bySource++
	}
	if p.all.Len() >= p.max {
		old := p.all.Front().Value.(*pendingConn)
		p.unlinkLocked(old)
		shed = append(shed, old)
		byPending++
	}
	src := p.bySrc[pc.src]
	if src == nil {
		src = list.New()
		p.bySrc[pc.src] = src
	}
	pc.inAll = p.all.PushBack(pc)
	pc.inSrc = src.PushBack(pc)
	p.mu.Unlock()
	for _, old := range shed {
		old.conn.Close() // its handshake fails at once
	}
	return pc, bySource, byPending
}

// remove takes pc out of the pool, if it is still there.
func (p *pendingPool) remove(pc *pendingConn) {
	p.mu.Lock()
	p.unlinkLocked(pc)
	p.mu.Unlock()
}

// len is the number of pending connections.
func (p *pendingPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.Len()
}

func (p *pendingPool) unlinkLocked(pc *pendingConn) {
	if pc.inAll == nil {
		return
	}
	p.all.Remove(pc.inAll)
	src := p.bySrc[pc.src]
	src.Remove(pc.inSrc)
	if src.Len() == 0 {
		delete(p.bySrc, pc.src)
	}
	pc.inAll, pc.inSrc = nil, nil
}

// sourceOf is the source a connection counts against: its IPv4 address,
// or the /64 of its IPv6 address (one host's allocation, which it may
// spread over 2^64 addresses).
func sourceOf(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		return host
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
