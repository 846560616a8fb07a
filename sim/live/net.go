package live

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/sim"
)

// liveNet is live mode's network: an in-memory memberlist.NodeAwareTransport
// per simulated node (liveEndpoint) with model mode's network model, in
// wall-clock time.
//
//   - Packets take the one-way base delay of their region pair
//     (sim.Cluster.RegionDelay) times uniform(1, 1+jitter), are lost
//     independently with the topology's loss, and are dropped when a
//     partition separates the nodes at sending or at arrival, or when the
//     receiver is down at arrival. One goroutine delivers them from a timer
//     heap into the receiver's packet channel.
//   - Streams are reliable, ordered connections. Dialling costs one round
//     trip (SYN, SYN-ACK; a lost one is retransmitted after sim.SynRTO,
//     doubling), fails after the dial timeout while a partition lasts, and
//     is refused by a node that is down. Each Write arrives one one-way
//     delay later, never lost: as in model mode (sim.Env.Send) each lost
//     attempt adds a retransmission timeout, and data blocked by a
//     partition gets through at the first retransmission after the heal.
//     A crash breaks every stream of the node.
//
// The partitions come from the topology's fault schedule, timed from the
// run's time zero (setStart); crashes are applied by the driver (crash),
// which also stops the node's memberlist. Addresses are fake
// ("10.0.0.7:7946"), resolved in-process.
type liveNet struct {
	cl           *sim.Cluster
	parts        *sim.Partitions // the partition schedule; read-only, so shared by every goroutine
	loss, jitter float64
	byAddr       map[string]sim.NodeID // immutable
	addrs        []string              // by sim.NodeID
	start        atomic.Pointer[time.Time]
	done         chan struct{} // closed by close
	closeOnce    sync.Once
	wg           sync.WaitGroup // the delivery goroutine

	mu  sync.Mutex      // guards eps
	eps []*liveEndpoint // the current endpoint of each node; nil while it is down

	qmu   sync.Mutex // guards queue and seq
	queue packetQueue
	seq   uint64
	kick  chan struct{} // a packet became the head of the queue

	deliveries  atomic.Int64   // packets and stream writes delivered
	regionBytes []atomic.Int64 // every byte delivered (memberlist's own included), by region pair from*R+to
	dropLoss    atomic.Int64
	dropCut     atomic.Int64
	dropDown    atomic.Int64
	dropFull    atomic.Int64 // the receiver's packet queue was full
	// late records how much later than their arrival time packets were
	// handed to their receiver: the machine's lag behind the model.
	// Written by the delivery goroutine only; read after close.
	late lateness
}

// lateness is a histogram of delays, in lateBucket steps up to lateBuckets
// of them, and their maximum.
type lateness struct {
	n       int64
	buckets [lateBuckets + 1]int64 // the last one: beyond the range
	max     time.Duration
}

const (
	lateBucket  = 100 * time.Microsecond
	lateBuckets = 2000 // 200ms
)

func (h *lateness) add(d time.Duration) {
	d = max(d, 0)
	h.n++
	h.buckets[min(int(d/lateBucket), lateBuckets)]++
	h.max = max(h.max, d)
}

// quantile returns the upper bound of the bucket holding the p-quantile
// (nearest rank, as the report's quantiles), or the maximum beyond the
// range.
func (h *lateness) quantile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	k, cum := max(1, int64(math.Ceil(p*float64(h.n)-1e-9))), int64(0)
	for i, c := range h.buckets[:lateBuckets] {
		if cum += c; cum >= k {
			return min(time.Duration(i+1)*lateBucket, h.max)
		}
	}
	return h.max
}

// Live network constants.
const (
	livePort = 7946 // every node's port; nodes differ by IP
	// livePacketQueue is how many received packets may wait for
	// memberlist to read them; more are dropped, as by a full socket
	// buffer.
	livePacketQueue = 4096
	// maxLivePacket is the largest UDP payload.
	maxLivePacket = 65507
	// defaultDialTimeout is used when memberlist gives none (it always
	// gives its TCPTimeout).
	defaultDialTimeout = 10 * time.Second
)

func newLiveNet(cl *sim.Cluster, parts *sim.Partitions) *liveNet {
	t := cl.Topology
	n := &liveNet{
		cl: cl, parts: parts, loss: t.Loss, jitter: t.Jitter,
		byAddr:      make(map[string]sim.NodeID, len(cl.Nodes)),
		addrs:       make([]string, len(cl.Nodes)),
		done:        make(chan struct{}),
		eps:         make([]*liveEndpoint, len(cl.Nodes)),
		kick:        make(chan struct{}, 1),
		regionBytes: make([]atomic.Int64, cl.NumRegions()*cl.NumRegions()),
	}
	for i := range cl.Nodes {
		a := net.JoinHostPort(liveIP(sim.NodeID(i)).String(), fmt.Sprint(livePort))
		n.addrs[i] = a
		n.byAddr[a] = sim.NodeID(i)
	}
	n.wg.Add(1)
	go n.deliverLoop()
	return n
}

// liveIP is node id's fake address: 10.x.y.z from id+1.
func liveIP(id sim.NodeID) net.IP {
	v := uint32(id) + 1
	return net.IPv4(10, byte(v>>16), byte(v>>8), byte(v)).To4()
}

// setStart sets the run's time zero: the fault schedule counts from it.
// Before it (while the meshes join) no fault applies.
func (n *liveNet) setStart(t time.Time) { n.start.Store(&t) }

// elapsed converts a wall time to run time; false before time zero.
func (n *liveNet) elapsed(t time.Time) (time.Duration, bool) {
	s := n.start.Load()
	if s == nil {
		return 0, false
	}
	return t.Sub(*s), true
}

// healAt returns the first time at or after t at which no partition
// separates a and b: t itself when none does, the zero time if never.
func (n *liveNet) healAt(a, b sim.NodeID, t time.Time) time.Time {
	el, ok := n.elapsed(t)
	if !ok || el < 0 {
		return t
	}
	h, ok := n.parts.HealAt(a, b, el)
	switch {
	case !ok:
		return time.Time{}
	case h == el:
		return t
	}
	return t.Add(h - el)
}

// cutAt reports whether a partition separates a and b at t.
func (n *liveNet) cutAt(a, b sim.NodeID, t time.Time) bool {
	return !n.healAt(a, b, t).Equal(t)
}

// oneWay draws a packet's one-way delay: the base delay of the pair times
// uniform(1, 1+jitter), as model mode's.
func (n *liveNet) oneWay(from, to sim.NodeID) time.Duration {
	base := n.cl.BaseDelay(from, to)
	if n.jitter > 0 && base > 0 {
		return time.Duration(float64(base) * (1 + n.jitter*rand.Float64()))
	}
	return base
}

// lost draws whether an attempt of pkts packets loses any of them.
func (n *liveNet) lost(pkts int64) bool {
	if n.loss <= 0 {
		return false
	}
	return rand.Float64() < 1-math.Pow(1-n.loss, float64(pkts))
}

// streamArrival returns when size bytes written at now on a stream from
// from to to reach to, as model mode's sim.Env.Send computes it for
// reliable messages; the zero time if the stream gives up first.
func (n *liveNet) streamArrival(from, to sim.NodeID, now time.Time, size int) time.Time {
	d := n.oneWay(from, to)
	d += sim.StreamLossDelay(size, n.lost)
	heal := n.healAt(from, to, now)
	if heal.Equal(now) {
		// Not cut at sending; maybe at arrival.
		arr := now.Add(d)
		if heal = n.healAt(from, to, arr); heal.Equal(arr) {
			return arr
		}
	}
	if heal.IsZero() {
		return time.Time{}
	}
	at, ok := sim.StreamRetry(0, heal.Sub(now))
	if !ok {
		return time.Time{}
	}
	return now.Add(at + n.oneWay(from, to))
}

// endpoint returns node id's current endpoint, or nil while it is down.
func (n *liveNet) endpoint(id sim.NodeID) *liveEndpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eps[id]
}

// attach creates node id's endpoint for a new memberlist instance.
func (n *liveNet) attach(id sim.NodeID) *liveEndpoint {
	ip := liveIP(id)
	e := &liveEndpoint{
		n: n, id: id,
		udp:      &net.UDPAddr{IP: ip, Port: livePort},
		tcp:      &net.TCPAddr{IP: ip, Port: livePort},
		packetCh: make(chan *memberlist.Packet, livePacketQueue),
		streamCh: make(chan net.Conn),
		down:     make(chan struct{}),
		conns:    make(map[*liveConn]struct{}),
	}
	n.mu.Lock()
	n.eps[id] = e
	n.mu.Unlock()
	return e
}

// crash takes node id off the network at once: its packets and streams go
// nowhere, and its open streams break. The memberlist instance on it is
// left to be closed by the caller; a restart attaches a new endpoint.
func (n *liveNet) crash(id sim.NodeID) {
	n.mu.Lock()
	e := n.eps[id]
	n.eps[id] = nil
	n.mu.Unlock()
	if e != nil {
		e.goDown()
	}
}

// close stops the delivery goroutine and breaks every stream. Endpoints
// must have been shut down (their memberlist closed) first.
func (n *liveNet) close() {
	n.closeOnce.Do(func() {
		close(n.done)
		n.wg.Wait()
		n.mu.Lock()
		eps := append([]*liveEndpoint(nil), n.eps...)
		n.mu.Unlock()
		for _, e := range eps {
			if e != nil {
				e.goDown()
			}
		}
	})
}

// queuedPacket is a packet on its way.
type queuedPacket struct {
	at       time.Time
	seq      uint64
	from, to sim.NodeID
	p        *memberlist.Packet
}

// packetQueue is a min-heap of packets by (at, seq).
type packetQueue []queuedPacket

func (q packetQueue) Len() int { return len(q) }
func (q packetQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q packetQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *packetQueue) Push(x any)   { *q = append(*q, x.(queuedPacket)) }
func (q *packetQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = queuedPacket{}
	*q = old[:len(old)-1]
	return x
}

func (n *liveNet) schedule(qp queuedPacket) {
	n.qmu.Lock()
	n.seq++
	qp.seq = n.seq
	heap.Push(&n.queue, qp)
	head := n.queue[0].seq == qp.seq
	n.qmu.Unlock()
	if head {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
}

// deliverLoop hands each packet to its receiver when it arrives.
func (n *liveNet) deliverLoop() {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []queuedPacket
	for {
		n.qmu.Lock()
		now := time.Now()
		for len(n.queue) > 0 && !n.queue[0].at.After(now) {
			due = append(due, heap.Pop(&n.queue).(queuedPacket))
		}
		wait := time.Hour
		if len(n.queue) > 0 {
			wait = n.queue[0].at.Sub(now)
		}
		n.qmu.Unlock()
		for i := range due {
			n.deliver(&due[i])
			due[i] = queuedPacket{}
		}
		due = due[:0]
		timer.Reset(wait)
		select {
		case <-n.done:
			return
		case <-n.kick:
		case <-timer.C:
		}
	}
}

func (n *liveNet) deliver(qp *queuedPacket) {
	e := n.endpoint(qp.to)
	switch {
	case e == nil || e.isDown():
		n.dropDown.Add(1)
		return
	case n.cutAt(qp.from, qp.to, qp.at):
		n.dropCut.Add(1)
		return
	}
	qp.p.Timestamp = time.Now()
	n.late.add(qp.p.Timestamp.Sub(qp.at))
	select {
	case e.packetCh <- qp.p:
		n.count(qp.from, qp.to, len(qp.p.Buf))
	default:
		n.dropFull.Add(1)
	}
}

func (n *liveNet) count(from, to sim.NodeID, size int) {
	n.deliveries.Add(1)
	nR := n.cl.NumRegions()
	n.regionBytes[n.cl.Nodes[from].Region*nR+n.cl.Nodes[to].Region].Add(int64(size))
}

// sleepUntil waits until t; false if the network or the endpoint went
// down first.
func (n *liveNet) sleepUntil(t time.Time, down <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-n.done:
	case <-down:
	}
	return false
}

// liveEndpoint is one node's memberlist.NodeAwareTransport. A new one is
// attached for every memberlist instance the node runs (a restart gets a
// fresh one); it is shut down with its memberlist or by a crash.
type liveEndpoint struct {
	n        *liveNet
	id       sim.NodeID
	udp      *net.UDPAddr
	tcp      *net.TCPAddr
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	down     chan struct{} // closed by Shutdown or a crash
	downOnce sync.Once

	mu    sync.Mutex // guards conns
	conns map[*liveConn]struct{}
}

var _ memberlist.NodeAwareTransport = (*liveEndpoint)(nil)

func (e *liveEndpoint) isDown() bool {
	select {
	case <-e.down:
		return true
	default:
		return false
	}
}

// goDown stops the endpoint and breaks its streams, both ends.
func (e *liveEndpoint) goDown() {
	e.downOnce.Do(func() {
		close(e.down)
		e.mu.Lock()
		conns := make([]*liveConn, 0, len(e.conns))
		for c := range e.conns {
			conns = append(conns, c)
		}
		clear(e.conns)
		e.mu.Unlock()
		for _, c := range conns {
			c.breakOff(errConnReset)
			c.peer.breakOff(errConnReset)
		}
	})
}

// FinalAdvertiseAddr implements memberlist.Transport: the node's fake
// address, whatever was configured.
func (e *liveEndpoint) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return e.udp.IP, e.udp.Port, nil
}

// WriteTo implements memberlist.Transport.
func (e *liveEndpoint) WriteTo(b []byte, addr string) (time.Time, error) {
	return e.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: the packet is
// sent (or lost) at once and delivered after its one-way delay.
func (e *liveEndpoint) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	n := e.n
	now := time.Now()
	if e.isDown() {
		return now, nil // a crashed node's packets go nowhere
	}
	to, ok := n.byAddr[a.Addr]
	if !ok {
		return now, fmt.Errorf("sim: live: no route to %s", a.Addr)
	}
	if len(b) > maxLivePacket {
		return now, fmt.Errorf("sim: live: packet of %d bytes to %s: message too long", len(b), a.Addr)
	}
	switch {
	case n.cutAt(e.id, to, now):
		n.dropCut.Add(1)
		return now, nil
	case n.lost(1):
		n.dropLoss.Add(1)
		return now, nil
	}
	n.schedule(queuedPacket{at: now.Add(n.oneWay(e.id, to)), from: e.id, to: to,
		p: &memberlist.Packet{Buf: bytes.Clone(b), From: e.udp}})
	return now, nil
}

// PacketCh implements memberlist.Transport.
func (e *liveEndpoint) PacketCh() <-chan *memberlist.Packet { return e.packetCh }

// StreamCh implements memberlist.Transport.
func (e *liveEndpoint) StreamCh() <-chan net.Conn { return e.streamCh }

// DialTimeout implements memberlist.Transport.
func (e *liveEndpoint) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return e.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// Dial errors, shaped like the kernel's.
var (
	errConnRefused = errors.New("connect: connection refused")
	errConnReset   = errors.New("connection reset by peer")
)

// DialAddressTimeout implements memberlist.NodeAwareTransport: the
// connection is established one round trip later, or fails (see liveNet).
func (e *liveEndpoint) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	n := e.n
	start := time.Now()
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	deadline := start.Add(timeout)
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Source: e.tcp, Err: err}
	}
	if e.isDown() {
		return nil, opErr(net.ErrClosed)
	}
	to, ok := n.byAddr[a.Addr]
	if !ok {
		return nil, opErr(fmt.Errorf("sim: live: no route to %s", a.Addr))
	}
	// The SYN goes out at start and is retransmitted (sim.SynRTO,
	// doubling) while a partition blocks it or a SYN or SYN-ACK is lost.
	sent, rto := start, sim.SynRTO
	for {
		heal := n.healAt(e.id, to, sent)
		if heal.IsZero() {
			sent = deadline
			break
		}
		if !heal.Equal(sent) || n.lost(2) {
			sent = sent.Add(rto)
			rto *= 2
			if sent.After(deadline) {
				break
			}
			continue
		}
		break
	}
	established := sent.Add(n.oneWay(e.id, to) + n.oneWay(to, e.id))
	if established.After(deadline) {
		if !n.sleepUntil(deadline, e.down) {
			return nil, opErr(net.ErrClosed)
		}
		return nil, opErr(os.ErrDeadlineExceeded)
	}
	if !n.sleepUntil(established, e.down) {
		return nil, opErr(net.ErrClosed)
	}
	dest := n.endpoint(to)
	if dest == nil || dest.isDown() {
		return nil, opErr(errConnRefused) // the host answers, nothing listens
	}
	client, server := newLiveConnPair(e, dest)
	select {
	case dest.streamCh <- server:
		return client, nil
	case <-dest.down:
	case <-e.down:
	case <-n.done:
	}
	client.breakOff(errConnReset)
	server.breakOff(errConnReset)
	return nil, opErr(errConnRefused)
}

// Shutdown implements memberlist.Transport: memberlist stops with it.
func (e *liveEndpoint) Shutdown() error {
	n := e.n
	n.mu.Lock()
	if n.eps[e.id] == e {
		n.eps[e.id] = nil
	}
	n.mu.Unlock()
	e.goDown()
	return nil
}

// liveConn is one end of a stream between two endpoints. Writes never
// block: they are queued at the other end with their arrival time, and
// Read returns them once that time has come, in order.
type liveConn struct {
	n        *liveNet
	peer     *liveConn
	from, to sim.NodeID // this end's node, the other end's
	laddr    net.Addr
	raddr    net.Addr
	ep       *liveEndpoint // this end's endpoint
	wake     chan struct{} // capacity 1: something changed for Read

	mu     sync.Mutex // guards the fields below
	in     []streamChunk
	inLast time.Time // arrival of the last chunk queued: streams keep order
	rdl    time.Time // read deadline
	closed bool      // closed at this end
	err    error     // broken: reads and writes fail with it
}

type streamChunk struct {
	at  time.Time
	b   []byte
	eof bool // the other end closed
}

var _ net.Conn = (*liveConn)(nil)

func newLiveConnPair(a, b *liveEndpoint) (*liveConn, *liveConn) {
	ca := &liveConn{n: a.n, from: a.id, to: b.id, laddr: a.tcp, raddr: b.tcp, ep: a, wake: make(chan struct{}, 1)}
	cb := &liveConn{n: a.n, from: b.id, to: a.id, laddr: b.tcp, raddr: a.tcp, ep: b, wake: make(chan struct{}, 1)}
	ca.peer, cb.peer = cb, ca
	for _, c := range []*liveConn{ca, cb} {
		c.ep.mu.Lock()
		if c.ep.isDown() {
			c.err = errConnReset
		} else {
			c.ep.conns[c] = struct{}{}
		}
		c.ep.mu.Unlock()
	}
	return ca, cb
}

func (c *liveConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// breakOff makes reads and writes fail with err.
func (c *liveConn) breakOff(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.signal()
}

func (c *liveConn) forget() {
	c.ep.mu.Lock()
	delete(c.ep.conns, c)
	c.ep.mu.Unlock()
}

// enqueue queues a chunk at this end, arriving at at or after the chunks
// before it; dropped if this end is closed or broken.
func (c *liveConn) enqueue(ch streamChunk) bool {
	c.mu.Lock()
	if c.closed || c.err != nil {
		c.mu.Unlock()
		return false
	}
	if ch.at.Before(c.inLast) {
		ch.at = c.inLast
	}
	c.inLast = ch.at
	c.in = append(c.in, ch)
	c.mu.Unlock()
	c.signal()
	return true
}

// Read implements net.Conn.
func (c *liveConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return 0, err
		}
		now := time.Now()
		wait := time.Duration(-1) // nothing on its way
		if len(c.in) > 0 {
			head := &c.in[0]
			if !head.at.After(now) {
				if head.eof {
					c.mu.Unlock()
					return 0, io.EOF
				}
				k := copy(b, head.b)
				if head.b = head.b[k:]; len(head.b) == 0 {
					c.in[0] = streamChunk{}
					c.in = c.in[1:]
				}
				c.mu.Unlock()
				return k, nil
			}
			wait = head.at.Sub(now)
		}
		if !c.rdl.IsZero() {
			if !now.Before(c.rdl) {
				c.mu.Unlock()
				return 0, os.ErrDeadlineExceeded
			}
			if dl := c.rdl.Sub(now); wait < 0 || dl < wait {
				wait = dl
			}
		}
		c.mu.Unlock()
		var (
			t    *time.Timer
			fire <-chan time.Time
		)
		if wait >= 0 {
			t = time.NewTimer(wait)
			fire = t.C
		}
		select {
		case <-c.wake:
		case <-fire:
		case <-c.n.done:
			return 0, net.ErrClosed
		}
		if t != nil {
			t.Stop()
		}
	}
}

// Write implements net.Conn: b is on its way and Write returns at once.
func (c *liveConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	closed, err := c.closed, c.err
	c.mu.Unlock()
	switch {
	case closed:
		return 0, net.ErrClosed
	case err != nil:
		return 0, err
	case len(b) == 0:
		return 0, nil
	}
	at := c.n.streamArrival(c.from, c.to, time.Now(), len(b))
	if at.IsZero() {
		return len(b), nil // the stream gives up; the reader times out
	}
	if c.peer.enqueue(streamChunk{at: at, b: bytes.Clone(b)}) {
		c.n.count(c.from, c.to, len(b))
	}
	return len(b), nil
}

// Close implements net.Conn: the other end reads EOF after the data
// already sent, one one-way delay from now.
func (c *liveConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.in = nil
	c.mu.Unlock()
	c.signal()
	c.forget()
	c.peer.enqueue(streamChunk{at: time.Now().Add(c.n.oneWay(c.from, c.to)), eof: true})
	return nil
}

// LocalAddr implements net.Conn.
func (c *liveConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr implements net.Conn.
func (c *liveConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline implements net.Conn; writes never block, so only reads have
// a deadline.
func (c *liveConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *liveConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	c.signal()
	return nil
}

// SetWriteDeadline implements net.Conn; writes never block.
func (c *liveConn) SetWriteDeadline(time.Time) error { return nil }
