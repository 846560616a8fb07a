package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// maxPeerCerts caps the certificates a client may send; a real chain is a
// leaf and its intermediate (a leaf may be repeated).
const maxPeerCerts = 8

// Credentials are the key material a router serves with; SetCredentials
// replaces them (SIGHUP).
type Credentials struct {
	// Roots are the root CA certificates client chains must end in
	// (ca.pem).
	Roots []*x509.Certificate
	// Cert is the router's TLS server certificate and key.
	Cert tls.Certificate
}

type credentials struct {
	roots *x509.CertPool
	cert  *tls.Certificate
}

// compile checks the credentials of router name in trustDomain: the
// server certificate must be that router's leaf, issued by the root
// (pki.CheckNodeCert, as controllers check theirs), so a router never
// serves under another router's name or a controller's.
func (c Credentials) compile(name, trustDomain string, now time.Time) (*credentials, error) {
	if len(c.Roots) == 0 {
		return nil, errors.New("router: no root CA certificate")
	}
	if len(c.Cert.Certificate) == 0 || c.Cert.PrivateKey == nil {
		return nil, errors.New("router: no server certificate")
	}
	pool := x509.NewCertPool()
	for _, r := range c.Roots {
		pool.AddCert(r)
	}
	leaf := c.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("router: server certificate: %w", err)
		}
	}
	want := pki.SPIFFEID{TrustDomain: trustDomain, Kind: pki.KindRouter, Name: name}
	if _, err := pki.CheckNodeCert("the server certificate", leaf, pool, want, now); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	cert := c.Cert
	cert.Leaf = leaf
	return &credentials{roots: pool, cert: &cert}, nil
}

// Options are the router's collaborators; every field is optional.
type Options struct {
	Logger *slog.Logger
	Clock  Clock
	// Metrics receives the router's series; nil makes a private set.
	Metrics *metrics.Set
	// MetricsWriters write more series on /metrics after the router's
	// (the mesh's, the process's).
	MetricsWriters []func(io.Writer)
	// Members lists the mesh's members for /v1/status.
	Members func() []api.MemberStatus
	// Listener and MetricsListener, when set, are the client and metrics
	// listeners, already bound to Config.Listen and Config.MetricsListen:
	// a caller binds them before it joins the mesh, so that a taken port
	// fails before any member hears of the router. Start binds them
	// otherwise. The router owns them once New has returned it.
	Listener, MetricsListener net.Listener
}

// Router admits client connections from the replicated state and proxies
// them to the upstream. See the package doc.
type Router struct {
	cfg   Config
	mesh  Mesh
	log   *slog.Logger
	clock Clock
	opts  Options
	m     *routerMetrics

	creds   atomic.Pointer[credentials]
	signers atomic.Pointer[signerPool]
	reg     *registry
	waits   waiters
	// pending holds the connections in their TLS handshake; admissions
	// is a semaphore of MaxAdmissions slots for those past it.
	pending    *pendingPool
	admissions chan struct{}

	ctx    context.Context // cancelled by Shutdown: stops accepting and pulling
	cancel context.CancelFunc

	// events carries applied record batches from the mesh to the event
	// loop; guarded by eventsMu, signalled on eventsWake.
	eventsMu   sync.Mutex
	events     [][]crdt.Record
	eventsWake chan struct{}
	eventsStop chan struct{}

	mu          sync.Mutex // guards the fields below
	ln          net.Listener
	httpLn      net.Listener
	httpSrv     *http.Server
	unsubscribe func()
	started     bool
	stopping    atomic.Bool

	loops      sync.WaitGroup // event and snapshot loops, HTTP server
	acceptDone chan struct{}  // closed when the accept loop exits
	handlers   sync.WaitGroup // one per accepted connection

	// testAfterShut, set by tests before Start, is called by the event
	// loop once every victim of a revocation has been sent its FIN.
	testAfterShut func(victims int)
	// testAfterApply, set by tests before Start, is called by the event
	// loop once a batch of applied records is enforced and journaled.
	testAfterApply func(recs []crdt.Record)

	journal    *journal   // revocations since the last snapshot; nil without a data directory
	snapMu     sync.Mutex // serialises snapshot writes
	snapDigest uint64     // digest of the last snapshot written; guarded by snapMu
	snapWrote  bool       // guarded by snapMu
}

// New returns a router over mesh. The router owns mesh from now on:
// Shutdown leaves it. Call Start to serve.
func New(cfg Config, mesh Mesh, creds Credentials, opts Options) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if mesh == nil {
		return nil, errors.New("router: nil mesh")
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	c, err := creds.compile(cfg.Name, cfg.TrustDomain, opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	r := &Router{
		cfg:        cfg,
		mesh:       mesh,
		log:        opts.Logger.With("node", cfg.Name),
		clock:      opts.Clock,
		opts:       opts,
		reg:        newRegistry(),
		pending:    newPendingPool(cfg.MaxPending, cfg.MaxPendingPerSource),
		admissions: make(chan struct{}, cfg.MaxAdmissions),
		eventsWake: make(chan struct{}, 1),
		eventsStop: make(chan struct{}),
		acceptDone: make(chan struct{}),
	}
	r.waits.init()
	r.m = newRouterMetrics(opts.Metrics, func() float64 { return float64(r.reg.active.Load()) },
		func() float64 { return float64(r.pending.len()) })
	r.creds.Store(c)
	r.signers.Store(&signerPool{certs: map[[32]byte]*x509.Certificate{}})
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// SetCredentials replaces the root CAs and the server certificate; new
// handshakes use them, live connections are not touched.
func (r *Router) SetCredentials(creds Credentials) error {
	c, err := creds.compile(r.cfg.Name, r.cfg.TrustDomain, r.clock.Now())
	if err != nil {
		return err
	}
	r.creds.Store(c)
	return nil
}

// Start subscribes to the mesh, opens the listeners and serves until
// Shutdown.
func (r *Router) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("router: already started")
	}
	if r.cfg.DataDir != "" {
		j, err := openJournal(r.cfg.DataDir)
		if err != nil {
			closeListener(r.opts.Listener)
			closeListener(r.opts.MetricsListener)
			return err
		}
		r.journal = j
	}
	// Subscribe before reading the signers, so none falls between.
	r.unsubscribe = r.mesh.Subscribe(r.onApplied)
	r.loadSigners()

	ln, hl := r.opts.Listener, r.opts.MetricsListener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", r.cfg.Listen); err != nil {
			r.unsubscribe()
			r.journal.close()
			closeListener(hl)
			return fmt.Errorf("router: listen %s: %w", r.cfg.Listen, err)
		}
	}
	r.ln = ln
	if hl == nil && r.cfg.MetricsListen != "" {
		var err error
		if hl, err = net.Listen("tcp", r.cfg.MetricsListen); err != nil {
			ln.Close()
			r.unsubscribe()
			r.journal.close()
			return fmt.Errorf("router: metrics listen %s: %w", r.cfg.MetricsListen, err)
		}
	}
	if hl != nil {
		r.httpLn = hl
		r.httpSrv = &http.Server{Handler: r.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
		r.loops.Add(1)
		go func() {
			defer r.loops.Done()
			if err := r.httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("router: metrics server", "err", err)
			}
		}()
	}
	r.started = true
	r.loops.Add(1)
	go r.eventLoop()
	go r.acceptLoop()
	if r.cfg.DataDir != "" {
		r.loops.Add(1)
		go r.snapshotLoop()
	}
	r.log.Info("router: serving", "listen", ln.Addr().String(), "upstream", r.cfg.Upstream,
		"mode", r.cfg.Mode.String(), "pull_timeout", r.cfg.PullTimeout)
	return nil
}

func closeListener(l net.Listener) {
	if l != nil {
		l.Close()
	}
}

// Addr is the client listener's address, once started.
func (r *Router) Addr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return nil
	}
	return r.ln.Addr()
}

// MetricsAddr is the metrics listener's address, once started.
func (r *Router) MetricsAddr() net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.httpLn == nil {
		return nil
	}
	return r.httpLn.Addr()
}

// Active is the number of live connections.
func (r *Router) Active() int { return int(r.reg.active.Load()) }

// Ready reports whether Readiness is nil.
func (r *Router) Ready() bool { return r.Readiness() == nil }

// Readiness says why the router cannot admit correctly now, or nil
// (docs/deploy.md, "Health checks for load balancers"): it serves, and its
// mesh is ready, which for a router means it holds state to admit from
// (its snapshot, or an exchange with a controller completed) and its seeds
// do not refuse its gossip key (mesh.Mesh.Readiness).
func (r *Router) Readiness() error {
	r.mu.Lock()
	up := r.started
	r.mu.Unlock()
	if !up || r.stopping.Load() {
		return errors.New("starting or stopping: the client listener is not serving")
	}
	if m, ok := r.mesh.(interface{ Readiness() error }); ok {
		return m.Readiness()
	}
	if !r.mesh.Ready() {
		return errors.New("the mesh is not ready")
	}
	return nil
}

// Shutdown stops accepting, writes a last snapshot, leaves the mesh, and
// drains: live connections get DrainTimeout (or until ctx is done) to
// finish, then are closed. It returns once every goroutine it owns has
// exited.
func (r *Router) Shutdown(ctx context.Context) error {
	if !r.stopping.CompareAndSwap(false, true) {
		return errors.New("router: already shut down")
	}
	r.mu.Lock()
	started := r.started
	ln, httpSrv, unsubscribe := r.ln, r.httpSrv, r.unsubscribe
	r.mu.Unlock()
	r.cancel() // no new connections, pulls in progress give up
	var errs []error
	if ln != nil {
		ln.Close()
	}
	if !started { // listeners handed to New and never served
		closeListener(r.opts.Listener)
		closeListener(r.opts.MetricsListener)
	}
	// Wait for the accept loop before draining, so no handler is added
	// after the wait starts; handshakes in progress end quickly now.
	if started {
		<-r.acceptDone
	}
	if started && r.cfg.DataDir != "" {
		if err := r.SaveSnapshot(); err != nil {
			errs = append(errs, err)
		}
	}
	if unsubscribe != nil {
		unsubscribe()
	}
	if err := r.mesh.Close(); err != nil {
		errs = append(errs, fmt.Errorf("router: leave mesh: %w", err))
	}
	r.drain(ctx)
	close(r.eventsStop)
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
	}
	r.loops.Wait()
	if err := r.journal.close(); err != nil {
		errs = append(errs, fmt.Errorf("router: journal: %w", err))
	}
	r.log.Info("router: stopped")
	return errors.Join(errs...)
}

// drain waits for live connections to end, until DrainTimeout or ctx, then
// closes the rest.
func (r *Router) drain(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		r.handlers.Wait()
		close(done)
	}()
	n := r.Active()
	if n > 0 {
		r.log.Info("router: draining", "connections", n, "timeout", r.cfg.DrainTimeout)
	}
	t := time.NewTimer(r.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	for _, c := range r.reg.snapshot() {
		c.kill(closeShutdown)
	}
	<-done
}

// acceptLoop accepts connections for as long as the router serves. It
// never waits for a slot: a new connection goes into the pending pool,
// which sheds the oldest unproven ones when full (pendingPool), so
// connections that send nothing cannot keep others out.
func (r *Router) acceptLoop() {
	defer close(r.acceptDone)
	var backoff time.Duration
	for {
		raw, err := r.ln.Accept()
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.log.Warn("router: accept", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		pc, bySource, byPending := r.pending.add(raw)
		if bySource+byPending > 0 {
			r.m.shed(shedSource).Add(bySource)
			r.m.shed(shedPending).Add(byPending)
			r.log.Debug("router: pending handshakes shed", "source", pc.src, "by_source", bySource, "by_pending", byPending)
		}
		r.handlers.Add(1)
		go r.handle(raw, pc)
	}
}

// handshake is the state of one connection until it is admitted.
type handshake struct {
	remote string
	// secret is the connection's server traffic secret, kept to send a
	// refusal's alert after the handshake (see alert.go).
	secret trafficSecret
	// Set by checkChain, which runs inside the handshake: the facts of a
	// verified chain, or why the chain was refused.
	facts     crdt.CertFacts
	refused   string
	refuseErr error
	// serverName is the ClientHello's SNI, which names the service.
	serverName string
}

// tlsConfig returns the TLS configuration of one handshake: TLS 1.3 only,
// a client certificate required, its chain checked by checkChain (against
// the roots, with the intermediates it sent and those known from signer
// records). Session resumption is off, so every connection is admitted
// afresh.
func (r *Router) tlsConfig(hs *handshake) *tls.Config {
	return pki.HardenTLS(&tls.Config{
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.creds.Load().cert, nil
		},
		VerifyConnection:       func(cs tls.ConnectionState) error { return r.checkChain(hs, cs) },
		SessionTicketsDisabled: true,
		KeyLogWriter:           &hs.secret,
	})
}

// handle runs one connection: the TLS handshake, then admission, then the
// proxy.
//
// Ordering contract: nothing that costs the control plane or speaks in a
// certificate owner's name (a pull to controllers, a decision against the
// replicated state, a log line or metric naming the identity) happens
// before HandshakeContext has returned, that is before crypto/tls has
// checked the client's CertificateVerify: Go's TLS 1.3 server calls
// VerifyConnection before it reads that message, so inside the handshake a
// client has shown a certificate, which anyone may copy, not that it holds
// the key. checkChain, which runs there, is stateless and names no one.
//
// Until the handshake is done the connection is in the pending pool, which
// may close it for newer ones, and each of the client's flights has
// FlightTimeout (sockets run on the wall clock).
func (r *Router) handle(raw net.Conn, pc *pendingConn) {
	defer r.handlers.Done()
	hs := &handshake{remote: raw.RemoteAddr().String()}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	raw.SetDeadline(time.Now().Add(r.cfg.FlightTimeout)) // the ClientHello
	cfg := r.tlsConfig(hs)
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		hs.serverName = hello.ServerName
		raw.SetDeadline(time.Now().Add(r.cfg.FlightTimeout)) // the router's flight, then the client's second
		return nil, nil
	}
	tc := tls.Server(raw, cfg)
	err := tc.HandshakeContext(ctx)
	r.pending.remove(pc)
	if err != nil {
		if hs.refused != "" {
			// crypto/tls sent the alert. The chain is all that was
			// checked and no key was proven: the line names no one.
			r.m.admission(hs.refused).Inc()
			r.log.Info("router: refused", "remote", hs.remote, "reason", hs.refused, "err", hs.refuseErr)
		} else {
			// No client certificate, a bad CertificateVerify, a
			// client that went away.
			r.m.admission(reasonHandshakeFailed).Inc()
			r.log.Debug("router: handshake failed", "remote", hs.remote, "err", err)
		}
		raw.Close()
		return
	}
	// The client holds the key of hs.facts' certificate.
	raw.SetDeadline(time.Time{}) // nothing is read or written until the decision
	select {
	case r.admissions <- struct{}{}:
	case <-ctx.Done():
		r.m.admission(reasonHandshakeFailed).Inc()
		r.log.Warn("router: no admission slot within the handshake timeout", "remote", hs.remote,
			"max_admissions", r.cfg.MaxAdmissions)
		raw.Close()
		return
	}
	d := r.admit(ctx, hs.facts)
	<-r.admissions
	cancel()
	f := hs.facts
	if !d.Admitted() {
		r.m.admission(d.Reason()).Inc()
		r.log.Info("router: refused", "remote", hs.remote, "reason", d.Reason(), "identity", f.Identity,
			"session", f.Session.String(), "serial", f.Serial.String(), "issuer", f.Issuer)
		r.refuseAfterHandshake(raw, tc, hs, alertFor(d.Verdict))
		return
	}
	tgt, denied, alert := r.route(hs.serverName, f)
	if denied != "" {
		r.refuseAccess(raw, tc, hs, tgt.service, denied, alert)
		return
	}
	c := &liveConn{facts: f, remote: hs.remote, tls: tc, raw: raw, service: tgt.service, address: tgt.address}
	if alert := r.register(c); alert != 0 {
		r.reg.remove(c)
		r.refuseAfterHandshake(raw, tc, hs, alert)
		return
	}
	hs.secret.take() // not needed any more
	r.m.admission(crdt.Admit.String()).Inc()
	r.log.Info("router: admitted", "remote", hs.remote, "identity", c.facts.Identity,
		"session", c.facts.Session.String(), "serial", c.facts.Serial.String(), "issuer", c.facts.Issuer, "service", c.service)
	reason := r.proxy(c)
	r.reg.remove(c)
	r.m.closed(reason).Inc()
	r.log.Info("router: closed", "remote", hs.remote, "identity", c.facts.Identity,
		"session", c.facts.Session.String(), "reason", reason)
}

// refuseAfterHandshake sends the client the alert desc (alertFor's for a
// refused certificate, as a refusal inside the handshake would have, or an
// access refusal's; alert.go) and closes the connection. Nothing has been written
// on tc since the handshake.
func (r *Router) refuseAfterHandshake(raw net.Conn, tc *tls.Conn, hs *handshake, desc byte) {
	rec, err := alertRecord(tc.ConnectionState().CipherSuite, hs.secret.take(), desc)
	if err == nil {
		raw.SetWriteDeadline(time.Now().Add(time.Second))
		_, err = raw.Write(rec)
	}
	if err != nil {
		r.log.Debug("router: refusal alert not sent", "remote", hs.remote, "err", err)
	}
	raw.Close()
}

// register adds an admitted connection to the registry and then checks
// it against the store once more: a revocation or an access change
// applied between the decision and now is either seen here or finds the
// connection in the registry. It arms the session's expiry timer. It
// returns 0, or the alert to refuse the connection with.
func (r *Router) register(c *liveConn) byte {
	r.reg.add(c)
	var v crdt.Verdict
	var access string
	var expires crdt.Millis
	now := crdt.MillisOf(r.clock.Now())
	r.mesh.View(func(s *crdt.Store) {
		v = Stays(s, c.facts, now)
		if c.service != "" {
			if a := Access(s, c.facts, c.service); a != crdt.AccessGranted {
				access = a.String()
			}
		}
		expires, _ = s.SessionExpires(c.facts.Session)
	})
	switch {
	case v != crdt.Admit:
		r.m.admission(v.String()).Inc()
		r.log.Info("router: refused after handshake", "remote", c.remote, "identity", c.facts.Identity,
			"session", c.facts.Session.String(), "reason", v.String())
		return alertFor(v)
	case access != "":
		r.countAccessDenied(c.remote, c.facts, c.service, access)
		return alertAccessDenied
	}
	if expires != 0 {
		r.reg.armExpiry(c.facts.Session, expires, now, r.clock, r.expire)
	}
	return 0
}

// refuseAccess refuses a certificate admitted to a service it may not
// reach, with alert.
func (r *Router) refuseAccess(raw net.Conn, tc *tls.Conn, hs *handshake, service, reason string, alert byte) {
	r.countAccessDenied(hs.remote, hs.facts, service, reason)
	r.refuseAfterHandshake(raw, tc, hs, alert)
}

func (r *Router) countAccessDenied(remote string, f crdt.CertFacts, service, reason string) {
	r.m.admission(reasonAccessDenied).Inc()
	r.m.accessDenied(reason).Inc()
	r.log.Info("router: refused", "remote", remote, "reason", reason, "service", service, "identity", f.Identity,
		"session", f.Session.String())
}

// checkChain is the part of admission that runs inside the TLS handshake,
// before the client has proven it holds the key: the chain to the roots,
// validity dates and the facts of the leaf. It is stateless and silent:
// it asks neither the replicated state nor the mesh, and logs and counts
// nothing (handle does, naming no one). An error makes crypto/tls send the
// client a bad_certificate alert.
func (r *Router) checkChain(hs *handshake, cs tls.ConnectionState) error {
	refuse := func(reason string, err error) error {
		hs.refused, hs.refuseErr = reason, err
		return fmt.Errorf("router: refused: %s", reason)
	}
	now := r.clock.Now()
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return refuse(reasonNoCertificate, errors.New("no client certificate"))
	}
	if len(certs) > maxPeerCerts {
		return refuse(reasonUntrustedChain, fmt.Errorf("%d certificates sent", len(certs)))
	}
	chains, err := r.verifyChain(certs, now)
	if err != nil {
		reason := reasonUntrustedChain
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			reason = crdt.CertExpired.String()
			if now.Before(inv.Cert.NotBefore) {
				reason = crdt.NotYetValid.String()
			}
		}
		return refuse(reason, err)
	}
	var facts crdt.CertFacts
	for _, chain := range chains {
		if facts, err = FactsFromChain(chain, r.cfg.TrustDomain); err == nil {
			break
		}
	}
	if err != nil {
		return refuse(reasonNotClientCert, err)
	}
	hs.facts = facts
	return nil
}

// admit decides on a client that has proven it holds the key of the
// certificate whose facts are f: the replicated state, and in strict mode
// the pull of an unknown certificate, within ctx.
func (r *Router) admit(ctx context.Context, f crdt.CertFacts) Decision {
	d := r.decide(f, r.clock.Now())
	if d.Pull {
		d = r.pull(ctx, f)
	}
	return d
}

func (r *Router) decide(f crdt.CertFacts, now time.Time) Decision {
	var d Decision
	r.mesh.View(func(s *crdt.Store) { d = Decide(s, f, crdt.MillisOf(now), r.cfg.Mode) })
	return d
}

// verifyChain verifies the client's chain against the roots: first with
// the intermediates it sent, then, if that finds no path, with those known
// from controllers' signer records too (a leaf sent alone).
func (r *Router) verifyChain(certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	opts := x509.VerifyOptions{
		Roots:       r.creds.Load().roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
		chains, err := certs[0].Verify(opts)
		var unknown x509.UnknownAuthorityError
		if err == nil || !errors.As(err, &unknown) {
			return chains, err
		}
	}
	sp := r.signers.Load()
	if sp.pool == nil {
		return certs[0].Verify(opts)
	}
	opts.Intermediates = sp.pool
	if len(certs) > 1 {
		opts.Intermediates = sp.pool.Clone()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	return certs[0].Verify(opts)
}

// pull asks the mesh for an unknown certificate and decides again, until
// admitted, refused for another reason, the issuer's authoritative "not
// issued", or PullTimeout. Records that gossip brings meanwhile count too.
func (r *Router) pull(ctx context.Context, f crdt.CertFacts) Decision {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	defer cancel()
	wake, stop := r.waits.add(f.Serial, f.Session)
	defer stop()
	start := r.clock.Now()
	res, err := r.mesh.Want(ctx, f.Serial, f.Issuer)
	for {
		now := r.clock.Now()
		d := r.decide(f, now)
		switch {
		case d.Admitted() || !d.Pull:
			if d.Admitted() {
				r.m.pull("found").Inc()
				r.log.Debug("router: pulled", "serial", f.Serial.String(), "took", now.Sub(start))
			} else {
				r.m.pull("refused").Inc()
			}
			return d
		case err == nil && res.Authoritative:
			r.m.pull("not_found").Inc()
			return d
		}
		select {
		case <-wake:
		case <-ctx.Done():
			d = r.decide(f, r.clock.Now())
			switch {
			case d.Admitted():
				r.m.pull("found").Inc()
			case r.ctx.Err() != nil:
				r.m.pull("canceled").Inc()
			default:
				r.m.pull("timeout").Inc()
			}
			return d
		}
	}
}
