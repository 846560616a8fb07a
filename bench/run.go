package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/certmesh/certmesh/client"
)

// runner is one run in progress.
type runner struct {
	cfg   Config
	stats *stats
	start time.Time
	// work is the caller's context: when it ends, everything under way
	// gives up. The run's duration only stops new lives from starting.
	work context.Context
	// next counts lives: the round robin over controllers.
	next atomic.Uint64
}

func (r *runner) abandoned() bool { return r.work.Err() != nil }

// stats are the run's figures, safe for concurrent use.
type stats struct {
	login, handshake, rotate, revoke, revokeToClose *histogram
	firstAdmission, rotatedAdmission                *histogram
	byRouter                                        map[string]*histogram // first admission; keys fixed at start
	completed                                       atomic.Int64          // logins that succeeded

	mu     sync.Mutex
	errors map[string]*ErrorCount // by step; guarded by mu
}

func newStats(routers []string) *stats {
	s := &stats{
		login: newHistogram(), handshake: newHistogram(), rotate: newHistogram(), revoke: newHistogram(),
		revokeToClose: newHistogram(), firstAdmission: newHistogram(), rotatedAdmission: newHistogram(),
		byRouter: make(map[string]*histogram, len(routers)), errors: make(map[string]*ErrorCount),
	}
	for _, rt := range routers {
		s.byRouter[rt] = newHistogram()
	}
	return s
}

// fail counts an error of a step, keeping the first for the report.
func (s *stats) fail(step string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.errors[step]
	if e == nil {
		e = &ErrorCount{First: err.Error()}
		s.errors[step] = e
	}
	e.Count++
}

func (s *stats) errorCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, e := range s.errors {
		n += e.Count
	}
	return n
}

// ErrNoLogin is a run in which not one login succeeded: the token, the
// roots or the addresses are wrong, and nothing else was measured.
var ErrNoLogin = errors.New("bench: no login succeeded")

// Run drives the cluster for cfg.Duration and returns the figures. It
// ends early, with the figures so far, when ctx ends; with ErrNoLogin
// when the first Clients logins all failed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	r := &runner{cfg: cfg, stats: newStats(cfg.Routers), start: time.Now(), work: ctx}
	limit := rate.Inf
	if cfg.Rate > 0 {
		limit = rate.Limit(cfg.Rate)
	}
	limiter := rate.NewLimiter(limit, 1)

	stopProgress := r.progress()
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for limiter.Wait(runCtx) == nil {
				// A life under way finishes when the duration is up: its
				// waits are bounded by SyncTimeout and CallTimeout.
				r.life(ctx)
				if r.stats.completed.Load() == 0 && r.loginFailures() >= int64(cfg.Clients) {
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	stopProgress()
	rep := r.report(time.Since(r.start))
	if rep.Logins == 0 {
		first := ""
		if e := rep.Errors["login"]; e != nil {
			first = ": " + e.First
		}
		return rep, fmt.Errorf("%w%s", ErrNoLogin, first)
	}
	return rep, nil
}

// fail counts an error of a step, unless the run was abandoned: a call
// cut short by Ctrl-C is no failure of the cluster.
func (r *runner) fail(step string, err error) {
	if !r.abandoned() {
		r.stats.fail(step, err)
	}
}

func (r *runner) loginFailures() int64 {
	r.stats.mu.Lock()
	defer r.stats.mu.Unlock()
	if e := r.stats.errors["login"]; e != nil {
		return e.Count
	}
	return 0
}

// controller returns the controller for the life's k-th call.
func (r *runner) controller(life uint64, k int) string {
	cs := r.cfg.Controllers
	return cs[(int(life%uint64(len(cs)))+k)%len(cs)]
}

// life runs one client's life (the package doc's steps); work, when
// done, abandons it.
func (r *runner) life(work context.Context) {
	id := r.next.Add(1) - 1
	st := r.stats

	ctrl := r.controller(id, 0)
	t0 := time.Now()
	sess, err := r.call(work, func(ctx context.Context) (*client.Session, error) {
		return client.Login(ctx, r.cfg.sdk(ctrl), r.cfg.Token)
	})
	if err != nil {
		r.fail("login", fmt.Errorf("at %s: %w", ctrl, err))
		return
	}
	acked := time.Now()
	st.login.record(acked.Sub(t0))
	st.completed.Add(1)

	// Connect through every router at once; keep the first router's
	// connection up for the revocation.
	conns := r.connectAll(work, ctrl, sess, acked, st.firstAdmission, true)
	live := conns[r.cfg.Routers[0]]
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	if r.cfg.Rotate {
		rc := r.controller(id, 1)
		t0 := time.Now()
		next, err := r.call(work, func(ctx context.Context) (*client.Session, error) {
			s := *sess
			s.Controller = rc
			return client.RotateSession(ctx, r.cfg.sdk(rc), &s)
		})
		if err != nil {
			r.fail("rotate", fmt.Errorf("at %s: %w", rc, err))
		} else {
			at := time.Now()
			st.rotate.record(at.Sub(t0))
			for _, c := range r.connectAll(work, rc, next, at, st.rotatedAdmission, false) {
				c.Close()
			}
		}
	}

	if r.cfg.Revoke {
		vc := r.controller(id, 2)
		t0 := time.Now()
		_, err := call(work, r.cfg.CallTimeout, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.revokeSession(ctx, vc, sess)
		})
		if err != nil {
			r.fail("revoke", fmt.Errorf("at %s: %w", vc, err))
			return
		}
		acked := time.Now()
		st.revoke.record(acked.Sub(t0))
		if live == nil {
			return // the first router never admitted it: counted there
		}
		closed, err := r.waitClosed(live)
		if err != nil {
			r.fail("revoke_to_close", fmt.Errorf("via %s: %w", r.cfg.Routers[0], err))
			return
		}
		st.revokeToClose.record(closed.Sub(acked))
	}
}

// call runs one controller call under CallTimeout.
func call[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx)
}

func (r *runner) call(ctx context.Context, fn func(context.Context) (*client.Session, error)) (*client.Session, error) {
	return call(ctx, r.cfg.CallTimeout, fn)
}

// revokeSession revokes sess at controller ctrl: with the admin
// certificate if there is one, else by the session's own logout.
func (r *runner) revokeSession(ctx context.Context, ctrl string, sess *client.Session) error {
	if r.cfg.Admin == nil {
		s := *sess
		s.Controller = ctrl
		return client.Logout(ctx, r.cfg.sdk(ctrl), &s)
	}
	admin, err := client.NewAdmin(r.cfg.sdk(ctrl), *r.cfg.Admin)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.Revoke(ctx, client.Revocation{SessionID: sess.ID})
	return err
}

// connectAll connects sess through every router at once and records each
// first admission after since in all (and, when perRouter, in the router's
// own histogram). It returns the admitted connections by router.
func (r *runner) connectAll(ctx context.Context, ctrl string, sess *client.Session, since time.Time, all *histogram, perRouter bool) map[string]net.Conn {
	results := make(chan connectResult, len(r.cfg.Routers))
	for _, rt := range r.cfg.Routers {
		go func() { results <- r.connectUntilAdmitted(ctx, ctrl, rt, sess) }()
	}
	conns := make(map[string]net.Conn, len(r.cfg.Routers))
	for range r.cfg.Routers {
		res := <-results
		if res.err != nil {
			r.fail("connect", fmt.Errorf("via %s: %w", res.router, res.err))
			continue
		}
		conns[res.router] = res.conn
		d := res.at.Sub(since)
		all.record(d)
		if perRouter {
			r.stats.byRouter[res.router].record(d)
		}
	}
	return conns
}
