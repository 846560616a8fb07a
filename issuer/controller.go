package issuer

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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// Mesh is what a controller needs of the gossip mesh; *mesh.Mesh
// provides it. Implementations are safe for concurrent use.
type Mesh interface {
	// Publish disseminates records this node wrote, already signed and
	// durably stored, merging them into the store first.
	Publish(recs []crdt.Record) error
	// Now returns an HLC timestamp for a local write.
	Now() crdt.Timestamp
	// View runs fn with the store, under the mesh's lock.
	View(fn func(*crdt.Store))
	// Subscribe calls fn with the records applied to the store (local
	// writes included), in order; fn must not block or call the mesh.
	Subscribe(fn func(applied []crdt.Record)) (cancel func())
	// Members lists the mesh's members as membership sees them.
	Members() []Member
	// Ready reports readiness (docs/deploy.md).
	Ready() bool
	// ClockOffset estimates this node's clock offset from its peers'.
	ClockOffset() (time.Duration, bool)
	// SetKeys replaces the gossip keyring; the first key encrypts.
	SetKeys(keys [][]byte) error
	// BatchSigning reports whether every member decodes batch-signed
	// records, so that the writer may sign a commit's records with one
	// signature (crdt.SignBatch); otherwise it signs each alone.
	BatchSigning() bool
}

// Member is one mesh member in /v1/status: name, role, region, state and
// lag (records it lacked at the last exchange).
type Member = api.MemberStatus

var _ Mesh = (*mesh.Mesh)(nil)

// TokenVerifier verifies login tokens; *auth.Verifier is one. Errors should
// be *auth.Error so that the API answers with their code.
type TokenVerifier interface {
	Verify(ctx context.Context, rawToken string) (auth.Identity, error)
}

// Options are a controller's operational settings, outside the config
// file. The zero value of each field selects its default.
type Options struct {
	// Logger receives logs and the audit lines; default discards.
	Logger *slog.Logger
	// Listeners, if set, are the API and metrics listeners already bound
	// (Listen); the controller owns them once Open succeeds.
	Listeners Listeners
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Tokens verifies login tokens; default an auth.Verifier built from
	// the config's auth section with Auth, rebuilt on Reload.
	Tokens TokenVerifier
	Auth   auth.Options
	// LoadKeyring reads mesh.key_file on Reload; default
	// mesh.LoadKeyFile.
	LoadKeyring func(path string) ([][]byte, error)
	// MaxOffset is the mesh's max clock offset; writes are refused while
	// this node's clock is off by more than half of it. Default
	// crdt.DefaultMaxOffset.
	MaxOffset time.Duration
	// ServerCertTTL is the lifetime of the API's TLS certificate, renewed
	// after two thirds of it; default 7 days.
	ServerCertTTL time.Duration
	// GCInterval is how often expired records are deleted from disk;
	// default 10 minutes.
	GCInterval time.Duration
	// ExtraMetrics write more Prometheus text on /metrics (the mesh's
	// metrics, when the mesh does not implement WritePrometheus itself).
	ExtraMetrics []func(io.Writer)
}

// Defaults of Options.
const (
	DefaultServerCertTTL = 7 * 24 * time.Hour
	DefaultGCInterval    = 10 * time.Minute
	// gcGrace is kept beyond a record's expiry and the max offset before it
	// leaves the disk.
	gcGrace = time.Hour
)

// Controller is one certmesh controller. Its methods are safe for
// concurrent use.
type Controller struct {
	routes        []string    // "METHOD /path" of the API; written by apiHandler, at start
	revokedLogged atomic.Bool // noticeRevocation has logged
	cfg           config.Controller
	opts          Options
	log           *slog.Logger
	now           func() time.Time
	author        crdt.Author

	db    *durable
	store *crdt.Store // the mesh's once started
	w     *writer

	keys   atomic.Pointer[keys]
	server *serverCerts
	inters *intermediates

	tokens       atomic.Pointer[tokenHolder]
	ownsVerifier bool
	// pending is a verifier built by Reload that is not ready yet: it
	// replaces tokens once its issuers are discovered. Guarded by
	// pendingMu.
	pendingMu sync.Mutex
	pending   *tokenHolder

	mesh     Mesh
	unsub    func()
	verifier *trust.Verifier  // set by NewMesh; its root follows Reload
	nodeAuth *gossip.NodeAuth // set by NewMesh; its root and identity follow Reload

	limiter *ipLimiter
	met     *ctrlMetrics

	api, mon     *http.Server
	apiLn, monLn net.Listener
	ready        atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	reloadMu  sync.Mutex
	closeOnce sync.Once
	closeErr  error
	started   atomic.Bool
	startedAt time.Time // set by Start, before the API listens
}

type tokenHolder struct {
	v      TokenVerifier
	ctx    context.Context // ends with cancel: the verifier's background work
	cancel context.CancelFunc
}

// Open prepares a controller from a validated configuration: it loads and
// checks the key material, opens (or creates) the bbolt store under
// node.data_dir and reloads every record into a crdt.Store. Nothing
// listens yet. Errors about key files are *ConfigError.
func Open(cfg config.Controller, opts Options) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return nil, &ConfigError{Field: fe.Field, Err: fe.Err}
		}
		return nil, &ConfigError{Field: "config", Err: err}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LoadKeyring == nil {
		opts.LoadKeyring = mesh.LoadKeyFile
	}
	if opts.MaxOffset <= 0 {
		opts.MaxOffset = crdt.DefaultMaxOffset
	}
	if opts.ServerCertTTL <= 0 {
		opts.ServerCertTTL = DefaultServerCertTTL
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = DefaultGCInterval
	}
	c := &Controller{
		cfg:   cfg,
		opts:  opts,
		apiLn: opts.Listeners.API,
		monLn: opts.Listeners.Metrics,
		log:   opts.Logger.With("node", cfg.Node.Name),
		now:   opts.Now,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	k, err := loadKeys(&c.cfg, c.now())
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.keys.Store(k)
	c.server = &serverCerts{
		hosts: serverHosts(&c.cfg),
		ttl:   opts.ServerCertTTL,
		now:   c.now,
	}
	if _, err := c.server.get(k); err != nil {
		c.cancel()
		return nil, err
	}
	if opts.Tokens != nil {
		c.tokens.Store(&tokenHolder{v: opts.Tokens, ctx: c.ctx, cancel: func() {}})
	} else {
		h, err := c.newVerifier()
		if err != nil {
			c.cancel()
			return nil, &ConfigError{"auth", err}
		}
		c.tokens.Store(h)
		c.ownsVerifier = true
	}

	db, recs, err := openDurable(cfg.Node.DataDir)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.db = db
	c.author = crdt.Author{Name: cfg.Node.Name, Incarnation: db.incarnation}
	c.store = crdt.NewStore()
	if err := c.store.RestoreVerified(db.snapshot(c.author, recs)); err != nil {
		db.close()
		c.cancel()
		return nil, fmt.Errorf("issuer: reload %s: %w", cfg.Node.DataDir, err)
	}
	c.w = newWriter(c.author, db, c.log, c.now)
	c.inters = newIntermediates()
	c.limiter = newIPLimiter(cfg.API.RateLimit)
	c.met = newMetrics()
	c.met.issuerGauges(c.issuerHealth(), c.issuerHealth)
	c.w.onCommit = c.met.commit
	c.log.Info("store reloaded", "author", c.author.String(), "records", c.store.Len(), "next_seq", db.nextSeq)
	return c, nil
}

func (c *Controller) newVerifier() (*tokenHolder, error) {
	ctx, cancel := context.WithCancel(c.ctx)
	ao := c.opts.Auth
	if ao.Logger == nil {
		ao.Logger = c.log
	}
	if ao.Now == nil {
		ao.Now = c.now
	}
	v, err := auth.New(ctx, c.cfg.Auth, ao)
	if err != nil {
		cancel()
		return nil, err
	}
	return &tokenHolder{v: v, ctx: ctx, cancel: cancel}, nil
}

// reloadAuthWait bounds how long Reload waits for the first discovery
// attempt of a new verifier's OIDC issuers (an attempt has its own 10s
// timeout, auth.DefaultHTTPTimeout).
const reloadAuthWait = 15 * time.Second

// replaceVerifier puts h in use once every OIDC issuer of it has been
// discovered. Until then the verifier in use, with the keys it cached,
// keeps answering: a reload during a provider outage must not turn the
// tokens that worked into 503s. A later Reload's verifier supersedes one
// still pending.
func (c *Controller) replaceVerifier(h *tokenHolder) {
	c.pendingMu.Lock()
	if c.pending != nil {
		c.pending.cancel()
		c.pending = nil
	}
	c.pendingMu.Unlock()
	v, ok := h.v.(*auth.Verifier)
	if !ok {
		c.installVerifier(h)
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, reloadAuthWait)
	_ = v.WaitAttempted(ctx) // an issuer still down keeps being retried
	cancel()
	if v.Ready() {
		c.installVerifier(h)
		return
	}
	c.log.Warn("auth: reloaded, but not every OIDC issuer is discovered yet; the previous verifier and its cached keys stay in use until they are")
	c.pendingMu.Lock()
	c.pending = h
	c.pendingMu.Unlock()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if err := v.WaitReady(h.ctx); err != nil {
			return // superseded, or the controller is closing
		}
		c.pendingMu.Lock()
		defer c.pendingMu.Unlock()
		if c.pending == h {
			c.pending = nil
			c.installVerifier(h)
			c.log.Info("auth: the reloaded verifier's issuers are discovered; it is in use")
		}
	}()
}

func (c *Controller) installVerifier(h *tokenHolder) {
	if prev := c.tokens.Swap(h); prev != nil {
		prev.cancel()
	}
}

// authMisconfigured returns the error of an OIDC issuer whose discovery
// document contradicts the config, nil if none does.
func (c *Controller) authMisconfigured() error {
	if v, ok := c.tokens.Load().v.(interface{ Misconfigured() error }); ok {
		return v.Misconfigured()
	}
	return nil
}

// issuerHealth reports the state of every configured token issuer, nil when
// the verifier cannot tell (one given in Options.Tokens).
func (c *Controller) issuerHealth() []auth.Health {
	if v, ok := c.tokens.Load().v.(interface{ Health() []auth.Health }); ok {
		return v.Health()
	}
	return nil
}

// Store is the store the controller reloaded from disk: build the mesh over
// it, then Start. After Start it belongs to the mesh (use Mesh.View).
func (c *Controller) Store() *crdt.Store { return c.store }

// Author is this controller's author id: its name and incarnation.
func (c *Controller) Author() crdt.Author { return c.author }

// NextSeq is the next seq this controller will write.
func (c *Controller) NextSeq() uint64 {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.nextSeq
}

// APIAddr and MetricsAddr are the listening addresses once started.
func (c *Controller) APIAddr() string { return addrOf(c.apiLn) }
func (c *Controller) MetricsAddr() string {
	return addrOf(c.monLn)
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// RootCA is the root certificate clients verify the API against.
func (c *Controller) RootCA() *x509.Certificate { return c.keys.Load().root }

// MeshConfig returns the gossip mesh configuration of the controller's
// config (mesh.*, node.name, node.region) with the gossip keyring keys.
// Adjust it before NewMesh if need be.
func (c *Controller) MeshConfig(keys [][]byte) mesh.Config {
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = c.cfg.Node.Name, gossip.RoleController, c.cfg.Node.Region
	core.MaxOffset = c.opts.MaxOffset
	if n := c.cfg.Mesh.EagerTrees; n > 0 {
		core.EagerTrees = n
	}
	return mesh.Config{
		Core:        core,
		Bind:        c.cfg.Mesh.Bind,
		Advertise:   c.cfg.Mesh.Advertise,
		Join:        c.cfg.Mesh.Join,
		JoinTimeout: c.cfg.Mesh.JoinTimeout,
		Keys:        keys,
		APIAddr:     c.cfg.API.Listen,
		Logger:      c.opts.Logger,
		Clock:       c.now,
	}
}

// NewMesh starts the controller's gossip mesh over Store(), verifying
// records with a trust.Verifier that trusts the root of pki.ca, and, unless
// mc.Auth is set, proving its frames with its intermediate
// (gossip.NodeAuth); both follow Reload. Pass the mesh to Start; close it
// after Close.
func (c *Controller) NewMesh(mc mesh.Config) (*mesh.Mesh, error) {
	store := c.store
	k := c.keys.Load()
	v, err := trust.NewVerifier(k.root, c.cfg.PKI.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		return nil, err
	}
	if mc.Auth == nil {
		a, err := gossip.NewNodeAuth(k.root, c.cfg.PKI.TrustDomain, c.cfg.Node.Name, gossip.RoleController)
		if err != nil {
			return nil, err
		}
		if err := a.SetIdentity(k.inter.Cert, k.inter.Key); err != nil {
			return nil, &ConfigError{"pki.cert", err}
		}
		mc.Auth = a
	}
	m, err := mesh.New(mc, store, v)
	if err != nil {
		return nil, err
	}
	c.verifier, c.nodeAuth = v, mc.Auth
	return m, nil
}

// Start attaches the controller to its mesh (built over Store()), publishes
// its signer record if the mesh does not hold it yet, and starts the API
// and metrics listeners.
func (c *Controller) Start(m Mesh) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("issuer: already started")
	}
	c.mesh = m
	c.startedAt = c.now()
	c.w.start(m, c.keys.Load().signer)
	c.unsub = m.Subscribe(c.onApplied)

	// Persist what the mesh may have received before the subscription,
	// and learn every intermediate known from signer records.
	var recv []crdt.Record
	m.View(func(s *crdt.Store) {
		s.Range(func(r crdt.Record) bool {
			if sr, ok := r.(*crdt.SignerRecord); ok {
				c.inters.add(sr)
			}
			if r.Head().Author != c.author {
				recv = append(recv, r)
			}
			return true
		})
	})
	c.w.receive(recv)
	c.checkRevokedByRoot()

	if err := c.publishSigner(c.keys.Load(), false); err != nil {
		return err
	}
	if err := c.listen(); err != nil {
		return err
	}
	c.bg.Add(1)
	go c.gcLoop()
	c.ready.Store(true)
	c.log.Info("controller started", "api", c.APIAddr(), "metrics", c.MetricsAddr(), "author", c.author.String(),
		"identities", strings.Join(c.cfg.Auth.IdentityFormat(), "; "))
	return nil
}

func (c *Controller) onApplied(recs []crdt.Record) {
	for _, r := range recs {
		if sr, ok := r.(*crdt.SignerRecord); ok {
			c.inters.add(sr)
			if sr.Revoked && sr.Controller == c.cfg.Node.Name {
				c.noticeRevocation(sr.RevokedAt)
			}
		}
	}
	c.w.receive(recs)
}

// checkRevokedByRoot calls noticeRevocation if the store holds the root's
// revocation of this controller: at start, and after this controller
// wrote one.
func (c *Controller) checkRevokedByRoot() {
	var at crdt.Millis
	revoked := false
	c.mesh.View(func(s *crdt.Store) { at, revoked = s.SignerRevoked(c.cfg.Node.Name) })
	if revoked {
		c.noticeRevocation(at)
	}
}

// noticeRevocation logs at ERROR, once, that the root revoked this
// controller at at: from then on every node refuses what it signs, and it
// refuses logins and rotations, which an operator must hear of without
// waiting for clients to complain. It reads nothing of the mesh, so that
// onApplied may call it (a mesh may notify under its lock).
func (c *Controller) noticeRevocation(at crdt.Millis) {
	if !c.revokedLogged.CompareAndSwap(false, true) {
		return
	}
	c.log.Error("this controller was revoked by the root (certmesh pki revoke-controller): every node refuses the records "+
		"it signs and the certificates its intermediate issued, and it answers logins and rotations with 503; "+
		"retire it, and issue a controller under a new name (certmesh pki add) in its place",
		"node", c.cfg.Node.Name, "revoked_at", time.UnixMilli(int64(at)).UTC())
}

// publishSigner writes k's signer record unless the store holds it; with
// swap, k's key signs it and every later record.
func (c *Controller) publishSigner(k *keys, swap bool) error {
	have := false
	c.mesh.View(func(s *crdt.Store) { _, have = s.Signer(c.cfg.Node.Name, k.keyID) })
	var first []crdt.Record
	if !have {
		rec, err := trust.NewSignerRecord(k.inter.Cert, c.cfg.PKI.TrustDomain)
		if err != nil {
			return fmt.Errorf("issuer: publish signer record: %w", err)
		}
		first = []crdt.Record{rec}
	}
	var err error
	if swap {
		err = c.w.setSigner(k.signer, first)
	} else if len(first) > 0 {
		err = c.w.write(first, nil)
	}
	if err != nil {
		return fmt.Errorf("issuer: publish signer record: %w", err)
	}
	if len(first) > 0 {
		c.inters.add(first[0].(*crdt.SignerRecord))
		c.log.Info("signer record published", "key_id", fmt.Sprintf("%x", k.keyID[:8]), "not_after", k.inter.Cert.NotAfter)
	}
	return nil
}

// Listeners are a controller's API and metrics listeners, bound by Listen.
type Listeners struct {
	API     net.Listener
	Metrics net.Listener // nil when metrics.listen is empty
}

// Listen binds cfg's api.listen and metrics.listen. A caller binds them
// before it opens the controller and joins the mesh (Options.Listeners),
// so that a taken port fails before any member hears of the controller;
// Start binds them itself otherwise. A taken or unusable address is a
// ConfigError.
func Listen(cfg config.Controller) (Listeners, error) {
	var ls Listeners
	var err error
	if ls.API, err = net.Listen("tcp", cfg.API.Listen); err != nil {
		return Listeners{}, &ConfigError{"api.listen", err}
	}
	if cfg.Metrics.Listen != "" {
		if ls.Metrics, err = net.Listen("tcp", cfg.Metrics.Listen); err != nil {
			ls.API.Close()
			return Listeners{}, &ConfigError{"metrics.listen", err}
		}
	}
	return ls, nil
}

// Close closes the listeners.
func (ls Listeners) Close() {
	for _, l := range []net.Listener{ls.API, ls.Metrics} {
		if l != nil {
			l.Close()
		}
	}
}

func (c *Controller) listen() error {
	if c.apiLn == nil {
		ls, err := Listen(c.cfg)
		if err != nil {
			return err
		}
		c.apiLn, c.monLn = ls.API, ls.Metrics
	}
	errLog := slog.NewLogLogger(c.log.Handler(), slog.LevelDebug)
	c.api = &http.Server{
		Handler: c.apiHandler(),
		// TLS 1.3 only (pki.HardenTLS says why).
		TLSConfig: pki.HardenTLS(&tls.Config{
			// Client certificates are asked for on every connection and
			// verified per route: sessions against the root through the
			// controllers' intermediates, admins against the root alone.
			ClientAuth: tls.RequestClientCert,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return c.server.get(c.keys.Load())
			},
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if err := c.api.ServeTLS(c.apiLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("api server stopped", "err", err)
		}
	}()
	if c.monLn == nil {
		return nil
	}
	c.mon = &http.Server{
		Handler:           c.monitorHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		if err := c.mon.Serve(c.monLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

func (c *Controller) gcLoop() {
	defer c.bg.Done()
	t := time.NewTicker(c.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		n, err := c.db.collect(c.now(), c.opts.MaxOffset+gcGrace)
		if err != nil {
			c.log.Error("disk collection failed", "err", err)
		} else if n > 0 {
			c.log.Info("expired records deleted from disk", "records", n)
		}
	}
}

// Ready reports whether Readiness is nil.
func (c *Controller) Ready() bool { return c.Readiness() == nil }

// Readiness says why the controller cannot issue correctly now, or nil
// (docs/deploy.md, "Health checks for load balancers"): its listeners are
// up, its mesh is ready (mesh.Mesh.Readiness: caught up with a peer, or a
// lone first node, and never a node whose seeds refuse its gossip key),
// and its clock lets it write (the rule behind 503 clock_skew): a load
// balancer sends logins only where they can succeed. No OIDC issuer may
// be misconfigured either (its discovery document contradicts the config,
// which no retry mends). An issuer that is merely unreachable does not make
// it unready: the outage is the provider's, every controller shares it, and
// rotation, logout and the other issuers still work here.
func (c *Controller) Readiness() error {
	if !c.ready.Load() || c.mesh == nil {
		return errors.New("starting or stopping: the listeners are not serving")
	}
	if r, ok := c.mesh.(interface{ Readiness() error }); ok {
		if err := r.Readiness(); err != nil {
			return err
		}
	} else if !c.mesh.Ready() {
		return errors.New("the mesh is not ready")
	}
	if e := c.checkClock(); e != nil {
		return errors.New(e.msg)
	}
	return c.authMisconfigured()
}

// Reload re-reads the key files (SIGHUP): the CA bundle, the controller's
// intermediate and key (a new key gets a new signer record and signs every
// record from then on; the old one stays valid until it expires), the
// gossip keyring, and the JWT signers' key files. On error the old material
// stays in use.
func (c *Controller) Reload() error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	var errs []error
	old := c.keys.Load()
	k, err := loadKeys(&c.cfg, c.now())
	if err != nil {
		errs = append(errs, err)
	} else {
		if c.verifier != nil && !k.root.Equal(old.root) {
			if err := c.verifier.SetRoot(k.root); err != nil {
				errs = append(errs, fmt.Errorf("issuer: pki.ca: %w", err))
			}
			if c.nodeAuth != nil {
				if err := c.nodeAuth.SetRoot(k.root); err != nil {
					errs = append(errs, fmt.Errorf("issuer: pki.ca: %w", err))
				}
			}
		}
		if c.nodeAuth != nil && (k.keyID != old.keyID || !k.root.Equal(old.root)) {
			if err := c.nodeAuth.SetIdentity(k.inter.Cert, k.inter.Key); err != nil {
				errs = append(errs, fmt.Errorf("issuer: pki.cert: %w", err))
			}
		}
		if k.keyID != old.keyID {
			if err := c.publishSigner(k, true); err != nil {
				errs = append(errs, err)
				k = nil
			} else {
				c.log.Info("signing key rotated", "old", fmt.Sprintf("%x", old.keyID[:8]), "new", fmt.Sprintf("%x", k.keyID[:8]))
			}
		}
		if k != nil {
			c.keys.Store(k)
		}
	}
	if c.mesh != nil && c.cfg.Mesh.KeyFile != "" {
		ring, err := c.opts.LoadKeyring(c.cfg.Mesh.KeyFile)
		if err == nil {
			err = c.mesh.SetKeys(ring)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("issuer: mesh.key_file: %w", err))
		}
	}
	if c.ownsVerifier {
		h, err := c.newVerifier()
		if err != nil {
			errs = append(errs, &ConfigError{"auth", err})
		} else {
			c.replaceVerifier(h)
		}
	}
	err = errors.Join(errs...)
	if err != nil {
		c.log.Error("reload incomplete", "err", err)
	} else {
		c.log.Info("key files reloaded")
	}
	return err
}

// Close shuts the controller down gracefully: it stops accepting requests,
// lets those in flight finish (until ctx ends), commits what they wrote,
// and closes the store. Close the mesh after it.
func (c *Controller) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.ready.Store(false)
		var errs []error
		for _, s := range []*http.Server{c.api, c.mon} {
			if s != nil {
				if err := s.Shutdown(ctx); err != nil {
					errs = append(errs, err)
					s.Close()
				}
			}
		}
		// Listeners bound by Listen and never served.
		if c.api == nil && c.apiLn != nil {
			c.apiLn.Close()
		}
		if c.mon == nil && c.monLn != nil {
			c.monLn.Close()
		}
		c.w.close()
		if c.unsub != nil {
			c.unsub()
		}
		c.cancel()
		if h := c.tokens.Load(); h != nil {
			h.cancel()
		}
		c.bg.Wait()
		if err := c.db.close(); err != nil {
			errs = append(errs, err)
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

func serverHosts(cfg *config.Controller) []string {
	return pki.ServerHosts(cfg.Node.Name, cfg.API.Listen, cfg.API.Hosts)
}
