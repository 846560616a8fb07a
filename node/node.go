// Package node starts certmesh's two kinds of process, a controller and a
// router, from their configuration: key files read, store restored, mesh
// joined, listeners up. The certmesh binary runs one node per process; the
// development cluster (certmesh dev) runs several in one process. Stopping
// is graceful: stop serving, leave the mesh, drain.
package node

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router"
	"github.com/certmesh/certmesh/trust"
)

// Controller is a running controller: the issuer and its mesh.
type Controller struct {
	*issuer.Controller
	Mesh *mesh.Mesh
}

// ConfigError reports a problem fixed by editing the configuration (the
// binary exits 2 on it); other errors are runtime failures.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	// "pki.key: open key.pem: ...", not "pki.key: pki: open key.pem: ...":
	// the setting says where the error is from.
	section, _, _ := strings.Cut(e.Field, ".")
	return e.Field + ": " + strings.TrimPrefix(e.Err.Error(), section+": ")
}
func (e *ConfigError) Unwrap() error { return e.Err }

// StartController opens the controller's store, binds its API and metrics
// listeners, joins the mesh and serves.
func StartController(cfg config.Controller, opts issuer.Options) (*Controller, error) {
	keys, err := mesh.LoadKeyFile(cfg.Mesh.KeyFile)
	if err != nil {
		return nil, &ConfigError{Field: "mesh.key_file", Err: err}
	}
	// The listeners first: a taken port must fail before the controller
	// joins the mesh, so that no member ever sees one that cannot serve.
	if opts.Listeners, err = issuer.Listen(cfg); err != nil {
		return nil, err
	}
	ctrl, err := issuer.Open(cfg, opts)
	if err != nil {
		opts.Listeners.Close()
		return nil, err
	}
	m, err := ctrl.NewMesh(ctrl.MeshConfig(keys))
	if err != nil {
		ctrl.Close(context.Background())
		return nil, fmt.Errorf("mesh: %w", err)
	}
	if err := ctrl.Start(m); err != nil {
		ctrl.Close(context.Background())
		m.Close()
		return nil, err
	}
	return &Controller{Controller: ctrl, Mesh: m}, nil
}

// Close stops the controller gracefully, then leaves the mesh.
func (c *Controller) Close(ctx context.Context) error {
	err := c.Controller.Close(ctx)
	if merr := c.Mesh.Close(); merr != nil && !errors.Is(merr, mesh.ErrClosed) {
		err = errors.Join(err, merr)
	}
	return err
}

// Router is a running router: the admission proxy and its mesh.
type Router struct {
	*router.Router
	Mesh     *mesh.Mesh
	cfg      config.Router
	verifier *trust.Verifier
	auth     *gossip.NodeAuth // proves the router's frames with its certificate
	// Restored is how many records the router restored from its snapshot
	// and revocation journal.
	Restored int
}

// routerFiles is the key material a router reads at start and on reload.
type routerFiles struct {
	roots []*x509.Certificate
	cert  tls.Certificate
	keys  [][]byte
}

func loadRouterFiles(cfg *config.Router) (*routerFiles, error) {
	roots, err := pki.LoadCerts(cfg.PKI.CA)
	if err != nil {
		return nil, &ConfigError{Field: "pki.ca", Err: err}
	}
	// The certificate, then the key on its own, so that the error names
	// the file at fault: a missing key file is pki.key's.
	if _, err := pki.LoadCerts(cfg.PKI.Cert); err != nil {
		return nil, &ConfigError{Field: "pki.cert", Err: err}
	}
	if _, err := pki.LoadKey(cfg.PKI.Key); err != nil {
		return nil, &ConfigError{Field: "pki.key", Err: err}
	}
	cert, err := tls.LoadX509KeyPair(cfg.PKI.Cert, cfg.PKI.Key)
	if err != nil {
		return nil, &ConfigError{Field: "pki.key", Err: fmt.Errorf("%s, %s: %w", cfg.PKI.Cert, cfg.PKI.Key, err)}
	}
	// The router's own certificate must be its leaf (pki.CheckNodeCert,
	// the controllers' check): router.New checks it too, but a mistake in
	// the files is the operator's to fix, so it is a ConfigError here.
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	want := pki.SPIFFEID{TrustDomain: cfg.PKI.TrustDomain, Kind: pki.KindRouter, Name: cfg.Node.Name}
	if _, err := pki.CheckNodeCert(cfg.PKI.Cert, cert.Leaf, pool, want, time.Now()); err != nil {
		return nil, &ConfigError{Field: "pki.cert", Err: err}
	}
	keys, err := mesh.LoadKeyFile(cfg.Mesh.KeyFile)
	if err != nil {
		return nil, &ConfigError{Field: "mesh.key_file", Err: err}
	}
	return &routerFiles{roots: roots, cert: cert, keys: keys}, nil
}

// RouterConfig translates the file's settings into the router's.
func RouterConfig(cfg *config.Router) (router.Config, error) {
	rc := router.DefaultConfig()
	rc.Name, rc.Region = cfg.Node.Name, cfg.Node.Region
	rc.TrustDomain = cfg.PKI.TrustDomain
	rc.Listen, rc.Upstream, rc.DefaultService = cfg.Listen, cfg.Upstream, cfg.DefaultService
	mode, err := router.ParseMode(cfg.Admission.Mode)
	if err != nil {
		return rc, &ConfigError{Field: "admission.mode", Err: err}
	}
	rc.Mode = mode
	rc.PullTimeout = cfg.Admission.PullTimeout
	rc.FlightTimeout = cfg.Handshake.FlightTimeout
	rc.MaxPending, rc.MaxPendingPerSource = cfg.Handshake.MaxPending, cfg.Handshake.MaxPendingPerSource
	if rc.HandshakeTimeout <= rc.PullTimeout+rc.FlightTimeout {
		// The whole handshake covers the client's two flights and the pull.
		rc.HandshakeTimeout = rc.PullTimeout + 2*rc.FlightTimeout
	}
	rc.DataDir = cfg.Node.DataDir
	rc.MetricsListen = cfg.Metrics.Listen
	if err := rc.Validate(); err != nil {
		return rc, &ConfigError{Field: "router", Err: err}
	}
	return rc, nil
}

// StartRouter restores the router's snapshot (so it admits at once, even
// with no controller reachable), joins the mesh and starts its listeners.
func StartRouter(cfg config.Router, log *slog.Logger) (*Router, error) {
	rc, err := RouterConfig(&cfg)
	if err != nil {
		return nil, err
	}
	files, err := loadRouterFiles(&cfg)
	if err != nil {
		return nil, err
	}
	store, restored, err := router.LoadSnapshot(rc.DataDir)
	if err != nil {
		return nil, err
	}
	// The listeners first: a taken port must fail before the router joins
	// the mesh, so that no member ever sees a router that cannot serve.
	ln, hl, err := listenRouter(rc)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			closeListeners(ln, hl)
		}
	}()
	if restored > 0 {
		// The mesh and the router add the node attribute themselves.
		log.Info("router: state restored from snapshot", "node", rc.Name, "records", restored, "dir", rc.DataDir)
	}
	verifier, err := trust.NewVerifier(files.roots[0], rc.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		return nil, &ConfigError{Field: "pki.ca", Err: err}
	}
	auth, err := gossip.NewNodeAuth(files.roots[0], rc.TrustDomain, rc.Name, gossip.RoleRouter)
	if err != nil {
		return nil, &ConfigError{Field: "pki.ca", Err: err}
	}
	if err := setRouterIdentity(auth, &cfg, files); err != nil {
		return nil, err
	}
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = rc.Name, gossip.RoleRouter, rc.Region
	if n := cfg.Mesh.EagerTrees; n > 0 {
		core.EagerTrees = n
	}
	m, err := mesh.New(mesh.Config{
		Core:        core,
		Bind:        cfg.Mesh.Bind,
		Advertise:   cfg.Mesh.Advertise,
		Join:        cfg.Mesh.Join,
		JoinTimeout: cfg.Mesh.JoinTimeout,
		Keys:        files.keys,
		Logger:      log,
		Auth:        auth,
	}, store, verifier)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	r, err := router.New(rc, m, router.Credentials{Roots: files.roots, Cert: files.cert}, router.Options{
		Logger:  log,
		Metrics: metrics.NewSet(),
		MetricsWriters: []func(w io.Writer){
			m.WritePrometheus,
			func(w io.Writer) {
				api.WriteMetrics(w, api.ProcessMetrics, func(w io.Writer) {
					metrics.WriteProcessMetrics(w)
					metrics.WriteFDMetrics(w)
				})
			},
		},
		Members:         m.Members,
		Listener:        ln,
		MetricsListener: hl,
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	started = true // from here on the router owns the listeners
	if err := r.Start(); err != nil {
		m.Close()
		return nil, err
	}
	return &Router{Router: r, Mesh: m, cfg: cfg, verifier: verifier, auth: auth, Restored: restored}, nil
}

// listenRouter binds the router's client listener and, if configured, its
// metrics listener. A taken or unusable address is the operator's to fix.
func listenRouter(rc router.Config) (ln, hl net.Listener, err error) {
	if ln, err = net.Listen("tcp", rc.Listen); err != nil {
		return nil, nil, &ConfigError{Field: "listen", Err: err}
	}
	if rc.MetricsListen != "" {
		if hl, err = net.Listen("tcp", rc.MetricsListen); err != nil {
			ln.Close()
			return nil, nil, &ConfigError{Field: "metrics.listen", Err: err}
		}
	}
	return ln, hl, nil
}

func closeListeners(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}

// setRouterIdentity gives auth the router's certificate and key: the mesh
// proves the router's frames with them (gossip.NodeAuth). The certificate
// must be this router's, issued by the root.
func setRouterIdentity(auth *gossip.NodeAuth, cfg *config.Router, files *routerFiles) error {
	leaf := files.cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(files.cert.Certificate[0]); err != nil {
			return &ConfigError{Field: "pki.cert", Err: fmt.Errorf("%s: %w", cfg.PKI.Cert, err)}
		}
	}
	key, ok := files.cert.PrivateKey.(crypto.Signer)
	if !ok {
		return &ConfigError{Field: "pki.key", Err: fmt.Errorf("%s: a %T cannot sign", cfg.PKI.Key, files.cert.PrivateKey)}
	}
	if err := auth.SetIdentity(leaf, key); err != nil {
		return &ConfigError{Field: "pki.cert", Err: fmt.Errorf("%s: %w", cfg.PKI.Cert, err)}
	}
	return nil
}

// Reload re-reads the CA bundle, the router certificate and the gossip
// keyring. On error nothing changes: the previous material stays in use.
func (r *Router) Reload() error {
	files, err := loadRouterFiles(&r.cfg)
	if err != nil {
		return err
	}
	if err := r.verifier.SetRoot(files.roots[0]); err != nil {
		return err
	}
	if err := r.auth.SetRoot(files.roots[0]); err != nil {
		return err
	}
	if err := setRouterIdentity(r.auth, &r.cfg, files); err != nil {
		return err
	}
	return errors.Join(
		r.SetCredentials(router.Credentials{Roots: files.roots, Cert: files.cert}),
		r.Mesh.SetKeys(files.keys),
	)
}

// Close stops accepting, leaves the mesh and drains live connections.
func (r *Router) Close(ctx context.Context) error {
	return r.Shutdown(ctx)
}
