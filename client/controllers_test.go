package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router/routertest"
)

// The SDK's tests talk to real controllers (issuer.Controller: its API
// handler, its bbolt store, its writer) on an in-memory mesh, so that what
// they check is what a controller answers. The router tests cannot do this
// (router never depends on issuer, router/deps_test.go); the client's may.

// testPKI makes a PKI as `certmesh pki init` lays it out under a temporary
// directory, with the named controllers, the router edge-1 and the admin,
// and returns the directory and the same key pairs for routertest.
func testPKI(t *testing.T, controllers ...string) (string, *routertest.PKI) {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Init(dir, pki.InitOptions{Controllers: controllers, Routers: []string{"edge-1"}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	load := func(name string) pki.KeyPair {
		certFile, keyFile := filepath.Join(dir, name, pki.CertFile), filepath.Join(dir, name, pki.KeyFile)
		if name == "" {
			certFile, keyFile = filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile)
		}
		kp, err := pki.LoadKeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	p := &routertest.PKI{Root: load(""), Controllers: make(map[string]pki.KeyPair), Router: load("edge-1"), Admin: load(pki.DefaultAdmin)}
	for _, name := range controllers {
		p.Controllers[name] = load(name)
	}
	return dir, p
}

// bus is an in-memory mesh: what a controller publishes reaches every
// member's store at once, verified against the controllers' keys, as
// gossip would bring it. A stopped controller's store still receives.
type bus struct {
	mu      sync.Mutex
	members []*routertest.Mesh
}

func (b *bus) join(m *routertest.Mesh) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members = append(b.members, m)
}

func (b *bus) publish(recs []crdt.Record) error {
	b.mu.Lock()
	members := slices.Clone(b.members)
	b.mu.Unlock()
	for _, m := range members {
		if err := m.Publish(recs...); err != nil {
			return err
		}
	}
	return nil
}

// ctrlMesh is a controller's issuer.Mesh on the bus: a routertest.Mesh
// over the controller's store, with a hybrid clock, whose peers are always
// heard and agree on the time.
type ctrlMesh struct {
	*routertest.Mesh
	bus *bus

	mu    sync.Mutex
	clock *crdt.Clock
}

var _ issuer.Mesh = (*ctrlMesh)(nil)

func (m *ctrlMesh) Publish(recs []crdt.Record) error { return m.bus.publish(recs) }

func (m *ctrlMesh) Now() crdt.Timestamp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock.Now(time.Now())
}

func (m *ctrlMesh) Members() []issuer.Member           { return nil }
func (m *ctrlMesh) BatchSigning() bool                 { return true }
func (m *ctrlMesh) ClockOffset() (time.Duration, bool) { return 0, true }
func (m *ctrlMesh) SetKeys(keys [][]byte) error        { return nil }

// testTokens accepts "token:<identity>", which never expires, and
// expiringToken's "token:<identity>;exp=<unix ms>", and refuses anything
// else as auth.CodeTokenInvalid, as an OIDC verifier refuses garbage.
type testTokens struct{}

func (testTokens) Verify(_ context.Context, raw string) (auth.Identity, error) {
	rest, ok := strings.CutPrefix(raw, "token:")
	id, exp, expiring := strings.Cut(rest, ";exp=")
	if !ok || id == "" {
		return auth.Identity{}, &auth.Error{Code: auth.CodeTokenInvalid, Msg: "not a test token", Err: errors.New("no token: prefix")}
	}
	var expiry time.Time
	if expiring {
		ms, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			return auth.Identity{}, &auth.Error{Code: auth.CodeTokenInvalid, Msg: "bad exp", Err: err}
		}
		expiry = time.UnixMilli(ms)
		if !time.Now().Before(expiry) {
			return auth.Identity{}, &auth.Error{Code: auth.CodeTokenExpired, Msg: "token expired", Err: errors.New("exp has passed")}
		}
	}
	return auth.Identity{ID: id, Subject: id, Method: "test", Expiry: expiry}, nil
}

// expiringToken is a test token for identity that expires at exp (to the
// millisecond, as a session's end is kept).
func expiringToken(identity string, exp time.Time) string {
	return "token:" + identity + ";exp=" + strconv.FormatInt(exp.UnixMilli(), 10)
}

// controller is one real controller of a test and the URL of its API.
type controller struct {
	*issuer.Controller
	URL  string
	mesh *ctrlMesh
}

// startControllers opens the named controllers of the PKI in pkiDir, with
// the test's defaults changed by tune, joins their meshes to b and starts
// them.
func startControllers(t *testing.T, pkiDir string, v crdt.Verifier, b *bus, tune func(*config.Controller), names ...string) []*controller {
	t.Helper()
	var out []*controller
	for _, name := range names {
		cfg := config.DefaultController()
		cfg.Node.Name = name
		cfg.Node.DataDir = filepath.Join(t.TempDir(), name)
		cfg.Mesh.KeyFile = filepath.Join(pkiDir, pki.GossipKeyFile)
		cfg.PKI.CA = filepath.Join(pkiDir, pki.CACertFile)
		cfg.PKI.Cert = filepath.Join(pkiDir, name, pki.CertFile)
		cfg.PKI.Key = filepath.Join(pkiDir, name, pki.KeyFile)
		cfg.API.Listen = "127.0.0.1:0"
		cfg.API.RateLimit = 0
		cfg.Metrics.Listen = ""
		// Never asked: testTokens verifies the tokens.
		cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: "https://127.0.0.1:1", Audience: "certmesh"}}
		tune(&cfg)
		c, err := issuer.Open(cfg, issuer.Options{Tokens: testTokens{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		m := &ctrlMesh{Mesh: routertest.NewMesh(v, c.Store()), bus: b, clock: crdt.NewClock(0)}
		b.join(m.Mesh)
		out = append(out, &controller{Controller: c, mesh: m})
	}
	for _, c := range out {
		if err := c.Start(c.mesh); err != nil {
			t.Fatal(err)
		}
		c.URL = "https://" + c.APIAddr()
	}
	return out
}

// stop takes the controller down: its API no longer answers.
func (c *controller) stop(t *testing.T) {
	t.Helper()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
