package router

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"

	"github.com/certmesh/certmesh/crdt"
)

// liveConn is one admitted connection.
type liveConn struct {
	id     uint64
	facts  crdt.CertFacts
	remote string
	// service is the replicated service the connection reaches, empty
	// for the router's local upstream; address is where it was dialed.
	service string
	address string
	tls     *tls.Conn
	raw     net.Conn // under tls; closing it unblocks every copier

	mu     sync.Mutex
	up     net.Conn // the upstream, once dialed; guarded by mu
	reason string   // why the router closed it; guarded by mu
	killed bool     // guarded by mu
}

// kill closes the connection for reason and reports whether this call did
// it. It only touches sockets, so it never blocks: the connection's handler
// notices, finishes and unregisters it.
func (c *liveConn) kill(reason string) bool {
	if !c.shut(reason) {
		return false
	}
	c.release()
	return true
}

// shut marks the connection killed for reason and shuts the client's
// socket down for writing: the client gets a FIN at once, before any
// goroutine wakes up. (A close sends its FIN only once the goroutines
// blocked on the socket have let go of it, which, with thousands of
// connections closed at once, is after they have all been scheduled.) It
// reports whether this call killed it; release must follow.
func (c *liveConn) shut(reason string) bool {
	c.mu.Lock()
	if c.killed {
		c.mu.Unlock()
		return false
	}
	c.killed, c.reason = true, reason
	c.mu.Unlock()
	closeWrite(c.raw)
	return true
}

// release closes the sockets, which wakes the connection's goroutines.
func (c *liveConn) release() {
	c.raw.Close()
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if up != nil {
		up.Close()
	}
}

// setUpstream records the upstream connection; false if the connection was
// killed meanwhile (the caller then closes up).
func (c *liveConn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killed {
		return false
	}
	c.up = up
	return true
}

func (c *liveConn) killReason() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason, c.killed
}

type connSet map[*liveConn]struct{}

func (s connSet) appendTo(out []*liveConn) []*liveConn {
	for c := range s {
		out = append(out, c)
	}
	return out
}

// sessionConns is a session's live connections and its expiry timer.
type sessionConns struct {
	conns   connSet
	expires crdt.Millis // 0 until the session record is known
	timer   Timer       // nil until expires is known
}

// registry indexes live connections by session, serial, identity and
// issuer, so that a revocation finds what it covers in time proportional
// to what it covers.
type registry struct {
	mu         sync.Mutex
	nextID     uint64
	all        connSet
	bySession  map[crdt.SessionID]*sessionConns
	bySerial   map[crdt.Serial]connSet
	byIdentity map[string]connSet
	byIssuer   map[string]connSet
	byService  map[string]connSet // connections to replicated services
	active     atomic.Int64
}

func newRegistry() *registry {
	return &registry{
		all:        make(connSet),
		bySession:  make(map[crdt.SessionID]*sessionConns),
		bySerial:   make(map[crdt.Serial]connSet),
		byIdentity: make(map[string]connSet),
		byIssuer:   make(map[string]connSet),
		byService:  make(map[string]connSet),
	}
}

func addTo[K comparable](m map[K]connSet, k K, c *liveConn) {
	s := m[k]
	if s == nil {
		s = make(connSet)
		m[k] = s
	}
	s[c] = struct{}{}
}

func removeFrom[K comparable](m map[K]connSet, k K, c *liveConn) {
	if s := m[k]; s != nil {
		delete(s, c)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// add registers c and returns its session's entry (for the caller to arm
// the expiry timer under the same lock, through arm).
func (r *registry) add(c *liveConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	c.id = r.nextID
	r.all[c] = struct{}{}
	sc := r.bySession[c.facts.Session]
	if sc == nil {
		sc = &sessionConns{conns: make(connSet)}
		r.bySession[c.facts.Session] = sc
	}
	sc.conns[c] = struct{}{}
	addTo(r.bySerial, c.facts.Serial, c)
	addTo(r.byIdentity, c.facts.Identity, c)
	addTo(r.byIssuer, c.facts.Issuer, c)
	if c.service != "" {
		addTo(r.byService, c.service, c)
	}
	r.active.Add(1)
}

// remove unregisters c; when it was its session's last connection, the
// session's timer is stopped.
func (r *registry) remove(c *liveConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.all[c]; !ok {
		return
	}
	delete(r.all, c)
	if sc := r.bySession[c.facts.Session]; sc != nil {
		delete(sc.conns, c)
		if len(sc.conns) == 0 {
			if sc.timer != nil {
				sc.timer.Stop()
			}
			delete(r.bySession, c.facts.Session)
		}
	}
	removeFrom(r.bySerial, c.facts.Serial, c)
	removeFrom(r.byIdentity, c.facts.Identity, c)
	removeFrom(r.byIssuer, c.facts.Issuer, c)
	if c.service != "" {
		removeFrom(r.byService, c.service, c)
	}
	r.active.Add(-1)
}

// armExpiry sets the expiry timer of session id, if it has live
// connections and no timer yet. fire is called with the session id when
// the timer goes off. A session already armed that was extended (a later
// expires: session.bind_to_token) keeps its timer, which finds it early
// when it fires and rearms for the new expiry (Router.expire): its
// connections are closed at the new expiry, not before.
func (r *registry) armExpiry(id crdt.SessionID, expires crdt.Millis, now crdt.Millis, clock Clock, fire func(crdt.SessionID)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.bySession[id]
	if sc == nil {
		return
	}
	if sc.timer != nil {
		sc.expires = max(sc.expires, expires)
		return
	}
	sc.expires = expires
	d := max(0, expires-now)
	sc.timer = clock.AfterFunc(millisDuration(d), func() { fire(id) })
}

// rearm replaces the timer of session id after it fired early, for
// expires if that is later than the expiry it knew.
func (r *registry) rearm(id crdt.SessionID, expires, now crdt.Millis, clock Clock, fire func(crdt.SessionID)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.bySession[id]
	if sc == nil || sc.expires == 0 {
		return
	}
	sc.expires = max(sc.expires, expires)
	d := max(1, sc.expires-now)
	sc.timer = clock.AfterFunc(millisDuration(d), func() { fire(id) })
}

func (r *registry) session(id crdt.SessionID, out []*liveConn) ([]*liveConn, crdt.Millis) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sc := r.bySession[id]
	if sc == nil {
		return out, 0
	}
	return sc.conns.appendTo(out), sc.expires
}

func (r *registry) serial(s crdt.Serial, out []*liveConn) []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bySerial[s].appendTo(out)
}

func (r *registry) identity(id string, out []*liveConn) []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byIdentity[id].appendTo(out)
}

func (r *registry) issuer(name string, out []*liveConn) []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byIssuer[name].appendTo(out)
}

func (r *registry) snapshot() []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.appendTo(make([]*liveConn, 0, len(r.all)))
}

func (r *registry) hasSession(id crdt.SessionID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bySession[id] != nil
}

// service appends the live connections to the replicated service name.
func (r *registry) service(name string, out []*liveConn) []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byService[name].appendTo(out)
}

// services appends every live connection to a replicated service.
func (r *registry) services(out []*liveConn) []*liveConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, set := range r.byService {
		out = set.appendTo(out)
	}
	return out
}
