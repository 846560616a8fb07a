package issuer

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
)

func fastMemberlist(mc *memberlist.Config) {
	mc.ProbeInterval = 100 * time.Millisecond
	mc.ProbeTimeout = 50 * time.Millisecond
	mc.GossipInterval = 20 * time.Millisecond
	mc.SuspicionMult = 2
	mc.TCPTimeout = 2 * time.Second
}

// meshNode is a controller on a real gossip mesh.
type meshNode struct {
	*env
	mesh *mesh.Mesh
}

// mockAddr is the address tr answers at in its MockNetwork.
func mockAddr(t *testing.T, tr *memberlist.MockTransport) string {
	t.Helper()
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// startMeshNode starts controller name of pkiDir, trusting oidc, on
// transport, an in-memory memberlist transport (memberlist.MockNetwork: no
// ports, no loopback traffic for the mesh), joining seeds.
func startMeshNode(t *testing.T, pkiDir, name, region string, transport memberlist.NodeAwareTransport, seeds []string, oidc *devoidc.Server, shared *env) *meshNode {
	t.Helper()
	cfg := baseConfig(t, pkiDir, name)
	cfg.Node.Region = region
	cfg.Mesh.Join = seeds
	cfg.Mesh.JoinTimeout = 300 * time.Millisecond
	cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: oidc.URL(), Audience: "certmesh"}}
	c, err := Open(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := mesh.LoadKeyFile(cfg.Mesh.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	mc := c.MeshConfig(keys)
	mc.Memberlist = fastMemberlist
	mc.Transport = transport
	m, err := c.NewMesh(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close(context.Background())
		m.Close()
	})
	if v, ok := c.tokens.Load().v.(*auth.Verifier); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, pkiDir: pkiDir, oidc: oidc, cfg: cfg, c: c, roots: shared.roots, admin: shared.admin, url: "https://" + c.APIAddr()}
	return &meshNode{env: e, mesh: m}
}

// verdictAt is the admission verdict of s's certificate at n now.
func (n *meshNode) verdictAt(s *session, issuer string) crdt.Verdict {
	f := facts(n.t, s.leaf, issuer)
	var v crdt.Verdict
	n.mesh.View(func(st *crdt.Store) { v = st.Admission(f, crdt.MillisOf(time.Now()), true) })
	return v
}

func (n *meshNode) digest() uint64 {
	var d uint64
	n.mesh.View(func(st *crdt.Store) { d = st.Digest() })
	return d
}

func TestTwoControllersOverMemberlist(t *testing.T) {
	if testing.Short() {
		t.Skip("real memberlist")
	}
	pkiDir := newPKI(t)
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oidc.Close() })
	shared := &env{t: t, roots: loadRoots(t, pkiDir)}
	shared.admin, err = tls.LoadX509KeyPair(filepath.Join(pkiDir, "admin", pki.CertFile), filepath.Join(pkiDir, "admin", pki.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var network memberlist.MockNetwork
	t1, t2 := network.NewTransport("c1"), network.NewTransport("c2")
	seeds := []string{mockAddr(t, t1), mockAddr(t, t2)}
	n1 := startMeshNode(t, pkiDir, "c1", "us-east", t1, seeds, oidc, shared)
	n2 := startMeshNode(t, pkiDir, "c2", "eu-west", t2, seeds, oidc, shared)

	// Each must also have a clock sample from the other (a proven sync
	// request), or it refuses writes with clock_skew for up to
	// clockgate.FirstSampleWait.
	testutil.Eventually(t, 20*time.Second, "both controllers to know each other's signer and clock", func() bool {
		ok := true
		n1.mesh.View(func(st *crdt.Store) { ok = ok && len(st.Signers("c2")) == 1 })
		n2.mesh.View(func(st *crdt.Store) { ok = ok && len(st.Signers("c1")) == 1 })
		_, sampled1 := n1.mesh.ClockOffset()
		_, sampled2 := n2.mesh.ClockOffset()
		return ok && sampled1 && sampled2 && n1.c.Ready() && n2.c.Ready()
	})

	// A session issued at c1 reaches c2.
	s := n1.login("alice")
	testutil.Eventually(t, 10*time.Second, "c2 to learn alice's session", func() bool { return n2.verdictAt(s, "c1") == crdt.Admit })

	// c2 rotates it: it verifies c1's certificate and knows the session.
	s2, r := n2.rotate(s)
	if s2 == nil {
		t.Fatalf("rotation at c2 of a c1 session: %d %s", r.status, r.body)
	}
	if err := s2.leaf.CheckSignatureFrom(mustParse(t, s2.cert.Certificate[1])); err != nil || s2.SessionID != s.SessionID {
		t.Fatalf("rotated certificate: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "c1 to learn the rotation", func() bool { return n1.verdictAt(s2, "c2") == crdt.Admit })

	// Revoked at c2, refused at both.
	if r := n2.revoke(api.RevocationRequest{SessionID: s.SessionID}); r.status != http.StatusAccepted {
		t.Fatalf("revoke at c2: %d %s", r.status, r.body)
	}
	testutil.Eventually(t, 10*time.Second, "c1 to apply c2's revocation", func() bool {
		return n1.verdictAt(s, "c1") == crdt.SessionRevoked && n1.verdictAt(s2, "c2") == crdt.SessionRevoked
	})
	if v := n2.verdictAt(s, "c1"); v != crdt.SessionRevoked {
		t.Errorf("at c2: %v", v)
	}
	if _, r := n1.rotate(s2); r.status != http.StatusForbidden {
		t.Errorf("rotation at c1 after the revocation at c2: %d %s", r.status, r.body)
	}

	// A session issued at c2 logged out at c1; an identity revoked at c1.
	b := n2.login("bob")
	testutil.Eventually(t, 10*time.Second, "c1 to learn bob's session", func() bool { return n1.verdictAt(b, "c2") == crdt.Admit })
	if r := do(t, n1.client(b.cert), "DELETE", n1.url+"/v1/sessions/current", nil); r.status != http.StatusNoContent {
		t.Fatalf("logout at c1: %d %s", r.status, r.body)
	}
	carol := n2.login("carol")
	n1.revoke(api.RevocationRequest{Identity: "carol"})
	testutil.Eventually(t, 10*time.Second, "both to agree", func() bool {
		return n2.verdictAt(b, "c2") == crdt.SessionRevoked && n2.verdictAt(carol, "c2") == crdt.IdentityRevoked &&
			n1.digest() == n2.digest()
	})

	// Each persisted what it received: c2 restarts and still knows c1's
	// records.
	var want uint64
	n1.mesh.View(func(st *crdt.Store) { want = st.VersionVector()[n1.c.Author()] })
	if err := n2.c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n2.mesh.Close()
	c, err := Open(n2.cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if got := c.Store().VersionVector()[n1.c.Author()]; got != want {
		t.Errorf("c2 reloaded c1's records up to %d, want %d", got, want)
	}
	if v := c.Store().Admission(facts(t, s.leaf, "c1"), crdt.MillisOf(time.Now()), true); v != crdt.SessionRevoked {
		t.Errorf("c2 after restart: %v", v)
	}
}

// mesh.eager_trees reaches the gossip core: 1 makes the second region
// tree lazy, the default keeps both eager.
func TestMeshConfigCarriesEagerTrees(t *testing.T) {
	if got := newEnv(t).c.MeshConfig(nil).Core.EagerTrees; got != 2 {
		t.Errorf("default: core gets %d eager trees, want 2", got)
	}
	lazy := newEnv(t, func(cfg *config.Controller) { cfg.Mesh.EagerTrees = 1 })
	if got := lazy.c.MeshConfig(nil).Core.EagerTrees; got != 1 {
		t.Errorf("mesh.eager_trees 1: core gets %d eager trees", got)
	}
}
