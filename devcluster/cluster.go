// Package devcluster runs a whole certmesh cluster in one process on
// loopback, for development and demonstration (certmesh dev): controllers
// and routers in several regions over real memberlist and real sockets, a
// development OIDC issuer, and an HTTP echo upstream. It is NOT a way to run
// production: the OIDC issuer mints tokens for anyone, and every key lives
// in one directory.
//
// Walk then takes one client through login, an immediate connect through a
// router in another region, rotation with the connection kept up, and
// revocation at a third controller, timing how long each change took to
// reach every router.
package devcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/node"
	"github.com/certmesh/certmesh/pki"
)

// Options configures a development cluster.
type Options struct {
	// Dir holds the PKI and every node's data; default a new temporary
	// directory, removed by Close.
	Dir string
	// Regions are the regions, one controller each; default us-east,
	// eu-west, ap-southeast.
	Regions []string
	// RoutersPerRegion is how many routers each region has; default 2.
	RoutersPerRegion int
	// Logger receives the nodes' logs; default discards them.
	Logger *slog.Logger
	// BasePort, when set, pins every port on 127.0.0.1 (PortsNeeded of
	// them from it): the OIDC issuer, the upstream, then for each
	// controller its mesh, API and metrics ports, then for each router
	// its mesh, client and metrics ports. Zero: free ports, new each run.
	BasePort int
}

// PortsNeeded is how many ports from Options.BasePort a cluster of
// regions regions and routersPerRegion routers each takes.
func PortsNeeded(regions, routersPerRegion int) int {
	return 2 + 3*regions*(1+routersPerRegion)
}

// Cluster is a running development cluster.
type Cluster struct {
	Dir         string
	PKIDir      string
	OIDC        *devoidc.Server
	Upstream    string // host:port of the HTTP echo upstream
	Controllers []*node.Controller
	Routers     []*node.Router

	upstream *http.Server
	tempDir  bool
	addr     func() string // the next listen address (Options.BasePort)

	mu      sync.Mutex
	applied map[string][]appliedRecord // by router name; guarded by mu
	changed chan struct{}              // closed and replaced on every append; guarded by mu
	cancels []func()
}

type appliedRecord struct {
	at  time.Time
	rec crdt.Record
}

// Start creates the PKI and starts every node. It returns once every node
// is ready and sees every other one, or ctx ends.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"us-east", "eu-west", "ap-southeast"}
	}
	if opts.RoutersPerRegion <= 0 {
		opts.RoutersPerRegion = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{Dir: opts.Dir, applied: make(map[string][]appliedRecord), changed: make(chan struct{})}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "certmesh-dev-"); err != nil {
			return nil, fmt.Errorf("devcluster: %w", err)
		}
		c.tempDir = true
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.PKIDir = filepath.Join(c.Dir, "pki")
	next := opts.BasePort
	c.addr = func() string {
		if opts.BasePort == 0 {
			return "127.0.0.1:0"
		}
		next++
		return fmt.Sprintf("127.0.0.1:%d", next-1)
	}
	var ctrlNames, routerNames []string
	for _, r := range opts.Regions {
		ctrlNames = append(ctrlNames, "ctrl-"+r)
		for i := 1; i <= opts.RoutersPerRegion; i++ {
			routerNames = append(routerNames, fmt.Sprintf("edge-%s-%d", r, i))
		}
	}
	if _, err := pki.Init(c.PKIDir, pki.InitOptions{Controllers: ctrlNames, Routers: routerNames, Now: time.Now(), Force: true}); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	if c.OIDC, err = devoidc.Start(c.addr(), devoidc.Config{Audience: "certmesh"}); err != nil {
		return nil, fmt.Errorf("devcluster: %w", err)
	}
	if err := c.startUpstream(); err != nil {
		return nil, err
	}

	// The first controller is every node's seed; the others join it.
	var seeds []string
	for i, r := range opts.Regions {
		cfg := c.controllerConfig(ctrlNames[i], r, seeds)
		ctrl, err := node.StartController(cfg, issuer.Options{Logger: opts.Logger, Auth: auth.Options{Logger: opts.Logger}})
		if err != nil {
			return nil, fmt.Errorf("devcluster: controller %s: %w", ctrlNames[i], err)
		}
		c.Controllers = append(c.Controllers, ctrl)
		if i == 0 {
			seeds = []string{ctrl.Mesh.Addr()}
		}
	}
	for i, name := range routerNames {
		region := opts.Regions[i/opts.RoutersPerRegion]
		r, err := node.StartRouter(c.routerConfig(name, region, seeds), opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("devcluster: router %s: %w", name, err)
		}
		c.Routers = append(c.Routers, r)
		name := name
		c.cancels = append(c.cancels, r.Mesh.Subscribe(func(recs []crdt.Record) {
			now := time.Now()
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, rec := range recs {
				c.applied[name] = append(c.applied[name], appliedRecord{now, rec})
			}
			close(c.changed)
			c.changed = make(chan struct{})
		}))
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) controllerConfig(name, region string, seeds []string) config.Controller {
	cfg := config.DefaultController()
	c.nodeSettings(name, region, seeds, &cfg.Node, &cfg.Mesh, &cfg.PKI)
	cfg.API.Listen = c.addr()
	cfg.API.RateLimit = 0 // the walk and a person trying things share one IP
	cfg.Metrics.Listen = c.addr()
	cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: c.OIDC.URL(), Audience: "certmesh", IdentityClaim: "sub"}}
	return cfg
}

func (c *Cluster) routerConfig(name, region string, seeds []string) config.Router {
	cfg := config.DefaultRouter()
	c.nodeSettings(name, region, seeds, &cfg.Node, &cfg.Mesh, &cfg.PKI)
	cfg.Listen = c.addr()
	cfg.Upstream = c.Upstream
	cfg.Metrics.Listen = c.addr()
	return cfg
}

// nodeSettings fills what every node of the cluster sets alike: its data
// directory, loopback mesh joined to seeds, and its pki init files.
func (c *Cluster) nodeSettings(name, region string, seeds []string, n *config.Node, m *config.Mesh, p *config.PKI) {
	n.Name, n.Region = name, region
	n.DataDir = filepath.Join(c.Dir, "data", name)
	m.Bind = c.addr()
	m.Join = seeds
	m.KeyFile = filepath.Join(c.PKIDir, pki.GossipKeyFile)
	m.JoinTimeout = 2 * time.Second
	p.CA = filepath.Join(c.PKIDir, pki.CACertFile)
	p.Cert = filepath.Join(c.PKIDir, name, pki.CertFile)
	p.Key = filepath.Join(c.PKIDir, name, pki.KeyFile)
}

// startUpstream serves an HTTP echo: what a client admitted through a
// router reaches.
func (c *Cluster) startUpstream() error {
	l, err := net.Listen("tcp", c.addr())
	if err != nil {
		return fmt.Errorf("devcluster: upstream: %w", err)
	}
	c.Upstream = l.Addr().String()
	c.upstream = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "hello from the certmesh dev upstream: %s %s\n", r.Method, r.URL.Path)
		}),
	}
	go c.upstream.Serve(l)
	return nil
}

// waitReady polls until every node is ready and sees every other node.
func (c *Cluster) waitReady(ctx context.Context) error {
	total := len(c.Controllers) + len(c.Routers)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var waiting []string
		for _, n := range c.Controllers {
			if seen := alive(n.Mesh.Members()); !n.Ready() || seen < total {
				waiting = append(waiting, fmt.Sprintf("%s (ready %v, sees %d of %d)", n.Mesh.Name(), n.Ready(), seen, total))
			}
		}
		for _, n := range c.Routers {
			if seen := alive(n.Mesh.Members()); !n.Ready() || seen < total {
				waiting = append(waiting, fmt.Sprintf("%s (ready %v, sees %d of %d)", n.Mesh.Name(), n.Ready(), seen, total))
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devcluster: nodes not ready within 30s: %s", strings.Join(waiting, ", "))
		case <-tick.C:
		}
	}
}

func alive(ms []mesh.MemberStatus) int {
	n := 0
	for _, m := range ms {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// PrintEndpoints writes every endpoint of the cluster to w.
func (c *Cluster) PrintEndpoints(w io.Writer) {
	fmt.Fprintf(w, "certmesh dev cluster in %s (FOR DEVELOPMENT ONLY)\n", c.Dir)
	fmt.Fprintf(w, "  oidc issuer  %s  (development issuer: mints tokens for anyone)\n", c.OIDC.URL())
	fmt.Fprintf(w, "  upstream     http://%s  (HTTP echo behind the routers)\n", c.Upstream)
	fmt.Fprintf(w, "  pki          %s  (ca.pem, admin/cert.pem, admin/key.pem)\n", c.PKIDir)
	for _, n := range c.Controllers {
		a := n.Author()
		fmt.Fprintf(w, "  controller %-18s api https://%s  metrics http://%s  mesh %s\n", a.Name, n.APIAddr(), n.MetricsAddr(), n.Mesh.Addr())
	}
	for _, r := range c.Routers {
		fmt.Fprintf(w, "  router     %-18s tls %s  metrics http://%s  mesh %s\n", r.Mesh.Name(), r.Addr(), r.MetricsAddr(), r.Mesh.Addr())
	}
}

// Close stops every node and removes a temporary directory.
func (c *Cluster) Close() {
	for _, cancel := range c.cancels {
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every node at once: each leave is then announced to peers that are
	// leaving too, so no node waits for another's (memberlist waits for a
	// leave's broadcast only while some member is alive), and Ctrl-C on
	// certmesh dev returns within a couple of seconds.
	var wg sync.WaitGroup
	for _, r := range c.Routers {
		wg.Add(1)
		go func() { defer wg.Done(); r.Close(ctx) }()
	}
	for _, n := range c.Controllers {
		wg.Add(1)
		go func() { defer wg.Done(); n.Close(ctx) }()
	}
	wg.Wait()
	if c.upstream != nil {
		c.upstream.Close()
	}
	if c.OIDC != nil {
		c.OIDC.Close()
	}
	if c.tempDir {
		os.RemoveAll(c.Dir)
	}
}
