package client

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// EventKind says what happened.
type EventKind int

const (
	// Connected: a router admitted Connect's connection (data came from
	// it, or Config.AdmitWait passed after the handshake with no refusal).
	Connected EventKind = iota + 1
	// Disconnected: Connect's connection is down, or down for another
	// reason than last reported; Reason says why.
	Disconnected
	// Rotated: the session has a new certificate (Event.Session).
	Rotated
	// RotationFailed: a rotation failed at every controller
	// (ReasonControllersUnreachable); the first failure of a streak only.
	// The certificate in use stays valid until it expires; Rotated ends
	// the streak.
	RotationFailed
	// SessionEnded: a controller said the session is over (ReasonRevoked,
	// ReasonExpired), or its end passed. Nothing rotates or reconnects any
	// more; Err returns the same error.
	SessionEnded
	// LoggedIn: the session reached its end and Config.Token logged in
	// again: Event.Session is the new session (a new id).
	LoggedIn
)

func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Rotated:
		return "rotated"
	case RotationFailed:
		return "rotation_failed"
	case SessionEnded:
		return "session_ended"
	case LoggedIn:
		return "logged_in"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Reason says why a connection is down or a session ended.
type Reason int

const (
	ReasonNone Reason = iota
	// ReasonClosed: the application ended the connection (Connect's fn
	// returned).
	ReasonClosed
	// ReasonRouterLost: the router went away or could not be reached
	// (a close without an alert, a reset, a failed dial), and the session
	// is valid or no controller could say.
	ReasonRouterLost
	// ReasonRevoked: a controller said the session (its identity, its
	// certificate or its issuer) was revoked.
	ReasonRevoked
	// ReasonExpired: the session reached its end.
	ReasonExpired
	// ReasonAccessRemoved: a live connection was closed and the router
	// then refused access to the service: access was removed. Event.Err
	// is the refusal (IsAccessDenied), not the close.
	ReasonAccessRemoved
	// ReasonAccessDenied: the router refuses access to the service
	// (access_denied, unrecognized_name); the session is valid.
	ReasonAccessDenied
	// ReasonRefused: the router refused the certificate, but no
	// controller says the session is over (a router behind or ahead of
	// the controllers): Connect retries, and asks again.
	ReasonRefused
	// ReasonControllersUnreachable: no controller answered
	// (RotationFailed).
	ReasonControllersUnreachable
)

var reasonNames = [...]string{
	ReasonNone: "", ReasonClosed: "closed", ReasonRouterLost: "router_lost", ReasonRevoked: "revoked",
	ReasonExpired: "expired", ReasonAccessRemoved: "access_removed", ReasonAccessDenied: "access_denied",
	ReasonRefused: "refused", ReasonControllersUnreachable: "controllers_unreachable",
}

func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Event is a change of the client's state.
type Event struct {
	Kind    EventKind
	Reason  Reason // Disconnected, RotationFailed, SessionEnded, LoggedIn
	At      time.Time
	Router  string   // Connected, Disconnected
	Serial  string   // the certificate in use (Rotated, LoggedIn: the new one)
	Session *Session // Rotated, LoggedIn: the new session, to save it (do not modify it)
	Err     error    // Disconnected, RotationFailed, SessionEnded: what was seen
}

func (e Event) String() string {
	if e.Reason == ReasonNone {
		return e.Kind.String()
	}
	return e.Kind.String() + "(" + e.Reason.String() + ")"
}

// maxQueued caps the events waiting for one subscriber: past it the
// oldest are dropped (and logged), so a subscriber that stopped returning
// cannot grow the client's memory. Events come at human rates (rotations,
// reconnections with backoff); a thousand is minutes of a storm.
const maxQueued = 1000

// dispatcher delivers events to subscribers, each on its own goroutine
// and in the order they were emitted, so that a slow subscriber delays
// neither the client nor the others.
type dispatcher struct {
	log *slog.Logger

	mu     sync.Mutex
	subs   map[*subscriber]struct{} // guarded by mu
	closed bool                     // guarded by mu
}

type subscriber struct {
	fn   func(Event)
	wake chan struct{} // capacity 1
	stop chan struct{} // closed by cancel or the dispatcher's close

	mu    sync.Mutex
	queue []Event // guarded by mu
}

func newDispatcher(log *slog.Logger) *dispatcher {
	return &dispatcher{log: log, subs: make(map[*subscriber]struct{})}
}

func (d *dispatcher) subscribe(fn func(Event)) (cancel func()) {
	s := &subscriber{fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return func() {}
	}
	d.subs[s] = struct{}{}
	d.mu.Unlock()
	go s.run()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			_, live := d.subs[s]
			delete(d.subs, s)
			d.mu.Unlock()
			if live {
				close(s.stop)
			}
		})
	}
}

// emit queues e for every subscriber. Emits are serialised, so every
// subscriber sees the same order.
func (d *dispatcher) emit(e Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for s := range d.subs {
		s.mu.Lock()
		if len(s.queue) >= maxQueued {
			d.log.Warn("client: a subscriber is not keeping up; dropping its oldest event", "dropped", s.queue[0].String())
			s.queue = s.queue[1:]
		}
		s.queue = append(s.queue, e)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// close stops the deliveries: each subscriber gets what was queued before,
// then nothing more.
func (d *dispatcher) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	for s := range d.subs {
		close(s.stop)
	}
	d.subs = nil
}

func (s *subscriber) run() {
	for {
		stopped := false
		select {
		case <-s.wake:
		case <-s.stop:
			stopped = true
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range batch {
			s.fn(e)
		}
		if stopped {
			return
		}
	}
}
