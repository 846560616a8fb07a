package client

import (
	"context"
	"errors"
	"sync"
	"time"
)

// badControllerFor is how long a controller that failed at the transport
// level (unreachable, or silent past AttemptTimeout) is asked last. Long
// enough to spare a burst of calls the wait, short enough to come back to
// a controller that restarted.
const badControllerFor = 30 * time.Second

// controllerHealth remembers controllers that did not answer, so that the
// next call asks them last. It is process-wide, as Login and
// RotateSession are functions of a Config: three logins in a row pay for
// a silent controller once.
type controllerHealth struct {
	mu  sync.Mutex
	bad map[string]time.Time // URL → until when it is asked last; guarded by mu
}

var health = &controllerHealth{bad: make(map[string]time.Time)}

func (h *controllerHealth) isBad(url string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	until, ok := h.bad[url]
	if ok && !now.Before(until) {
		delete(h.bad, url)
		return false
	}
	return ok
}

func (h *controllerHealth) mark(url string, ok bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		delete(h.bad, url)
	} else {
		h.bad[url] = now.Add(badControllerFor)
	}
}

// controllerOrder is the order to ask the controllers in: prefer first,
// then the configured ones; those that recently did not answer last.
// Every URL is checked first (prefer may come from a session.json on
// disk): nothing is sent before all pass.
func controllerOrder(cfg *Config, prefer string) ([]string, error) {
	all := make([]string, 0, len(cfg.Controllers)+1)
	if prefer != "" {
		all = append(all, prefer)
	}
	for _, c := range cfg.Controllers {
		if c != prefer {
			all = append(all, c)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("client: no controller configured")
	}
	for _, u := range all {
		if err := checkControllerURL(u); err != nil {
			return nil, err
		}
	}
	now := cfg.Clock.Now()
	good, bad := all[:0:0], all[:0:0]
	for _, u := range all {
		if health.isBad(u, now) {
			bad = append(bad, u)
		} else {
			good = append(good, u)
		}
	}
	return append(good, bad...), nil
}

type attempt[T any] struct {
	base string
	v    T
	err  error
}

// hedged calls fn at the controllers in controllerOrder until one
// succeeds, within HTTPTimeout. Each attempt is bounded by AttemptTimeout;
// the next starts as soon as one fails, or after HedgeAfter if it has not
// answered (the first keeps running: a slow controller's answer still
// counts). An error for which next is false ends the call at once (a
// refused token, a revoked session: another controller would say the
// same); otherwise the errors of all attempts are joined.
func hedged[T any](ctx context.Context, cfg *Config, prefer string, next func(error) bool,
	fn func(ctx context.Context, base string) (T, error)) (T, string, error) {
	var zero T
	order, err := controllerOrder(cfg, prefer)
	if err != nil {
		return zero, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.HTTPTimeout)
	defer cancel() // ends the attempts still running
	results := make(chan attempt[T], len(order))
	launched, finished := 0, 0
	done := make(map[string]bool, len(order))
	launch := func() {
		base := order[launched]
		launched++
		go func() {
			actx, acancel := context.WithTimeout(ctx, cfg.AttemptTimeout)
			defer acancel()
			v, err := fn(actx, base)
			results <- attempt[T]{base, v, err}
		}()
	}
	launch()
	var errs []error
	for {
		var hedge <-chan time.Time
		if launched < len(order) {
			t := cfg.Clock.NewTimer(cfg.HedgeAfter)
			defer t.Stop()
			hedge = t.C()
		}
		select {
		case r := <-results:
			finished++
			done[r.base] = true
			var ae *APIError
			answered := errors.As(r.err, &ae)
			if r.err == nil || answered {
				health.mark(r.base, true, cfg.Clock.Now())
			} else if ctx.Err() == nil {
				health.mark(r.base, false, cfg.Clock.Now())
			}
			if r.err == nil {
				// Controllers asked before the winner and still
				// silent are slower than a hedge: ask them last.
				for _, base := range order[:launched] {
					if base == r.base {
						break
					}
					if !done[base] {
						health.mark(base, false, cfg.Clock.Now())
					}
				}
				return r.v, r.base, nil
			}
			if !next(r.err) {
				return zero, "", r.err
			}
			errs = append(errs, r.err)
			if launched < len(order) {
				launch()
			} else if finished == launched {
				if len(errs) == 1 {
					return zero, "", errs[0]
				}
				return zero, "", errors.Join(errs...)
			}
		case <-hedge:
			launch()
		case <-ctx.Done():
			return zero, "", errors.Join(append(errs, ctx.Err())...)
		}
	}
}
