package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/node"
	"github.com/certmesh/certmesh/pki"
)

// TestMain checks that no test leaves a goroutine behind: every cluster,
// node and attacker is stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}

// testLogger discards logs unless CERTMESH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CERTMESH_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// cluster is a running devcluster with what the tests need to drive it.
type cluster struct {
	*devcluster.Cluster
	t     *testing.T
	roots *x509.CertPool
	root  pki.KeyPair
	admin tls.Certificate
	extra []*node.Controller // controllers started by the test
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	dc, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		// Seen once in a while with the CPU starved by other test
		// packages: a node misses the gossip about some joins and learns
		// of them only at memberlist's next push-pull (30 s), after
		// devcluster has given up. Not what these tests are about: try
		// once more.
		t.Logf("cluster start failed, retrying once: %v", err)
		dc, err = devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), Logger: testLogger()})
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{Cluster: dc, t: t}
	t.Cleanup(c.close)
	t.Logf("cluster of %d controllers and %d routers up in %v", len(dc.Controllers), len(dc.Routers), time.Since(start).Round(time.Millisecond))
	if c.root, err = pki.LoadKeyPair(filepath.Join(dc.PKIDir, pki.CACertFile), filepath.Join(dc.PKIDir, pki.CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	c.roots = x509.NewCertPool()
	c.roots.AddCert(c.root.Cert)
	dir := filepath.Join(dc.PKIDir, pki.DefaultAdmin)
	if c.admin, err = tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.KeyFile)); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range c.extra {
		n.Close(ctx)
	}
	c.Cluster.Close()
}

// meshes returns every node's mesh, controllers first.
func (c *cluster) meshes() []*mesh.Mesh {
	var ms []*mesh.Mesh
	for _, n := range c.Controllers {
		ms = append(ms, n.Mesh)
	}
	for _, n := range c.extra {
		ms = append(ms, n.Mesh)
	}
	for _, r := range c.Routers {
		ms = append(ms, r.Mesh)
	}
	return ms
}

func (c *cluster) routerMeshes() []*mesh.Mesh {
	var ms []*mesh.Mesh
	for _, r := range c.Routers {
		ms = append(ms, r.Mesh)
	}
	return ms
}

func (c *cluster) clientConfig(ctrl *node.Controller) client.Config {
	cfg := client.DefaultConfig()
	cfg.RootCAs = c.roots
	cfg.Controllers = []string{"https://" + ctrl.APIAddr()}
	cfg.HTTPTimeout = 5 * time.Second
	return cfg
}

// login logs sub in at ctrl.
func (c *cluster) login(ctx context.Context, ctrl *node.Controller, sub string) (*client.Session, error) {
	tok, err := c.OIDC.Mint(sub, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	return client.Login(ctx, c.clientConfig(ctrl), tok)
}

func (c *cluster) mustLogin(ctrl *node.Controller, sub string) *client.Session {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.login(ctx, ctrl, sub)
	if err != nil {
		c.t.Fatalf("login %s at %s: %v", sub, ctrl.Author().Name, err)
	}
	return s
}

// post sends a JSON body to a controller's API with the admin certificate.
func (c *cluster) post(ctrl *node.Controller, path string, body any) (int, api.ErrorBody, []byte) {
	c.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: c.roots, Certificates: []tls.Certificate{c.admin}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+ctrl.APIAddr()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	json.Unmarshal(data, &eb)
	return resp.StatusCode, eb, data
}

// connect dials router addr with s's certificate and makes one request
// through it.
func (c *cluster) connect(ctx context.Context, s *client.Session, addr string) (*devcluster.LiveConn, error) {
	cfg := client.DefaultConfig()
	cfg.RootCAs = c.roots
	cfg.Routers = []string{addr}
	return devcluster.Connect(ctx, cfg, s)
}

// hasCert reports whether m's store holds the certificate record serial.
func hasCert(m *mesh.Mesh, serial string) bool {
	s, err := crdt.ParseSerial(serial)
	if err != nil {
		return false
	}
	ok := false
	m.View(func(st *crdt.Store) { _, ok = st.Cert(s) })
	return ok
}

// memberWatch polls every node's view of the mesh and remembers any member
// seen in a state other than alive: "no node lost".
type memberWatch struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	lost []string // "observer sees member state", first sightings
	seen map[string]bool
}

func watchMembers(ms []*mesh.Mesh, want int) *memberWatch {
	w := &memberWatch{stop: make(chan struct{}), seen: map[string]bool{}}
	w.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, m := range ms {
				alive := 0
				for _, st := range m.Members() {
					if st.State == "alive" {
						alive++
						continue
					}
					w.note(fmt.Sprintf("%s sees %s %s", m.Name(), st.Name, st.State))
				}
				if alive < want {
					w.note(fmt.Sprintf("%s sees %d members alive, want %d", m.Name(), alive, want))
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	})
	return w
}

func (w *memberWatch) note(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen[s] {
		w.seen[s] = true
		w.lost = append(w.lost, time.Now().Format("15:04:05.000")+" "+s)
	}
}

// done stops the watch and returns what it saw.
func (w *memberWatch) done() []string {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// durations summarises samples as p50 and max.
func durations(ds []time.Duration) (p50, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)-1]
}

// startController starts one more controller in the cluster's PKI
// (pki add), joined to the first controller, with opts.
func (c *cluster) startController(name, region string, opts issuer.Options) *node.Controller {
	c.t.Helper()
	if _, err := pki.Add(c.PKIDir, pki.AddOptions{Controllers: []string{name}, Now: time.Now()}); err != nil {
		c.t.Fatal(err)
	}
	cfg := config.DefaultController()
	cfg.Node.Name, cfg.Node.Region = name, region
	cfg.Node.DataDir = filepath.Join(c.Dir, "data", name)
	cfg.Mesh.Bind = "127.0.0.1:0"
	cfg.Mesh.Join = []string{c.Controllers[0].Mesh.Addr()}
	cfg.Mesh.KeyFile = filepath.Join(c.PKIDir, pki.GossipKeyFile)
	cfg.Mesh.JoinTimeout = 2 * time.Second
	cfg.PKI.CA = filepath.Join(c.PKIDir, pki.CACertFile)
	cfg.PKI.Cert = filepath.Join(c.PKIDir, name, pki.CertFile)
	cfg.PKI.Key = filepath.Join(c.PKIDir, name, pki.KeyFile)
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.RateLimit = 0
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: c.OIDC.URL(), Audience: "certmesh", IdentityClaim: "sub"}}
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	n, err := node.StartController(cfg, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.extra = append(c.extra, n)
	return n
}
