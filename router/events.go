package router

import (
	"crypto/x509"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// onApplied is the mesh subscription: it queues the batch for the event
// loop and returns at once.
func (r *Router) onApplied(applied []crdt.Record) {
	if len(applied) == 0 {
		return
	}
	r.eventsMu.Lock()
	r.events = append(r.events, applied)
	r.eventsMu.Unlock()
	select {
	case r.eventsWake <- struct{}{}:
	default:
	}
}

// eventLoop enforces applied records: revocations close what they cover,
// session records arm expiry timers, certificate and session records wake
// pulls, signer records extend the known intermediates.
func (r *Router) eventLoop() {
	defer r.loops.Done()
	for {
		select {
		case <-r.eventsWake:
		case <-r.eventsStop:
			return
		}
		r.eventsMu.Lock()
		batches := r.events
		r.events = nil
		r.eventsMu.Unlock()
		for _, b := range batches {
			r.apply(b)
		}
	}
}

// apply handles one batch of applied records.
func (r *Router) apply(recs []crdt.Record) {
	var candidates []*liveConn
	var sessions []crdt.SessionID
	for _, rec := range recs {
		switch rec := rec.(type) {
		case *crdt.RevocationRecord:
			if rec.Target == crdt.RevokeSession {
				candidates, _ = r.reg.session(rec.Session, candidates)
			} else {
				candidates = r.reg.serial(rec.Serial, candidates)
			}
		case *crdt.IdentityRevocationRecord:
			candidates = r.reg.identity(rec.Identity, candidates)
		case *crdt.SignerRecord:
			if rec.Revoked {
				candidates = r.reg.issuer(rec.Controller, candidates)
			} else {
				r.addSigner(rec)
			}
		case *crdt.SessionRecord:
			r.waits.wakeSession(rec.ID)
			if r.reg.hasSession(rec.ID) {
				// Admitted before the session was known (verified
				// mode): its expiry applies now.
				sessions = append(sessions, rec.ID)
				candidates, _ = r.reg.session(rec.ID, candidates)
			}
		case *crdt.CertRecord:
			r.waits.wakeSerial(rec.Serial)
		}
	}
	if len(candidates) > 0 {
		r.enforce(candidates, stays)
	}
	if access := r.accessCandidates(recs); len(access) > 0 {
		r.enforce(access, stillGranted)
	}
	// After enforcing, which must not wait for the disk.
	if err := r.journal.append(recs); err != nil {
		r.log.Error("router: revocation journal", "err", err)
	}
	if r.testAfterApply != nil {
		r.testAfterApply(recs)
	}
	if len(sessions) > 0 {
		now := crdt.MillisOf(r.clock.Now())
		for _, id := range sessions {
			var expires crdt.Millis
			r.mesh.View(func(s *crdt.Store) {
				expires, _ = s.SessionExpires(id)
			})
			if expires != 0 {
				r.reg.armExpiry(id, expires, now, r.clock, r.expire)
			}
		}
	}
}

// enforce closes every candidate that may no longer stay up, by judge
// (stays: the store's rule for revocations and expiry, Stays; stillGranted:
// the access policies), which returns the reason to close or "". The
// verdicts are read in one pass under the mesh's lock and the sockets
// closed after it is released.
func (r *Router) enforce(candidates []*liveConn, judge func(*crdt.Store, *liveConn, crdt.Millis) string) {
	type victim struct {
		c      *liveConn
		reason string
	}
	var victims []victim
	now := crdt.MillisOf(r.clock.Now())
	r.mesh.View(func(s *crdt.Store) {
		for _, c := range candidates {
			if reason := judge(s, c, now); reason != "" {
				victims = append(victims, victim{c, reason})
			}
		}
	})
	if len(victims) == 0 {
		return
	}
	// Every client first, then the wake-ups: see liveConn.shut. Each
	// shutdown is a system call that runs the peer's side of loopback
	// TCP too, so many are spread over the CPUs.
	start := time.Now()
	var killed atomic.Int64
	parallel(len(victims), func(i int) {
		if victims[i].c.shut(victims[i].reason) {
			killed.Add(1)
		}
	})
	shut := time.Since(start)
	if r.testAfterShut != nil {
		r.testAfterShut(len(victims))
	}
	parallel(len(victims), func(i int) { victims[i].c.release() })
	r.log.Info("router: closed live connections", "count", killed.Load(), "reason", victims[0].reason,
		"shut", shut, "took", time.Since(start))
}

// parallelMin is the batch below which parallel runs inline: a goroutine
// costs more than a few system calls.
const parallelMin = 64

// parallel calls fn(0..n-1) over up to GOMAXPROCS goroutines and returns
// when all calls have.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// expire is a session's expiry timer.
func (r *Router) expire(id crdt.SessionID) {
	if r.stopping.Load() {
		return
	}
	conns, expires := r.reg.session(id, nil)
	if len(conns) == 0 {
		return
	}
	// The store has the last word: an extension (session.bind_to_token)
	// applied just as the timer fired has not reached the registry yet.
	r.mesh.View(func(s *crdt.Store) {
		if end, ok := s.SessionExpires(id); ok {
			expires = max(expires, end)
		}
	})
	now := crdt.MillisOf(r.clock.Now())
	if now < expires {
		r.reg.rearm(id, expires, now, r.clock, r.expire)
		return
	}
	r.enforce(conns, stays)
}

// loadSigners reads the intermediates of every active signer record in
// the store.
func (r *Router) loadSigners() {
	var recs []*crdt.SignerRecord
	r.mesh.View(func(s *crdt.Store) {
		s.Range(func(rec crdt.Record) bool {
			if sr, ok := rec.(*crdt.SignerRecord); ok && !sr.Revoked {
				recs = append(recs, sr)
			}
			return true
		})
	})
	for _, sr := range recs {
		r.addSigner(sr)
	}
}

// signerPool is the set of controller intermediates known from signer
// records, for clients that send their leaf alone. Immutable once stored.
type signerPool struct {
	certs map[[32]byte]*x509.Certificate
	pool  *x509.CertPool
}

func (r *Router) addSigner(rec *crdt.SignerRecord) {
	old := r.signers.Load()
	if _, ok := old.certs[rec.KeyID]; ok {
		return
	}
	cert, err := x509.ParseCertificate(rec.Cert)
	if err != nil || !cert.IsCA {
		r.log.Warn("router: signer record without a usable CA certificate", "controller", rec.Controller)
		return
	}
	next := &signerPool{certs: make(map[[32]byte]*x509.Certificate, len(old.certs)+1), pool: x509.NewCertPool()}
	for k, c := range old.certs {
		next.certs[k] = c
		next.pool.AddCert(c)
	}
	next.certs[rec.KeyID] = cert
	next.pool.AddCert(cert)
	r.signers.Store(next)
}

// waiters wakes pulls in progress when the records they wait for arrive.
type waiters struct {
	mu        sync.Mutex
	bySerial  map[crdt.Serial]map[chan struct{}]struct{}
	bySession map[crdt.SessionID]map[chan struct{}]struct{}
}

func (w *waiters) init() {
	w.bySerial = make(map[crdt.Serial]map[chan struct{}]struct{})
	w.bySession = make(map[crdt.SessionID]map[chan struct{}]struct{})
}

// add returns a channel that receives when a record of serial or session
// is applied, and the function that stops waiting.
func (w *waiters) add(serial crdt.Serial, session crdt.SessionID) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	addWaiter(w.bySerial, serial, ch)
	addWaiter(w.bySession, session, ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		removeWaiter(w.bySerial, serial, ch)
		removeWaiter(w.bySession, session, ch)
		w.mu.Unlock()
	}
}

func addWaiter[K comparable](m map[K]map[chan struct{}]struct{}, k K, ch chan struct{}) {
	s := m[k]
	if s == nil {
		s = make(map[chan struct{}]struct{})
		m[k] = s
	}
	s[ch] = struct{}{}
}

func removeWaiter[K comparable](m map[K]map[chan struct{}]struct{}, k K, ch chan struct{}) {
	if s := m[k]; s != nil {
		delete(s, ch)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

func wake(s map[chan struct{}]struct{}) {
	for ch := range s {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *waiters) wakeSerial(s crdt.Serial) {
	w.mu.Lock()
	wake(w.bySerial[s])
	w.mu.Unlock()
}

func (w *waiters) wakeSession(id crdt.SessionID) {
	w.mu.Lock()
	wake(w.bySession[id])
	w.mu.Unlock()
}
