package client

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// Client runs one session: it keeps its certificate fresh from the moment
// New returns, dials routers, and reports what happens as events. Its
// methods are safe for concurrent use. Close ends everything it runs.
type Client struct {
	cfg    Config
	ctx    context.Context // done at Close
	cancel context.CancelFunc
	events *dispatcher

	mu         sync.Mutex
	sess       *Session                // guarded by mu
	ended      *SessionEndedError      // guarded by mu; set once the session is over
	closed     bool                    // guarded by mu
	conns      map[*Conn]struct{}      // guarded by mu: open connections, ended by Close
	nextDial   int                     // guarded by mu: the router to try first
	rotFailing bool                    // guarded by mu: RotationFailed reported, no rotation since
	links      map[*linkState]struct{} // guarded by mu: the running Connects'
	checking   chan struct{}           // capacity 1: a background session check is running

	rotateMu sync.Mutex // one rotation (or login) at a time

	checkMu   sync.Mutex    // one session check at a time
	checks    atomic.Uint64 // session checks answered; written under checkMu
	lastCheck checkState    // guarded by checkMu: the last answer

	loopDone chan struct{}
}

// New returns a client for session s and starts keeping its certificate
// fresh (rotating it before it expires, over every controller) until
// Close or the session's end. Subscribe to see what happens.
func New(cfg Config, s *Session) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if s == nil || s.Key == nil || len(s.Chain) == 0 {
		return nil, errors.New("client: session without key or certificate")
	}
	if s.Issued.IsZero() || s.Expires.IsZero() || s.SessionExpires.IsZero() {
		// A Session built by hand: the certificate's dates stand in.
		cp := *s
		if cp.Issued.IsZero() {
			cp.Issued = s.Leaf().NotBefore.Add(pki.ClockSkewAllowance)
		}
		if cp.Expires.IsZero() {
			cp.Expires = s.Leaf().NotAfter
		}
		if cp.SessionExpires.IsZero() {
			cp.SessionExpires = cp.Expires
		}
		s = &cp
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg: cfg, ctx: ctx, cancel: cancel, events: newDispatcher(cfg.Logger),
		sess: s, conns: make(map[*Conn]struct{}), links: make(map[*linkState]struct{}), checking: make(chan struct{}, 1), loopDone: make(chan struct{}),
	}
	go c.refreshLoop()
	return c, nil
}

// Start does nothing: New starts the client. It remains for callers
// written when it was needed.
func (c *Client) Start() {}

// Session returns the current session (do not modify it).
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// SessionID is the current session's id.
func (c *Client) SessionID() string { return c.Session().ID }

// Subscribe calls fn with every event from now on, in order, on a
// goroutine of its own: a slow fn delays neither rotation nor the other
// subscribers (past a thousand waiting events its oldest are dropped).
// cancel stops the calls; Close ends them after the events already
// emitted.
func (c *Client) Subscribe(fn func(Event)) (cancel func()) {
	return c.events.subscribe(fn)
}

func (c *Client) emit(e Event) {
	e.At = c.cfg.Clock.Now()
	if e.Serial == "" {
		e.Serial = c.Session().Serial
	}
	c.events.emit(e)
}

// Close stops the client: the refresh loop, Connect (which returns
// ErrClosed) and every connection Dial returned. Afterwards every method
// returns ErrClosed and no event is delivered. Close waits for the
// refresh loop, not for subscribers.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*Conn, 0, len(c.conns))
	for k := range c.conns {
		conns = append(conns, k)
	}
	c.conns = nil
	c.mu.Unlock()
	c.events.close()
	c.cancel()
	for _, k := range conns {
		k.Close()
	}
	<-c.loopDone
	return nil
}

// Err returns ErrClosed after Close, the *SessionEndedError (ErrRevoked,
// ErrExpired) once the session is over, nil before.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

func (c *Client) errLocked() error {
	switch {
	case c.closed:
		return ErrClosed
	case c.ended != nil:
		return c.ended
	}
	return nil
}

// end records that the session is over and reports it once, unless
// Config.Token logs in again after the session's expiry. It returns the
// client's error, nil if a new session replaced the old.
func (c *Client) end(ctx context.Context, reason Reason, cause error) error {
	if reason == ReasonExpired && c.cfg.Token != nil {
		if err := c.relogin(ctx, cause); err == nil {
			return nil
		}
	}
	c.mu.Lock()
	first := c.ended == nil && !c.closed
	if first {
		c.ended = &SessionEndedError{Reason: reason, Cause: cause}
	}
	err := c.errLocked()
	sid := c.sess.ID
	links := make([]*linkState, 0, len(c.links))
	for l := range c.links {
		links = append(links, l)
	}
	c.mu.Unlock()
	if first {
		c.cfg.Logger.Warn("client: session over", "session", sid, "reason", reason.String(), "err", cause)
		// Connect's connection goes down for this reason first: the
		// session's end is the last word.
		for _, l := range links {
			l.down("", reason, cause)
		}
		c.emit(Event{Kind: SessionEnded, Reason: reason, Err: err})
	}
	return err
}

// wait blocks for d or until ctx is done or the client closed; false if
// it did not wait the whole d.
func (c *Client) wait(ctx context.Context, d time.Duration) bool {
	t := c.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-c.ctx.Done():
		return false
	case <-ctx.Done():
		return false
	}
}

// refreshLoop rotates the certificate before it expires, retrying with
// backoff (over every controller), and stops when the session ends or the
// client closes.
func (c *Client) refreshLoop() {
	defer close(c.loopDone)
	ctx := c.ctx
	for c.Err() == nil {
		s := c.Session()
		now := c.cfg.Clock.Now()
		if !now.Before(s.SessionExpires) {
			c.end(ctx, ReasonExpired, errors.New("the session's end has passed"))
			continue
		}
		if !now.Before(s.Expires) {
			// No controller answered before the certificate
			// expired: nothing can rotate it any more.
			c.end(ctx, ReasonExpired, errors.New("the certificate expired before it could be rotated"))
			continue
		}
		at := c.cfg.rotationTime(s.Issued, s.Expires)
		if !s.Expires.Before(s.SessionExpires) {
			// The certificate lasts as long as the session: no
			// rotation can extend it. With a token source, renew
			// at the session's own rotation time (a fresh token
			// extends a token-bound session, else log in again),
			// else wait for the end.
			until := s.SessionExpires
			if c.cfg.Token != nil {
				until = c.cfg.rotationTime(s.renewFrom(), s.SessionExpires)
			}
			if !c.wait(ctx, until.Sub(now)) {
				return
			}
			if c.cfg.Token != nil && c.Session() == s {
				c.renewLoop(ctx, s)
			}
			continue
		}
		if !c.wait(ctx, at.Sub(now)) {
			return
		}
		for attempt := 0; c.Session() == s; attempt++ {
			err := c.Rotate(ctx)
			if err == nil || c.Err() != nil || ctx.Err() != nil {
				break
			}
			if now := c.cfg.Clock.Now(); !now.Before(s.SessionExpires) || !now.Before(s.Expires) {
				break // the loop above ends it
			}
			d := c.cfg.backoff(attempt)
			c.cfg.Logger.Warn("client: rotation failed", "err", err, "retry_in", d)
			if !c.wait(ctx, d) {
				return
			}
		}
	}
}

// Rotate rotates the certificate now. A controller that says the session
// is over ends it: Rotate then returns the *SessionEndedError and emits
// SessionEnded (or, after the session's expiry with Config.Token set,
// logs in again and returns nil).
func (c *Client) Rotate(ctx context.Context) error {
	reason, err := c.rotateOnce(ctx)
	if reason != ReasonNone {
		return c.end(ctx, reason, err) // without rotateMu: end may log in again
	}
	return err
}

// rotateOnce makes one rotation; a reason if the answer ends the session.
func (c *Client) rotateOnce(ctx context.Context) (Reason, error) {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	if err := c.Err(); err != nil {
		return ReasonNone, err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	cur := c.Session()
	next, err := rotate(ctx, &c.cfg, cur)
	if err != nil {
		if c.closedErr() != nil {
			return ReasonNone, ErrClosed
		}
		if reason, over := sessionOverReason(err); over {
			return reason, err
		}
		c.mu.Lock()
		first := !c.rotFailing
		c.rotFailing = true
		c.mu.Unlock()
		if first {
			c.emit(Event{Kind: RotationFailed, Reason: ReasonControllersUnreachable, Err: err})
		}
		return ReasonNone, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ReasonNone, ErrClosed
	}
	c.sess = next
	c.rotFailing = false
	c.mu.Unlock()
	c.cfg.Logger.Info("client: rotated", "session", next.ID, "serial", next.Serial, "expires", next.Expires)
	c.emit(Event{Kind: Rotated, Serial: next.Serial, Session: next})
	return ReasonNone, nil
}

// sessionOverReason says whether err ends the session and why: an
// authoritative answer, or every controller refusing (controllers that
// predate the codes), read as a revocation.
func sessionOverReason(err error) (Reason, bool) {
	if r, ok := endReason(err); ok {
		return r, true
	}
	if allRefused(err) {
		return ReasonRevoked, true
	}
	return ReasonNone, false
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return nil
}

// bound returns a context done when ctx is or when the client closes.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
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
