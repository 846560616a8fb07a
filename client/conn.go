package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Why a Conn reads ahead.
//
// A router judges a client's certificate once the TLS 1.3 handshake is
// complete on the client's side, and refuses with an alert record after
// it. A client that reads first sees the alert; one that writes first
// (most request-response protocols) writes into a socket the router has
// closed and gets "broken pipe" or "connection reset", which says nothing
// of a refusal. So each Conn reads once in the background right after the
// handshake, as a reader would: the first data from the router proves
// admission, an alert is the refusal (a *RefusedError, from Read and
// Write alike), and the bytes read are handed to the application's first
// Read.

// peekSize is the read-ahead buffer: the first bytes of the first record.
// crypto/tls keeps the rest of the record for the next Read.
const peekSize = 512

// writeAlertWait is how long a failed Write waits for the read-ahead to
// deliver the router's alert, which arrived before the close the Write
// met.
const writeAlertWait = time.Second

// Conn is a connection to a router, made by Dial. It is a net.Conn; a
// router's refusal shows on Read and Write as a *RefusedError.
type Conn struct {
	tc     *tls.Conn
	client *Client
	router string
	sess   *Session // the session current when it was dialed
	// onAdmit is Connect's: called once, when admission is known.
	onAdmit func(*Conn)

	peeked chan struct{} // closed when the read-ahead returned
	pbuf   []byte        // read ahead; set before peeked is closed, then guarded by rmu
	perr   error         // the read-ahead's error; as pbuf

	rmu sync.Mutex

	admitted  atomic.Bool
	refusal   atomic.Pointer[RefusedError]
	lost      atomic.Pointer[error] // the first unexpected I/O error after admission
	closing   atomic.Bool           // Close was called: errors after it are expected
	closeOnce sync.Once
	closeErr  error
}

var _ net.Conn = (*Conn)(nil)

// Dial connects to a router, trying each configured router once, starting
// with the last that worked. It returns the connection and the router's
// address. The handshake is done; whether the router admitted the client
// shows on the first Read or Write (a *RefusedError). A refusal, or an
// unexpected close, makes the client ask its controllers about the
// session in the background, so that SessionEnded is reported however the
// connection is used. Close ends the connection.
func (c *Client) Dial(ctx context.Context) (*Conn, string, error) {
	return c.dial(ctx, "", nil)
}

// dial is Dial with the TLS SNI serverName (empty: Config.ServerName, or
// the router's host) and Connect's onAdmit.
func (c *Client) dial(ctx context.Context, serverName string, onAdmit func(*Conn)) (*Conn, string, error) {
	if err := c.Err(); err != nil {
		return nil, "", err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	c.mu.Lock()
	start := c.nextDial
	c.mu.Unlock()
	n := len(c.cfg.Routers)
	if n == 0 {
		return nil, "", errors.New("client: no router configured")
	}
	var errs []error
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		addr := c.cfg.Routers[idx]
		conn, err := c.dialOne(ctx, addr, serverName, onAdmit)
		if err == nil {
			c.mu.Lock()
			c.nextDial = idx
			c.mu.Unlock()
			return conn, addr, nil
		}
		if cerr := c.Err(); cerr != nil {
			return nil, "", cerr
		}
		var re *RefusedError
		if errors.As(err, &re) {
			// A refusal in the handshake is the router's answer,
			// not a failure another router would avoid.
			c.suspectRefusal(re)
			return nil, addr, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	c.mu.Lock()
	c.nextDial = (start + 1) % n
	c.mu.Unlock()
	return nil, "", errors.Join(errs...)
}

func (c *Client) dialOne(ctx context.Context, addr, serverName string, onAdmit func(*Conn)) (*Conn, error) {
	cfg := c.TLSConfig()
	cfg.ServerName = serverName
	if cfg.ServerName == "" {
		cfg.ServerName = c.cfg.ServerName
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("client: router address %q: %w", addr, err)
		}
		cfg.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if a, ok := alertOf(err); ok && refusalAlert(a) {
			return nil, &RefusedError{Router: addr, Alert: a, Err: err}
		}
		return nil, fmt.Errorf("client: dial router %s: %w", addr, err)
	}
	k := &Conn{tc: raw.(*tls.Conn), client: c, router: addr, sess: c.Session(), onAdmit: onAdmit, peeked: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		k.tc.Close()
		return nil, ErrClosed
	}
	c.conns[k] = struct{}{}
	c.mu.Unlock()
	go k.readAhead()
	if onAdmit != nil {
		go k.admitAfter(c.cfg.AdmitWait)
	}
	return k, nil
}

// readAhead is the background first read (see above).
func (k *Conn) readAhead() {
	buf := make([]byte, peekSize)
	n, err := k.tc.Read(buf)
	k.pbuf = buf[:n]
	switch a, isAlert := alertOf(err); {
	case n > 0:
		k.admit()
		if err != nil {
			k.noteLost(err)
		}
	case isAlert && refusalAlert(a):
		re := &RefusedError{Router: k.router, Alert: a, Err: err}
		k.refusal.Store(re)
		err = re
		k.client.suspectRefusal(re)
		// Wake a Write blocked on the dead socket.
		k.tc.NetConn().Close()
	case err != nil && !isTimeout(err):
		k.noteLost(err)
	}
	k.perr = err
	close(k.peeked)
}

// admitAfter reports admission once d passed after the handshake with no
// refusal, for a router that has nothing to say before the client speaks.
func (k *Conn) admitAfter(d time.Duration) {
	t := k.client.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
	case <-k.peeked:
		return
	}
	select {
	case <-k.peeked:
		// It returned while the timer fired: it decided.
	default:
		if !k.closing.Load() {
			k.admit()
		}
	}
}

func (k *Conn) admit() {
	if k.admitted.CompareAndSwap(false, true) && k.onAdmit != nil {
		k.onAdmit(k)
	}
}

// noteLost records an I/O error that the application did not cause:
// the router closed or reset the connection. The client then asks its
// controllers whether the session is still valid.
func (k *Conn) noteLost(err error) {
	if k.closing.Load() || isTimeout(err) {
		return
	}
	if k.lost.CompareAndSwap(nil, &err) {
		k.client.suspect()
	}
}

// Read reads data from the router; a refusal is a *RefusedError.
func (k *Conn) Read(p []byte) (int, error) {
	<-k.peeked // a deadline set on k ends the read-ahead too
	k.rmu.Lock()
	if len(k.pbuf) > 0 {
		n := copy(p, k.pbuf)
		k.pbuf = k.pbuf[n:]
		k.rmu.Unlock()
		return n, nil
	}
	if err := k.perr; err != nil {
		if isTimeout(err) {
			k.perr = nil // the deadline's, once; later reads go on
		}
		k.rmu.Unlock()
		return 0, err
	}
	k.rmu.Unlock()
	n, err := k.tc.Read(p)
	if err != nil {
		k.noteLost(err)
	}
	return n, err
}

// Write writes data to the router; a refusal is a *RefusedError, even
// when the write met the socket the refusing router had closed.
func (k *Conn) Write(p []byte) (int, error) {
	if re := k.refusal.Load(); re != nil {
		return 0, re
	}
	n, err := k.tc.Write(p)
	if err == nil || k.closing.Load() {
		return n, err
	}
	t := k.client.cfg.Clock.NewTimer(writeAlertWait)
	defer t.Stop()
	select {
	case <-k.peeked:
	case <-t.C():
	}
	if re := k.refusal.Load(); re != nil {
		return n, re
	}
	if k.admitted.Load() {
		k.noteLost(err)
	}
	return n, err
}

// Close closes the connection (sending close_notify).
func (k *Conn) Close() error {
	k.closeOnce.Do(func() {
		k.closing.Store(true)
		k.closeErr = k.tc.Close()
		c := k.client
		c.mu.Lock()
		if c.conns != nil {
			delete(c.conns, k)
		}
		c.mu.Unlock()
	})
	return k.closeErr
}

// Router is the address of the router the connection is to.
func (k *Conn) Router() string { return k.router }

// ConnectionState is the TLS state of the connection.
func (k *Conn) ConnectionState() tls.ConnectionState { return k.tc.ConnectionState() }

func (k *Conn) LocalAddr() net.Addr                { return k.tc.LocalAddr() }
func (k *Conn) RemoteAddr() net.Addr               { return k.tc.RemoteAddr() }
func (k *Conn) SetDeadline(t time.Time) error      { return k.tc.SetDeadline(t) }
func (k *Conn) SetReadDeadline(t time.Time) error  { return k.tc.SetReadDeadline(t) }
func (k *Conn) SetWriteDeadline(t time.Time) error { return k.tc.SetWriteDeadline(t) }

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// suspectRefusal acts on a router's refusal seen outside Connect: a
// certificate refusal makes the client ask its controllers; a refusal of
// access says nothing of the session.
func (c *Client) suspectRefusal(re *RefusedError) {
	if !re.AccessDenied() {
		c.suspect()
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }
