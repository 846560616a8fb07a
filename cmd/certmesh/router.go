package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router"
)

// routerShutdownTimeout bounds a router's graceful shutdown: the drain
// (router.Config.DrainTimeout) and leaving the mesh.
const routerShutdownTimeout = 30 * time.Second

// routerCommand is `certmesh router --config FILE` (SPEC.md section 4).
func routerCommand() *cli.Command {
	defaults := config.DefaultRouter()
	return &cli.Command{
		Name:      "router",
		Usage:     "run a router: admit client mTLS connections from the replicated state and proxy them to the upstream",
		UsageText: "certmesh router --config FILE [--section.field VALUE ...]",
		Description: "Every setting comes from the YAML file, CERTMESH_<SECTION>_<FIELD> or --<section>.<field>, " +
			"flags first. SIGHUP reloads the CA bundle, the router certificate and the gossip keyring; " +
			"SIGINT/SIGTERM stop accepting, leave the mesh and drain.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML configuration `FILE`"},
		}, config.Flags(defaults)...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("certmesh router: unexpected argument %q", c.Args().First()), 2)
			}
			cfg := config.DefaultRouter()
			if err := config.Load(&cfg, config.Loader{File: c.String("config"), Flags: config.FlagValues(c, defaults)}); err != nil {
				return cli.Exit("certmesh router: "+err.Error(), 2)
			}
			return runRouter(c.Context, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		},
	}
}

// routerFiles is the key material a router reads at start and on SIGHUP.
type routerFiles struct {
	roots []*x509.Certificate
	cert  tls.Certificate
	keys  [][]byte
}

// loadRouterFiles reads pki.ca, pki.cert, pki.key and mesh.key_file;
// errors name the setting and the file.
func loadRouterFiles(cfg *config.Router) (*routerFiles, error) {
	roots, err := pki.LoadCerts(cfg.PKI.CA)
	if err != nil {
		return nil, fmt.Errorf("pki.ca: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(cfg.PKI.Cert, cfg.PKI.Key)
	if err != nil {
		return nil, fmt.Errorf("pki.cert %s, pki.key %s: %w", cfg.PKI.Cert, cfg.PKI.Key, err)
	}
	keys, err := gossip.LoadKeyFile(cfg.Mesh.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mesh.key_file: %w", err)
	}
	return &routerFiles{roots: roots, cert: cert, keys: keys}, nil
}

// routerConfig maps the file's settings onto router.Config.
func routerConfig(cfg *config.Router) (router.Config, error) {
	rc := router.DefaultConfig()
	rc.Name, rc.Region = cfg.Node.Name, cfg.Node.Region
	rc.TrustDomain = cfg.PKI.TrustDomain
	rc.Listen, rc.Upstream = cfg.Listen, cfg.Upstream
	mode, err := router.ParseMode(cfg.Admission.Mode)
	if err != nil {
		return rc, fmt.Errorf("admission.mode: %w", err)
	}
	rc.Mode = mode
	rc.PullTimeout = cfg.Admission.PullTimeout
	if rc.HandshakeTimeout <= rc.PullTimeout {
		rc.HandshakeTimeout = rc.PullTimeout + 5*time.Second
	}
	rc.DataDir = cfg.Node.DataDir
	rc.MetricsListen = cfg.Metrics.Listen
	return rc, rc.Validate()
}

// meshMembers adapts the mesh's member list to the router's status.
func meshMembers(m *gossip.Mesh) func() []router.MemberStatus {
	return func() []router.MemberStatus {
		var out []router.MemberStatus
		for _, ms := range m.Members() {
			out = append(out, router.MemberStatus{Name: ms.Name, Role: ms.Role, Region: ms.Region, State: ms.State, Lag: ms.Lag})
		}
		return out
	}
}

// runRouter runs a router until ctx ends or SIGINT/SIGTERM, reloading its
// key files on SIGHUP.
func runRouter(ctx context.Context, cfg config.Router, log *slog.Logger) error {
	rc, err := routerConfig(&cfg)
	if err != nil {
		return cli.Exit("certmesh router: "+err.Error(), 2)
	}
	files, err := loadRouterFiles(&cfg)
	if err != nil {
		return cli.Exit("certmesh router: "+err.Error(), 2)
	}
	store, restored, err := router.LoadSnapshot(rc.DataDir)
	if err != nil {
		return cli.Exit("certmesh router: "+err.Error(), 1)
	}
	log = log.With("node", rc.Name)
	if restored > 0 {
		log.Info("router: state restored from snapshot", "records", restored, "dir", rc.DataDir)
	}
	// The verifier reads signer records from the store; it runs on the
	// mesh's goroutine, which owns the store.
	verifier, err := gossip.NewVerifier(files.roots[0], rc.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		return cli.Exit("certmesh router: pki.ca: "+err.Error(), 2)
	}
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = rc.Name, gossip.RoleRouter, rc.Region
	mesh, err := gossip.NewMesh(gossip.MeshConfig{
		Core:        core,
		Bind:        cfg.Mesh.Bind,
		Advertise:   cfg.Mesh.Advertise,
		Join:        cfg.Mesh.Join,
		JoinTimeout: cfg.Mesh.JoinTimeout,
		Keys:        files.keys,
		Logger:      log,
	}, store, verifier)
	if err != nil {
		return cli.Exit("certmesh router: mesh: "+err.Error(), 1)
	}
	set := metrics.NewSet()
	r, err := router.New(rc, mesh, router.Credentials{Roots: files.roots, Cert: files.cert}, router.Options{
		Logger:         log,
		Metrics:        set,
		MetricsWriters: []func(w io.Writer){func(w io.Writer) { metrics.WriteProcessMetrics(w) }},
		Members:        meshMembers(mesh),
	})
	if err != nil {
		mesh.Close()
		return cli.Exit("certmesh router: "+err.Error(), 2)
	}
	if err := r.Start(); err != nil {
		mesh.Close()
		return cli.Exit("certmesh router: "+err.Error(), 1)
	}
	log.Info("router: started", "listen", r.Addr().String(), "mesh", mesh.Addr(), "metrics", addrString(r.MetricsAddr()))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				reloadRouter(&cfg, r, mesh, verifier, log)
				continue
			}
			log.Info("router: shutting down", "signal", s.String())
		case <-ctx.Done():
			log.Info("router: shutting down")
		}
		sctx, cancel := context.WithTimeout(context.Background(), routerShutdownTimeout)
		defer cancel()
		if err := r.Shutdown(sctx); err != nil {
			return cli.Exit("certmesh router: "+err.Error(), 1)
		}
		return nil
	}
}

// reloadRouter re-reads the CA bundle, the router certificate and the
// gossip keyring; on error the old material stays in use.
func reloadRouter(cfg *config.Router, r *router.Router, mesh *gossip.Mesh, v *gossip.Verifier, log *slog.Logger) {
	files, err := loadRouterFiles(cfg)
	if err == nil {
		err = errors.Join(
			r.SetCredentials(router.Credentials{Roots: files.roots, Cert: files.cert}),
			v.SetRoot(files.roots[0]),
			mesh.SetKeys(files.keys),
		)
	}
	if err != nil {
		log.Error("router: reload failed; keeping the previous key material", "err", err)
		return
	}
	log.Info("router: key files reloaded")
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}
