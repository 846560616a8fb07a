//go:build unix

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
)

// chaosEnv is a running cluster as the chaos test drives it: the same
// faults on containers (docker kill, pause, network disconnect) and on OS
// processes (SIGKILL, SIGSTOP; no network cuts).
type chaosEnv struct {
	backend        string
	ctrls, routers []*node
	roots          *x509.CertPool
	admin          tls.Certificate
	jwt            *jwtSigner
	serverName     func(*node) string // the name a router's certificate is checked against
	kill, start    func(testing.TB, *node)
	pause, resume  func(testing.TB, *node)
	cut, heal      func(testing.TB, *node) // nil where nodes cannot be cut off
	waitReady      func(testing.TB, ...*node) time.Duration
	logs           func(*node) string // everything the node logged, across restarts
}

func (e *chaosEnv) all() []*node {
	return append(append([]*node(nil), e.ctrls...), e.routers...)
}

func newChaosEnv(t *testing.T, backend string) *chaosEnv {
	switch backend {
	case "docker":
		d := startDockerCluster(t)
		return &chaosEnv{
			backend: backend, ctrls: d.ctrls, routers: d.routers, roots: d.roots, admin: d.admin, jwt: d.jwt,
			serverName: func(n *node) string { return n.name },
			kill:       d.kill, start: d.start, pause: d.pause, resume: d.resume, cut: d.cut, heal: d.heal,
			waitReady: d.waitReady,
			logs: func(n *node) string {
				out, err := dockerCmd(time.Minute, "logs", d.ids[n.name])
				if err != nil {
					t.Errorf("docker logs %s: %v", n.name, err)
				}
				return out
			},
		}
	case "process":
		c := startProcCluster(t)
		sig := func(s syscall.Signal) func(testing.TB, *node) {
			return func(t testing.TB, n *node) {
				if err := c.procs[n.name].signal(s); err != nil {
					t.Fatal(err)
				}
			}
		}
		return &chaosEnv{
			backend: backend, ctrls: c.ctrls, routers: c.routers, roots: c.roots, admin: c.admin, jwt: c.jwt,
			serverName: func(*node) string { return "" },
			kill: func(t testing.TB, n *node) {
				if err := c.procs[n.name].kill(); err != nil {
					t.Fatal(err)
				}
			},
			start: func(t testing.TB, n *node) {
				if err := c.procs[n.name].start(); err != nil {
					t.Fatal(err)
				}
			},
			pause: sig(syscall.SIGSTOP), resume: sig(syscall.SIGCONT),
			waitReady: c.waitReady,
			logs: func(n *node) string {
				b, err := os.ReadFile(c.procs[n.name].log)
				if err != nil {
					t.Error(err)
				}
				return string(b)
			},
		}
	}
	t.Fatalf("CERTMESH_E2E_CHAOS=%q: want docker or process", backend)
	return nil
}

// TestChaos keeps a steady load of logins, rotations and revocations on
// the cluster while it cuts nodes and a whole region off, pauses nodes,
// kills them with SIGKILL and restarts them, every controller at once
// included; then it checks that nothing acknowledged was lost, that no
// revoked certificate gets in, and that no dot was used twice. It logs the
// recovery time of each fault: from the heal until every node holds every
// write acknowledged before it, and until every node sees every other alive
// again.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no chaos test")
	}
	backend := os.Getenv("CERTMESH_E2E_CHAOS")
	if backend == "" {
		backend = "docker"
		if why := detectDocker(); why != "" {
			backend = "process"
			t.Logf("chaos on OS processes: %s", why)
		}
	}
	began := time.Now()
	e := newChaosEnv(t, backend)
	ctrlUS, ctrlEU, ctrlAP := e.ctrls[0], e.ctrls[1], e.ctrls[2]
	edgeUS, edgeEU, edgeAP := e.routers[0], e.routers[1], e.routers[2]

	ld := newLedger()
	w := &worker{env: e, ledger: ld, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	mon := newVVMonitor(e.all())
	stopLoad := w.run(4, 250*time.Millisecond) // about 4 operations a second
	stopMon := mon.run(500 * time.Millisecond)
	loadStopped := false
	defer func() {
		if !loadStopped {
			stopLoad()
			stopMon()
		}
	}()

	var recoveries []recovery
	hold := func(d time.Duration) { <-time.After(d) } // a fault's duration, under load
	phase := func(name string, d time.Duration, inject, healFn func()) {
		t.Helper()
		t.Logf("fault: %s for %v", name, d)
		inject()
		hold(d)
		healFn()
		healed := time.Now()
		target := vvMax(t, e.ctrls)
		rec := recovery{name: name, hold: d}
		if _, err := poll(convergeWithin, func() error { return covers(e.all(), target) }); err != nil {
			t.Fatalf("%s: not every write acknowledged before the heal on every node within %v: %v\nmembers as each node sees them:\n%s",
				name, convergeWithin, err, memberViews(e.all()))
		}
		rec.data = time.Since(healed)
		if _, err := poll(convergeWithin, func() error { return allAlive(e.all()) }); err != nil {
			t.Fatalf("%s: the mesh not whole again within %v: %v\nmembers as each node sees them:\n%s",
				name, convergeWithin, err, memberViews(e.all()))
		}
		rec.members = time.Since(healed)
		recoveries = append(recoveries, rec)
		t.Logf("healed %s: every write acknowledged before the heal on every node %v after it; every node sees the 5 others %v after it",
			name, rec.data.Round(time.Millisecond), rec.members.Round(time.Millisecond))
		// Every revocation acknowledged before the heal has reached every
		// router: none admits a revoked certificate.
		checkRevokedRefused(t, e, ld.revokedCerts(healed), 8)
	}

	hold(4 * time.Second) // warm up: sessions to rotate and revoke
	if e.cut != nil {
		phase("router edge-eu-west-1 cut off (docker network disconnect)", 6*time.Second,
			func() { e.cut(t, edgeEU) }, func() { e.heal(t, edgeEU) })
		phase("region ap-southeast cut off (its controller and router disconnected)", 8*time.Second,
			func() { e.cut(t, ctrlAP); e.cut(t, edgeAP) }, func() { e.heal(t, ctrlAP); e.heal(t, edgeAP) })
	}
	phase("controller ctrl-eu-west and router edge-us-east-1 paused", 6*time.Second,
		func() { e.pause(t, ctrlEU); e.pause(t, edgeUS) }, func() { e.resume(t, ctrlEU); e.resume(t, edgeUS) })
	phase("controller ctrl-us-east and router edge-ap-southeast-1 killed (SIGKILL), restarted", 3*time.Second,
		func() { e.kill(t, ctrlUS); e.kill(t, edgeAP) }, func() { e.start(t, ctrlUS); e.start(t, edgeAP) })

	// Every controller at once. The routers go on admitting and refusing
	// from the replicated state, a router restarted meanwhile too.
	phase("every controller killed (SIGKILL), and router edge-us-east-1 restarted meanwhile", 5*time.Second,
		func() {
			for _, c := range e.ctrls {
				e.kill(t, c)
			}
			e.kill(t, edgeUS)
			killed := time.Now()
			e.start(t, edgeUS)
			checkDuringOutage(t, e, ld, edgeUS, killed)
		},
		func() {
			for _, c := range e.ctrls {
				e.start(t, c)
			}
		})

	stopLoad()
	stopMon()
	loadStopped = true
	stopped := time.Now()
	target := vvMax(t, e.ctrls)
	waitFor(t, convergeWithin, "final convergence", func() error {
		if err := covers(e.all(), target); err != nil {
			return err
		}
		return converged(e.all(), nil)
	})
	t.Logf("load stopped; every node holds the same digest %v later", time.Since(stopped).Round(time.Millisecond))
	t.Logf("load: %s", ld.summary())

	checkLedger(t, e, ld)
	checkDotsOnce(t, e, ld)
	if err := mon.err(); err != nil {
		t.Error(err)
	}
	checkRevokedRefused(t, e, ld.revokedCerts(time.Now()), 0)
	checkLiveAdmitted(t, e, ld)
	checkRevocationStillCloses(t, e)

	var b strings.Builder
	fmt.Fprintf(&b, "recovery times on %s, from the heal until every node holds every write acknowledged before it (data) and sees every other alive (members):\n", backend)
	for _, r := range recoveries {
		fmt.Fprintf(&b, "  %-85s held %-4v data %-8v members %v\n", r.name, r.hold, r.data.Round(time.Millisecond), r.members.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "whole chaos test: %v", time.Since(began).Round(time.Millisecond))
	t.Log(b.String())
}

// recovery is how long the cluster took to recover from a fault, from the
// heal: until every node held every write acknowledged before it (data),
// and until every node saw every other alive (members).
type recovery struct {
	name                string
	hold, data, members time.Duration
}

// chaosSession is a session the load logged in, with every certificate a
// controller acknowledged for it.
type chaosSession struct {
	identity, id string
	certs        []*client.Session // oldest first
	busy         bool              // an operation on it is in flight
	over         bool              // revoked, or a revocation of it is in doubt: left alone
	// What an acknowledged revocation covers: every certificate (session
	// or identity revoked), or one serial.
	revokedAll    bool
	revokedSerial string
	revokedAt     time.Time // when the revocation was acknowledged
}

// ledger is what the API acknowledged, and what is in doubt: an attempt
// that failed after it was sent (timeout, connection lost, 5xx) may have
// been written.
type ledger struct {
	mu          sync.Mutex
	sessions    []*chaosSession
	acked       map[string]int // by op: login, rotate, revoke-session, revoke-serial, revoke-identity
	ambiguous   map[string]int // attempts that may or may not have been written, by op
	refused     map[string]int // attempts a controller refused (4xx): nothing written, by op
	unreachable map[string]int // attempts that never reached a controller, by op
	lastErr     map[string]string
	seq         int
}

func newLedger() *ledger {
	return &ledger{acked: map[string]int{}, ambiguous: map[string]int{}, refused: map[string]int{},
		unreachable: map[string]int{}, lastErr: map[string]string{}}
}

func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("acknowledged %v; in doubt %v; refused %v; controller unreachable %v; last errors %v",
		l.acked, l.ambiguous, l.refused, l.unreachable, l.lastErr)
}

// revoked reports the sessions whose revocation was acknowledged before t.
func (l *ledger) revokedCerts(before time.Time) []*client.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*client.Session
	for _, s := range l.sessions {
		if s.revokedAt.IsZero() || !s.revokedAt.Before(before) {
			continue
		}
		for _, c := range s.certs {
			if s.revokedAll || c.Serial == s.revokedSerial {
				out = append(out, c)
			}
		}
	}
	return out
}

// revokedAt returns when session id's revocation was acknowledged.
func (l *ledger) revokedAt(id string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		if s.id == id {
			return s.revokedAt
		}
	}
	return time.Time{}
}

// issuedBefore returns a certificate acknowledged before t of a session
// that is not revoked (nor in doubt), or nil. (A rotated-out certificate
// stays valid for the rotation grace, 5m, longer than the test.)
func (l *ledger) issuedBefore(t time.Time) *client.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sessions {
		if !s.over && s.certs[0].Issued.Before(t) {
			return s.certs[0]
		}
	}
	return nil
}

// live returns the newest certificate of up to n sessions that are not
// revoked (nor in doubt).
func (l *ledger) live(n int) []*client.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*client.Session
	for _, s := range l.sessions {
		if !s.over && len(out) < n {
			out = append(out, s.certs[len(s.certs)-1])
		}
	}
	return out
}

// failed sorts a failed attempt: refused (a 4xx answer), unreachable (no
// connection made), both with nothing written, or in doubt.
func (l *ledger) failed(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ae *client.APIError
	var oe *net.OpError
	switch {
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		l.refused[op]++
	case errors.As(err, &oe) && oe.Op == "dial":
		l.unreachable[op]++
	default:
		l.ambiguous[op]++
	}
	l.lastErr[op] = oneLine(err.Error())
}

// unsent reports whether a failed call never reached a controller.
func unsent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// worker runs the load: one operation per tick, on a few goroutines, each
// operation sent to the controllers one at a time in random order until one
// answers.
type worker struct {
	env    *chaosEnv
	ledger *ledger
	mu     sync.Mutex // guards rng
	rng    *rand.Rand
}

func (w *worker) intn(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.IntN(n)
}

// run starts the load and returns the function that stops it and waits
// for the operations in flight.
func (w *worker) run(workers int, every time.Duration) (stop func()) {
	ticks := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks {
				w.step()
			}
		}()
	}
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		defer close(ticks)
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				select {
				case ticks <- struct{}{}:
				default: // every worker busy (a controller is slow to fail): skip
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// controllersInOrder returns the controllers in random order.
func (w *worker) controllersInOrder() []*node {
	cs := append([]*node(nil), w.env.ctrls...)
	w.mu.Lock()
	w.rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	w.mu.Unlock()
	return cs
}

func (w *worker) step() {
	l := w.ledger
	l.mu.Lock()
	var idle []*chaosSession
	for _, s := range l.sessions {
		if !s.busy && !s.over {
			idle = append(idle, s)
		}
	}
	l.mu.Unlock()
	r := w.intn(100)
	switch {
	case len(idle) < 4 || r < 45:
		w.login()
	case r < 80:
		w.rotate(idle[w.intn(len(idle))])
	default:
		w.revoke(idle[w.intn(len(idle))])
	}
}

// claim marks s busy; false if another operation got it first.
func (l *ledger) claim(s *chaosSession) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.busy || s.over {
		return false
	}
	s.busy = true
	return true
}

func (w *worker) login() {
	l := w.ledger
	l.mu.Lock()
	l.seq++
	n := l.seq
	l.mu.Unlock()
	identity := fmt.Sprintf("user-%d", n%5)
	if n%5 == 0 {
		identity = fmt.Sprintf("doomed-%d", n) // may be revoked as an identity
	}
	for _, c := range w.controllersInOrder() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sess, err := client.Login(ctx, clientConfig(w.env.roots, c.api), w.env.jwt.mint(identity))
		cancel()
		if err != nil {
			l.failed("login", err)
			continue
		}
		l.mu.Lock()
		l.acked["login"]++
		// The identity the controller recorded: with more than one auth
		// entry it is namespaced by the entry (e2e:user-1).
		l.sessions = append(l.sessions, &chaosSession{identity: sess.Identity, id: sess.ID, certs: []*client.Session{sess}})
		l.mu.Unlock()
		return
	}
}

func (w *worker) rotate(s *chaosSession) {
	l := w.ledger
	if !l.claim(s) {
		return
	}
	defer func() {
		l.mu.Lock()
		s.busy = false
		l.mu.Unlock()
	}()
	cur := *s.certs[len(s.certs)-1]
	for _, c := range w.controllersInOrder() {
		cur.Controller = "https://" + c.api // this controller only
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		next, err := client.RotateSession(ctx, clientConfig(w.env.roots, c.api), &cur)
		cancel()
		if err != nil {
			l.failed("rotate", err) // a controller that has not heard of the session yet refuses it
			continue
		}
		l.mu.Lock()
		l.acked["rotate"]++
		s.certs = append(s.certs, next)
		l.mu.Unlock()
		return
	}
}

func (w *worker) revoke(s *chaosSession) {
	l := w.ledger
	if !l.claim(s) {
		return
	}
	latest := s.certs[len(s.certs)-1]
	var rv client.Revocation
	op := "revoke-session"
	switch r := w.intn(100); {
	case strings.Contains(s.identity, "doomed-") && r < 60:
		rv.Identity, op = s.identity, "revoke-identity"
	case r < 30:
		rv.Serial, op = latest.Serial, "revoke-serial"
	default:
		rv.SessionID = s.id
	}
	inDoubt := false
	for _, c := range w.controllersInOrder() {
		admin, err := client.NewAdmin(clientConfig(w.env.roots, c.api), w.env.admin)
		if err != nil {
			panic(err) // the config is valid
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = admin.Revoke(ctx, rv)
		cancel()
		admin.Close()
		if err != nil {
			var ae *client.APIError
			inDoubt = inDoubt || !unsent(err) && (!errors.As(err, &ae) || ae.Status >= 500)
			l.failed(op, err)
			continue
		}
		l.mu.Lock()
		l.acked[op]++
		s.busy, s.over = false, true
		s.revokedAll, s.revokedSerial, s.revokedAt = rv.Serial == "", rv.Serial, time.Now()
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	s.busy = false
	s.over = s.over || inDoubt // perhaps revoked: leave it out of every check
	l.mu.Unlock()
}

// memberViews tells, for each node, which members it sees alive.
func memberViews(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		st, err := status(n.metrics)
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", n.name, err)
			continue
		}
		var alive []string
		for _, m := range st.Members {
			if m.State == "alive" {
				alive = append(alive, m.Name)
			}
		}
		sort.Strings(alive)
		fmt.Fprintf(&b, "  %s sees alive: %s\n", n.name, strings.Join(alive, " "))
	}
	return b.String()
}

// vvMax returns the element-wise maximum of the controllers' version
// vectors: every write they acknowledged so far. It waits for each to
// answer (a restarted one may still be starting).
func vvMax(t testing.TB, ctrls []*node) map[string]uint64 {
	t.Helper()
	out := make(map[string]uint64)
	for _, c := range ctrls {
		waitFor(t, readyWithin, c.name+" /v1/status", func() error {
			st, err := status(c.metrics)
			if err != nil {
				return err
			}
			for a, s := range st.VersionVector {
				out[a] = max(out[a], s)
			}
			return nil
		})
	}
	return out
}

// allAlive checks that every node sees every node alive.
func allAlive(nodes []*node) error {
	var errs []error
	for _, n := range nodes {
		st, err := status(n.metrics)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
		} else if a := aliveMembers(st); a < len(nodes) {
			errs = append(errs, fmt.Errorf("%s sees %d of %d members alive", n.name, a, len(nodes)))
		}
	}
	return errors.Join(errs...)
}

// covers checks that every node's version vector covers want.
func covers(nodes []*node, want map[string]uint64) error {
	var errs []error
	for _, n := range nodes {
		st, err := status(n.metrics)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
			continue
		}
		for a, s := range want {
			if st.VersionVector[a] < s {
				errs = append(errs, fmt.Errorf("%s holds %s up to %d of %d", n.name, a, st.VersionVector[a], s))
			}
		}
	}
	return errors.Join(errs...)
}

// vvMonitor samples every node's version vector and remembers the highest
// seq seen of each author: seeing a lower one later anywhere would mean an
// author went back, which is how a dot gets reused.
type vvMonitor struct {
	nodes []*node
	mu    sync.Mutex
	high  map[string]uint64 // by author
	errs  []error
}

func newVVMonitor(nodes []*node) *vvMonitor {
	return &vvMonitor{nodes: nodes, high: make(map[string]uint64)}
}

func (m *vvMonitor) run(every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				m.sample()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (m *vvMonitor) sample() {
	// A controller's own author, as it reports it, never goes back: it
	// persists its writes before acknowledging them. (Another author's
	// seq may, at a node restarted from older state.)
	for _, n := range m.nodes {
		if n.role != "controller" {
			continue
		}
		st, err := status(n.metrics)
		if err != nil {
			continue // cut off, paused or killed
		}
		m.mu.Lock()
		for a, s := range st.VersionVector {
			if !strings.HasPrefix(a, n.name+"#") {
				continue
			}
			if s < m.high[a] {
				m.errs = append(m.errs, fmt.Errorf("%s reports its own author %s at seq %d, after %d", n.name, a, s, m.high[a]))
			}
			m.high[a] = max(m.high[a], s)
		}
		m.mu.Unlock()
	}
}

func (m *vvMonitor) err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(m.errs...)
}

// checkRevokedRefused connects with revoked certificates through every
// router: each must be refused. n > 0 checks only the n newest.
func checkRevokedRefused(t testing.TB, e *chaosEnv, certs []*client.Session, n int) {
	t.Helper()
	if n > 0 && len(certs) > n {
		certs = certs[len(certs)-n:]
	}
	for _, r := range e.routers {
		for _, c := range certs {
			if err := refused(e.roots, c, r.listen, e.serverName(r)); err != nil {
				t.Errorf("revoked certificate: %v", err)
			}
		}
	}
}

// checkDuringOutage runs with every controller down: the routers still
// admit a live certificate and refuse revoked ones. The router restarted
// meanwhile has only its snapshot (its seeds, the controllers, are down):
// it must admit from it at once (a certificate older than the snapshot
// interval, 10s) and not forget any revocation (docs/deploy.md).
func checkDuringOutage(t testing.TB, e *chaosEnv, ld *ledger, restarted *node, killed time.Time) {
	t.Helper()
	old := ld.issuedBefore(time.Now().Add(-15 * time.Second))
	revoked := ld.revokedCerts(time.Now())
	if old == nil || len(revoked) == 0 {
		t.Fatalf("no live certificate older than 15s or no revoked one to try (%s)", ld.summary())
	}
	live := []*client.Session{old}
	waitFor(t, readyWithin, restarted.name+" ready with every controller down", func() error {
		_, err := httpGet("http://" + restarted.metrics + "/readyz")
		return err
	})
	admitted := 0
	for _, r := range e.routers {
		if c, err := connect(e.roots, live[0], r.listen, e.serverName(r)); err != nil {
			t.Errorf("every controller down: %s refuses live certificate %s: %v", r.name, live[0].Serial, err)
		} else {
			c.Close()
		}
		for _, c := range revoked {
			if err := refused(e.roots, c, r.listen, e.serverName(r)); err != nil {
				admitted++
				t.Errorf("every controller down: %s: revoked certificate (revocation acknowledged %v before %s was killed): %v",
					r.name, killed.Sub(ld.revokedAt(c.ID)).Round(time.Millisecond), restarted.name, err)
			}
		}
	}
	t.Logf("every controller down: the routers (%s restarted) tried with a live certificate and %d revoked ones each; %d revoked ones not refused",
		restarted.name, len(revoked), admitted)
}

// checkLedger asks every controller for the sessions of every identity the
// load used: each acknowledged login and rotation is there, each
// acknowledged revocation in force; and the record counts are those
// acknowledged, give or take the writes in doubt.
func checkLedger(t testing.TB, e *chaosEnv, ld *ledger) {
	t.Helper()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	byIdentity := make(map[string][]*chaosSession)
	for _, s := range ld.sessions {
		byIdentity[s.identity] = append(byIdentity[s.identity], s)
	}
	hc := adminHTTP(e.roots, e.admin)
	defer hc.CloseIdleConnections()
	checked := 0
	for _, c := range e.ctrls {
		for _, identity := range sortedKeys(byIdentity) {
			var got []sessionInfo
			waitFor(t, 10*time.Second, "GET /v1/sessions at "+c.name, func() (err error) {
				got, err = listSessions(hc, c.api, identity) // 429 past the rate limit's burst: again
				return err
			})
			have := make(map[string]sessionInfo)
			for _, g := range got {
				have[g.SessionID] = g
			}
			for _, s := range byIdentity[identity] {
				g, ok := have[s.id]
				if !ok {
					t.Errorf("%s: acknowledged session %s of %s missing", c.name, s.id, identity)
					continue
				}
				serials := make(map[string]string)
				for _, gc := range g.Certificates {
					serials[gc.Serial] = gc.Status
				}
				for _, cert := range s.certs {
					st, ok := serials[cert.Serial]
					switch {
					case !ok:
						t.Errorf("%s: acknowledged certificate %s of session %s missing", c.name, cert.Serial, s.id)
					case (s.revokedAll || cert.Serial == s.revokedSerial) && st == "active":
						t.Errorf("%s: certificate %s of session %s is active after its acknowledged revocation", c.name, cert.Serial, s.id)
					}
					checked++
				}
				if s.revokedAll && g.Status == "active" {
					t.Errorf("%s: session %s is active after its acknowledged revocation", c.name, s.id)
				}
			}
		}
	}
	revs := ld.acked["revoke-session"] + ld.acked["revoke-serial"] + ld.acked["revoke-identity"]
	revsInDoubt := ld.ambiguous["revoke-session"] + ld.ambiguous["revoke-serial"] + ld.ambiguous["revoke-identity"]
	bounds := map[string][2]int{
		"session":    {ld.acked["login"], ld.acked["login"] + ld.ambiguous["login"]},
		"cert":       {ld.acked["login"] + ld.acked["rotate"], ld.acked["login"] + ld.acked["rotate"] + ld.ambiguous["login"] + ld.ambiguous["rotate"]},
		"revocation": {revs, revs + revsInDoubt},
	}
	for _, n := range e.all() {
		st, err := status(n.metrics)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{
			"session": st.Records["session"], "cert": st.Records["cert"],
			"revocation": st.Records["revocation"] + st.Records["identity_revocation"],
		}
		for k, b := range bounds {
			if got[k] < b[0] || got[k] > b[1] {
				t.Errorf("%s holds %d %s records; acknowledged %d, at most %d with those in doubt", n.name, got[k], k, b[0], b[1])
			}
		}
	}
	t.Logf("%d acknowledged certificates of %d sessions found on each of the %d controllers, in the state acknowledged",
		checked/len(e.ctrls), len(ld.sessions), len(e.ctrls))
}

// auditDots matches the dots of a controller's audit log line.
var (
	auditLine = regexp.MustCompile(`msg=audit .*\bdots=(\S+)`)
	dotRange  = regexp.MustCompile(`^(\S+#[0-9a-f]{16}):(\d+)(?:-(\d+))?$`)
)

// checkDotsOnce reads every controller's audit log, across its restarts:
// no dot appears in two writes, and together with the signer records they
// are exactly the records every node holds. Every node's version vector
// adds up to its records, and there are three authors: each controller
// kept its incarnation through its SIGKILLs.
func checkDotsOnce(t testing.TB, e *chaosEnv, ld *ledger) {
	t.Helper()
	seen := make(map[string]string) // dot -> the audit line
	writes := 0
	for _, c := range e.ctrls {
		for _, line := range strings.Split(e.logs(c), "\n") {
			m := auditLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			d := dotRange.FindStringSubmatch(m[1])
			if d == nil {
				t.Errorf("%s: audit line with dots %q", c.name, m[1])
				continue
			}
			from, _ := strconv.ParseUint(d[2], 10, 64)
			to := from
			if d[3] != "" {
				to, _ = strconv.ParseUint(d[3], 10, 64)
			}
			writes++
			for s := from; s <= to; s++ {
				dot := fmt.Sprintf("%s:%d", d[1], s)
				if prev, dup := seen[dot]; dup {
					t.Errorf("dot %s used twice:\n  %s\n  %s", dot, prev, line)
				}
				seen[dot] = line
			}
		}
	}
	st, err := status(e.ctrls[0].metrics)
	if err != nil {
		t.Fatal(err)
	}
	// A controller killed between a commit and its audit line leaves a
	// record without a line; only a write in doubt can be one.
	unaudited := total(st.Records) - st.Records["signer"] - len(seen)
	ld.mu.Lock()
	inDoubt := total(ld.ambiguous)
	ld.mu.Unlock()
	if unaudited < 0 || unaudited > 2*inDoubt {
		t.Errorf("%s holds %d records: %d signer records, %d dots in the audit logs, %d writes in doubt", e.ctrls[0].name,
			total(st.Records), st.Records["signer"], len(seen), inDoubt)
	}
	if len(st.VersionVector) != len(e.ctrls) {
		t.Errorf("authors %v: want one per controller, each keeping its incarnation through restarts", sortedKeys(st.VersionVector))
	}
	if err := checkDots(e.all()); err != nil {
		t.Error(err)
	}
	t.Logf("%d writes in the audit logs, %d dots, none twice; authors %v", writes, len(seen), sortedKeys(st.VersionVector))
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkLiveAdmitted connects with live certificates through every router.
func checkLiveAdmitted(t testing.TB, e *chaosEnv, ld *ledger) {
	t.Helper()
	live := ld.live(5)
	for _, r := range e.routers {
		for _, s := range live {
			c, err := connect(e.roots, s, r.listen, e.serverName(r))
			if err != nil {
				t.Errorf("live certificate %s of session %s through %s: %v", s.Serial, s.ID, r.name, err)
				continue
			}
			c.Close()
		}
	}
}

// checkRevocationStillCloses logs in after the chaos, connects through
// every router and revokes: every connection closes.
func checkRevocationStillCloses(t testing.TB, e *chaosEnv) {
	t.Helper()
	cfg := clientConfig(e.roots, e.ctrls[0].api)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := client.Login(ctx, cfg, e.jwt.mint("after-chaos"))
	if err != nil {
		t.Fatal(err)
	}
	var conns []*liveConn
	for _, r := range e.routers {
		c, err := connect(e.roots, sess, r.listen, e.serverName(r))
		if err != nil {
			t.Fatalf("after the chaos, connect through %s: %v", r.name, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	admin, err := client.NewAdmin(clientConfig(e.roots, e.ctrls[2].api), e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	revoking := time.Now()
	if _, err := admin.Revoke(ctx, client.Revocation{SessionID: sess.ID}); err != nil {
		t.Fatal(err)
	}
	var took []string
	for i, c := range conns {
		if _, err := c.waitClosed(closeWithin); err != nil {
			t.Errorf("after the chaos, the live connection through %s after its revocation: %v", e.routers[i].name, err)
		}
		took = append(took, fmt.Sprintf("%s %v", e.routers[i].name, time.Since(revoking).Round(time.Millisecond)))
	}
	sort.Strings(took)
	t.Logf("after the chaos: login, a connection through every router, revocation: closed within %s", strings.Join(took, ", "))
}
