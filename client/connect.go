package client

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Connect keeps one connection to a router: it dials (failing over across
// routers), hands the connection to fn, and when fn returns or the
// connection breaks dials again with backoff. It reports the connection's
// state as events: Connected once the router admitted it, Disconnected
// with a Reason when it is down (or down for another reason), and
// SessionEnded when a controller says the session is over.
//
// Why a connection went down is decided, not guessed: a refusal carries a
// TLS alert (access_denied: ReasonAccessDenied; a certificate alert: the
// controllers are asked, ReasonRevoked or ReasonExpired if they say so,
// ReasonRefused if not); a close without an alert makes the client ask the
// controllers too, and, if the session holds, redial at once: a refusal
// of access then is ReasonAccessRemoved, anything else ReasonRouterLost.
//
// Connect returns nil when fn returns ErrStop, ctx's error when ctx is
// done, ErrClosed after Close, and the *SessionEndedError (ErrRevoked,
// ErrExpired) when the session is over. fn must return when its
// connection fails.
func (c *Client) Connect(ctx context.Context, fn func(ctx context.Context, conn net.Conn) error) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	link := &linkState{c: c}
	c.mu.Lock()
	c.links[link] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.links, link)
		c.mu.Unlock()
	}()
	failures := 0
	redialNow := false
	for {
		if err := c.Err(); err != nil {
			link.down("", reasonOf(err), err)
			return err
		}
		if !redialNow {
			if failures > 0 && !c.wait(ctx, c.cfg.backoff(failures-1)) {
				return c.stopErr(ctx)
			}
		}
		redialNow = false
		failures++
		conn, router, err := c.dial(ctx, "", func(k *Conn) { link.up(k.Router()) })
		if err != nil {
			if ctx.Err() != nil {
				return c.stopErr(ctx)
			}
			var re *RefusedError
			if errors.As(err, &re) {
				link.down(router, c.judgeRefusal(ctx, re), err)
			} else {
				link.down(router, ReasonRouterLost, err)
			}
			continue
		}
		ferr := fn(ctx, conn)
		conn.Close()
		admitted := conn.admitted.Load()
		switch re := conn.refusal.Load(); {
		case errors.Is(ferr, ErrStop):
			link.down(router, ReasonClosed, nil)
			return nil
		case ctx.Err() != nil:
			link.down(router, ReasonClosed, nil)
			return c.stopErr(ctx)
		case re != nil:
			link.down(router, c.judgeRefusal(ctx, re), re)
		case conn.lost.Load() != nil || isConnError(ferr):
			lost := ferr
			if p := conn.lost.Load(); p != nil {
				lost = *p
			}
			if !admitted {
				link.down(router, ReasonRouterLost, lost)
				break
			}
			if old := conn.sess; old.ID != c.SessionID() && !c.cfg.Clock.Now().Before(old.SessionExpires) {
				// A session that Config.Token replaced has
				// reached its end, and the router closed its
				// connection: the new session connects now.
				link.down(router, ReasonExpired, lost)
				redialNow = true
				break
			}
			switch c.checkSession(ctx) {
			case sessionEnded:
				err := c.Err()
				link.down(router, reasonOf(err), lost)
				continue
			default:
				// The session holds (or nobody could say): what the
				// router does with the next dial tells why it
				// closed.
				link.lose(router, lost)
				redialNow = true
			}
		default:
			link.down(router, ReasonClosed, ferr)
		}
		if admitted {
			failures = 0
			c.mu.Lock()
			c.nextDial = (c.nextDial + 1) % len(c.cfg.Routers)
			c.mu.Unlock()
		}
	}
}

// judgeRefusal decides what a router's refusal means: a refusal of access
// says nothing of the session; a certificate refusal is put to the
// controllers.
func (c *Client) judgeRefusal(ctx context.Context, re *RefusedError) Reason {
	if re.AccessDenied() {
		return ReasonAccessDenied
	}
	if c.checkSession(ctx) == sessionEnded {
		return reasonOf(c.Err())
	}
	return ReasonRefused
}

// reasonOf is the reason of the client's error.
func reasonOf(err error) Reason {
	var se *SessionEndedError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ReasonClosed
}

// isConnError reports whether err is the connection failing (as opposed
// to fn's own error).
func isConnError(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || isEOF(err))
}

func (c *Client) stopErr(ctx context.Context) error {
	if err := c.closedErr(); err != nil {
		return err
	}
	return ctx.Err()
}

// linkState is Connect's view of its connection, and the events it
// emits: only changes (up, down, down for another reason).
type linkState struct {
	c *Client

	mu      sync.Mutex
	router  string // guarded by mu: the router of the last Connected
	isUp    bool   // guarded by mu
	reason  Reason // guarded by mu: the last Disconnected's
	pending *Event // guarded by mu: a Disconnected whose reason the next dial decides
}

func (l *linkState) up(router string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending != nil {
		// Admitted again: the router, not the access, was lost.
		l.pending.Reason = ReasonRouterLost
		l.c.emit(*l.pending)
		l.pending = nil
	}
	l.isUp, l.reason, l.router = true, ReasonNone, router
	l.c.emit(Event{Kind: Connected, Router: router})
}

// lose records that the live connection closed without a word: its
// Disconnected waits for the next dial's outcome.
func (l *linkState) lose(router string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isUp {
		l.pending = &Event{Kind: Disconnected, Router: router, Err: err}
		l.isUp = false
	}
}

func (l *linkState) down(router string, reason Reason, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if router == "" && l.isUp {
		router = l.router
	}
	if l.pending != nil {
		ev := *l.pending
		l.pending = nil
		switch reason {
		case ReasonAccessDenied:
			// The refusal, not the close, says why: the
			// application can tell it with IsAccessDenied.
			ev.Reason, ev.Err = ReasonAccessRemoved, err
		case ReasonRevoked, ReasonExpired:
			ev.Reason = reason
		default:
			ev.Reason = ReasonRouterLost
		}
		l.c.emit(ev)
		l.reason = ev.Reason
		if ev.Reason == reason || ev.Reason == ReasonAccessRemoved {
			return
		}
	}
	if !l.isUp && (l.reason == reason || l.reason == ReasonAccessRemoved && reason == ReasonAccessDenied) {
		return // no change: still refused access after its removal, say
	}
	if reason == ReasonClosed && !l.isUp {
		return // nothing was up to close
	}
	l.isUp, l.reason = false, reason
	l.c.emit(Event{Kind: Disconnected, Reason: reason, Router: router, Err: err})
}
