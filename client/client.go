package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// EventKind says what happened.
type EventKind int

const (
	// Connected: a connection to a router is up (the TLS handshake
	// completed on the client's side).
	Connected EventKind = iota + 1
	// Disconnected: a connection ended or a router refused it.
	Disconnected
	// Rotated: the session has a new certificate.
	Rotated
	// Revoked: a controller refused the session (revoked, or expired);
	// the client stops rotating and reconnecting.
	Revoked
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Rotated:
		return "rotated"
	case Revoked:
		return "revoked"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is a change of the client's state.
type Event struct {
	Kind   EventKind
	At     time.Time
	Router string // Connected, Disconnected
	Serial string // the certificate in use (Rotated: the new one)
	Err    error  // Disconnected, Revoked: why
}

// ErrRevoked is returned by Connect and Rotate once the session is over.
var ErrRevoked = errors.New("client: session revoked or expired")

// Client runs one session: it keeps its certificate fresh, dials routers
// and reports events. Its methods are safe for concurrent use.
type Client struct {
	cfg Config

	mu       sync.Mutex
	sess     *Session // guarded by mu
	revoked  error    // guarded by mu; set once the session is over
	subs     map[int]func(Event)
	nextSub  int
	nextDial int // router to try first; guarded by mu

	rotateMu sync.Mutex // one rotation at a time

	// OnRotate, if set before Start, is called after each rotation with
	// the new session (to save it, for example).
	OnRotate func(*Session)

	stop    chan struct{}
	done    chan struct{}
	started bool // guarded by mu
}

// New returns a client for session s. Call Start to keep its certificate
// fresh.
func New(cfg Config, s *Session) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if s == nil || s.Key == nil || len(s.Chain) == 0 {
		return nil, errors.New("client: session without key or certificate")
	}
	return &Client{cfg: cfg, sess: s, subs: make(map[int]func(Event)), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Session returns the current session (do not modify it).
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// SessionID is the session's id.
func (c *Client) SessionID() string { return c.Session().ID }

// Subscribe calls fn with every event, in order, from the goroutine that
// caused it; fn must not block. cancel stops the calls.
func (c *Client) Subscribe(fn func(Event)) (cancel func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.subs, id)
	}
}

func (c *Client) emit(e Event) {
	e.At = c.cfg.Clock.Now()
	c.mu.Lock()
	if e.Serial == "" && c.sess != nil {
		e.Serial = c.sess.Serial
	}
	fns := make([]func(Event), 0, len(c.subs))
	for _, fn := range c.subs {
		fns = append(fns, fn)
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn(e)
	}
}

// Start runs the refresh loop in the background until Close.
func (c *Client) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	go c.refreshLoop()
}

// Close stops the refresh loop and waits for it.
func (c *Client) Close() {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	select {
	case <-c.stop:
		return
	default:
		close(c.stop)
	}
	if started {
		<-c.done
	}
}

// Err returns ErrRevoked (wrapping the controller's answer) once the session
// is over, nil before.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revoked
}

func (c *Client) markRevoked(cause error) error {
	c.mu.Lock()
	first := c.revoked == nil
	if first {
		c.revoked = fmt.Errorf("%w: %v", ErrRevoked, cause)
	}
	err := c.revoked
	c.mu.Unlock()
	if first {
		c.cfg.Logger.Warn("client: session over", "session", c.SessionID(), "err", cause)
		c.emit(Event{Kind: Revoked, Err: err})
	}
	return err
}

// wait blocks for d or until Close; false if closed.
func (c *Client) wait(ctx context.Context, d time.Duration) bool {
	t := c.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-c.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// refreshLoop rotates the certificate at RotateAt of its lifetime, retrying
// with backoff (over every controller) until it expires, and stops when the
// session ends.
func (c *Client) refreshLoop() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		s := c.Session()
		now := c.cfg.Clock.Now()
		if !s.SessionExpires.IsZero() && !now.Before(s.SessionExpires) {
			c.markRevoked(errors.New("session expired"))
			return
		}
		at := c.cfg.rotationTime(s.Issued, s.Expires)
		if !s.SessionExpires.IsZero() && !at.Before(s.SessionExpires) {
			// No rotation can outlive the session: wait for its end.
			if !c.wait(ctx, s.SessionExpires.Sub(now)) {
				return
			}
			continue
		}
		if !c.wait(ctx, at.Sub(now)) {
			return
		}
		for attempt := 0; ; attempt++ {
			err := c.Rotate(ctx)
			if err == nil || errors.Is(err, ErrRevoked) {
				break
			}
			if ctx.Err() != nil {
				return
			}
			d := c.cfg.backoff(attempt)
			c.cfg.Logger.Warn("client: rotation failed", "err", err, "retry_in", d)
			if !c.wait(ctx, d) {
				return
			}
		}
		if c.Err() != nil {
			return
		}
	}
}

// Rotate rotates the certificate now. A controller that refuses the session
// ends it: Rotate then returns ErrRevoked and emits Revoked.
func (c *Client) Rotate(ctx context.Context) error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	cur := c.Session()
	next, err := rotate(ctx, &c.cfg, cur)
	if err != nil {
		if SessionOver(err) {
			return c.markRevoked(err)
		}
		return err
	}
	c.mu.Lock()
	c.sess = next
	c.mu.Unlock()
	c.cfg.Logger.Info("client: rotated", "session", next.ID, "serial", next.Serial, "expires", next.Expires)
	if c.OnRotate != nil {
		c.OnRotate(next)
	}
	c.emit(Event{Kind: Rotated, Serial: next.Serial})
	return nil
}

// TLSConfig returns a TLS 1.3 client configuration that presents the
// session's current certificate (read at each handshake, so rotations
// apply to the next connection) and trusts RootCAs.
func (c *Client) TLSConfig() *tls.Config {
	return pki.HardenTLS(&tls.Config{
		RootCAs: c.cfg.RootCAs,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert := c.Session().TLSCertificate()
			return &cert, nil
		},
	})
}

// Dial connects to a router, trying each configured router once, starting
// with the last that worked. It returns the connection and the router's
// address.
func (c *Client) Dial(ctx context.Context) (*tls.Conn, string, error) {
	if err := c.Err(); err != nil {
		return nil, "", err
	}
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
		conn, err := c.dialOne(ctx, addr)
		if err == nil {
			c.mu.Lock()
			c.nextDial = idx
			c.mu.Unlock()
			return conn, addr, nil
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

func (c *Client) dialOne(ctx context.Context, addr string) (*tls.Conn, error) {
	cfg := c.TLSConfig()
	cfg.ServerName = c.cfg.ServerName
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
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial router %s: %w", addr, err)
	}
	return conn.(*tls.Conn), nil
}

// IsRefused reports whether err is a router refusing the client's
// certificate (a bad_certificate alert, or certificate_revoked,
// certificate_expired, unknown_ca and the like).
func IsRefused(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" {
		return false
	}
	msg := oe.Err.Error()
	return strings.Contains(msg, "certificate") || strings.Contains(msg, "unknown certificate authority")
}

// Connect keeps one connection to a router: it dials (failing over across
// routers), emits Connected, hands the connection to fn, and when fn
// returns or the connection breaks emits Disconnected and dials again with
// backoff. A router's refusal makes it ask a controller to rotate the
// certificate: a refusal there means the session is over (Revoked, and
// Connect returns ErrRevoked); otherwise it reconnects with the new
// certificate. Connect returns when ctx is done or fn returns ErrStop.
func (c *Client) Connect(ctx context.Context, fn func(ctx context.Context, conn net.Conn) error) error {
	failures := 0
	for {
		if err := c.Err(); err != nil {
			return err
		}
		conn, router, err := c.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.emit(Event{Kind: Disconnected, Err: err})
			if !c.wait(ctx, c.cfg.backoff(failures)) {
				return c.stopErr(ctx)
			}
			failures++
			continue
		}
		c.emit(Event{Kind: Connected, Router: router})
		tc := &trackedConn{Conn: conn}
		start := c.cfg.Clock.Now()
		ferr := fn(ctx, tc)
		conn.Close()
		cause := tc.firstErr()
		if cause == nil {
			cause = ferr
		}
		c.emit(Event{Kind: Disconnected, Router: router, Err: cause})
		if errors.Is(ferr, ErrStop) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if IsRefused(cause) || IsRefused(ferr) {
			// Is the session still good? A rotation tells, and
			// replaces a certificate the router may no longer take.
			if err := c.Rotate(ctx); errors.Is(err, ErrRevoked) {
				return err
			}
		}
		if c.cfg.Clock.Now().Sub(start) > c.cfg.RetryMax {
			failures = 0 // it was up a good while: start over
		}
		c.mu.Lock()
		c.nextDial = (c.nextDial + 1) % len(c.cfg.Routers)
		c.mu.Unlock()
		if !c.wait(ctx, c.cfg.backoff(failures)) {
			return c.stopErr(ctx)
		}
		failures++
	}
}

// ErrStop, returned by Connect's fn, ends Connect without reconnecting.
var ErrStop = errors.New("client: stop")

func (c *Client) stopErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("client: closed")
}

// trackedConn remembers the first I/O error, so that Connect can tell a
// refusal from an ordinary end whatever fn returns.
type trackedConn struct {
	net.Conn
	mu  sync.Mutex
	err error
}

func (t *trackedConn) note(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
}

func (t *trackedConn) firstErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.note(err)
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	t.note(err)
	return n, err
}
