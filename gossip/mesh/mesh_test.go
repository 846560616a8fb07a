package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// These tests run real memberlist over real loopback sockets. They poll
// conditions with a deadline; nothing sleeps to wait for convergence.

// fastMemberlist shortens memberlist's LAN timers so that joins and
// leaves spread within a test's patience, without declaring busy nodes
// dead.
func fastMemberlist(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond // generous: -race on a busy machine is slow
	mc.GossipInterval = 20 * time.Millisecond
	mc.TCPTimeout = 2 * time.Second
}

// testLogger discards logs unless CERTMESH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("CERTMESH_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func gossipKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// meshCluster is a handful of Mesh nodes with a real PKI.
type meshCluster struct {
	t       *testing.T
	pki     *trusttest.PKI
	key     []byte
	label   string
	addrs   map[string]string
	roles   map[string]gossip.Role
	regions map[string]string
	seeds   []string
	meshes  map[string]*Mesh
	authors map[string]*trusttest.Author
}

func newMeshCluster(t *testing.T, controllers map[string]string, routers map[string]string) *meshCluster {
	var cn, rn []string
	for n := range controllers {
		cn = append(cn, n)
	}
	for n := range routers {
		rn = append(rn, n)
	}
	slices.Sort(cn)
	c := &meshCluster{
		t: t, pki: trusttest.NewPKI(t, time.Now(), cn, rn), key: gossipKey(t), label: "certmesh-test",
		addrs: map[string]string{}, roles: map[string]gossip.Role{}, regions: map[string]string{},
		meshes: map[string]*Mesh{}, authors: map[string]*trusttest.Author{},
	}
	for n, r := range controllers {
		c.addrs[n], c.roles[n], c.regions[n] = testutil.FreeAddr(t), gossip.RoleController, r
	}
	for n, r := range routers {
		c.addrs[n], c.roles[n], c.regions[n] = testutil.FreeAddr(t), gossip.RoleRouter, r
	}
	for _, n := range cn {
		c.seeds = append(c.seeds, c.addrs[n]) // controllers list themselves: harmless
	}
	t.Cleanup(c.closeAll)
	return c
}

func (c *meshCluster) config(name string) Config {
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = name, c.roles[name], c.regions[name]
	core.HeldTTL = time.Second
	return Config{
		Core: core, Bind: c.addrs[name], Join: c.seeds, JoinTimeout: 300 * time.Millisecond,
		Keys: [][]byte{c.key}, Label: c.label, APIAddr: "127.0.0.1:8443",
		Logger: testLogger(), Memberlist: fastMemberlist, Auth: c.nodeAuth(name),
	}
}

// nodeAuth returns the NodeAuth of node name: with the identity the
// cluster's PKI issued it, if any (a node it did not is a key holder
// without one).
func (c *meshCluster) nodeAuth(name string) *gossip.NodeAuth {
	c.t.Helper()
	a, err := gossip.NewNodeAuth(c.pki.Root.Cert, trusttest.TrustDomain, name, c.roles[name])
	if err != nil {
		c.t.Fatal(err)
	}
	kp, ok := c.pki.Ctrl[name]
	if !ok {
		kp, ok = c.pki.Routers[name]
	}
	if ok {
		if err := a.SetIdentity(kp.Cert, kp.Key); err != nil {
			c.t.Fatal(err)
		}
	}
	return a
}

func (c *meshCluster) start(name string, edit func(*Config)) *Mesh {
	c.t.Helper()
	return c.startWith(name, edit, crdt.NewStore())
}

// startWith starts node name over store, which may hold records already
// (a router's snapshot).
func (c *meshCluster) startWith(name string, edit func(*Config), store *crdt.Store) *Mesh {
	c.t.Helper()
	cfg := c.config(name)
	if edit != nil {
		edit(&cfg)
	}
	v, err := trust.NewVerifier(c.pki.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		c.t.Fatal(err)
	}
	m, err := New(cfg, store, v)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	c.meshes[name] = m
	if kp, ok := c.pki.Ctrl[name]; ok && c.authors[name] == nil {
		c.authors[name] = trusttest.NewAuthor(c.t, name, kp.Key, m.Now)
	}
	return m
}

func (c *meshCluster) closeAll() {
	var wg sync.WaitGroup
	for _, m := range c.meshes {
		wg.Go(func() { m.Close() })
	}
	wg.Wait()
}

// publish writes n sessions (and first their signer record) at
// controller name.
func (c *meshCluster) publish(name string, n int) []crdt.Record {
	c.t.Helper()
	m, w := c.meshes[name], c.authors[name]
	var recs []crdt.Record
	if w.Seq == 0 {
		recs = append(recs, w.Signer(c.pki.Ctrl[name]))
	}
	for i := 0; i < n; i++ {
		s, cert := w.Session(time.Now())
		recs = append(recs, s, cert)
	}
	if err := m.Publish(recs); err != nil {
		c.t.Fatalf("publish at %s: %v", name, err)
	}
	return recs
}

type digest struct {
	len int
	d   uint64
}

func (m *Mesh) digest() digest {
	var d digest
	m.View(func(s *crdt.Store) { d = digest{s.Len(), s.Digest()} })
	return d
}

// converged waits until every named node holds want records and the same
// digest.
func (c *meshCluster) converged(t *testing.T, want int, names ...string) {
	t.Helper()
	ok := func() bool {
		first := c.meshes[names[0]].digest()
		if first.len != want {
			return false
		}
		for _, n := range names[1:] {
			if c.meshes[n].digest() != first {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, n := range names {
				fmt.Fprintf(&b, "\n%s: %+v %+v", n, c.meshes[n].digest(), c.meshes[n].Stats())
			}
			t.Fatalf("%v do not converge on %d records:%s", names, want, b.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func alive(m *Mesh) []string {
	var names []string
	for _, ms := range m.Members() {
		if ms.State == "alive" {
			names = append(names, ms.Name)
		}
	}
	return names
}

func TestMeshOverMemberlist(t *testing.T) {
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "west"},
		map[string]string{"r1": "east", "r2": "east", "r3": "west"})
	all := []string{"ctrl-a", "ctrl-b", "r1", "r2", "r3"}
	for _, n := range all {
		c.start(n, nil)
	}
	for _, n := range all {
		testutil.Eventually(t, 5*time.Second, n+" sees all five members alive", func() bool {
			return slices.Equal(alive(c.meshes[n]), all)
		})
		testutil.Eventually(t, 5*time.Second, n+" ready", c.meshes[n].Ready)
	}

	t.Run("every node converges", func(t *testing.T) {
		c.publish("ctrl-a", 10)
		c.publish("ctrl-b", 10)
		c.converged(t, 2*(1+20), all...)
		// The routers merged what they received and said so.
		var applied []crdt.Record
		var mu sync.Mutex
		cancel := c.meshes["r2"].Subscribe(func(recs []crdt.Record) {
			mu.Lock()
			applied = append(applied, recs...)
			mu.Unlock()
		})
		defer cancel()
		recs := c.publish("ctrl-b", 1)
		c.converged(t, 2*(1+20)+2, all...)
		// Subscribers are called after the loop has sent what the step
		// produced, so under load they can trail the store a little.
		testutil.Eventually(t, 5*time.Second, "r2's subscriber sees the new records", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(applied) == 2 && applied[0].Head().Dot() == recs[0].Head().Dot()
		})
	})

	t.Run("metrics", func(t *testing.T) {
		want := []string{
			`certmesh_records{kind="cert"} 21`,
			`certmesh_records{kind="signer"} 2`,
			`certmesh_members{role="router",region="east"} 2`,
			`certmesh_members{role="controller",region="west"} 1`,
			`certmesh_gossip_messages_total{type="push",dir="in"}`,
			`certmesh_gossip_bytes_total{dir="in"}`,
			`certmesh_sync_delay_seconds_bucket{le="+Inf"} 44`,
		}
		var out string
		testutil.Eventually(t, 5*time.Second, "metrics as expected", func() bool {
			var b bytes.Buffer
			c.meshes["r3"].WritePrometheus(&b)
			out = b.String()
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Logf("metrics lack %q", w)
					return false
				}
			}
			return true
		})
		ms := c.meshes["ctrl-a"].Members()
		if len(ms) != 5 || ms[0].Name != "ctrl-a" || ms[0].Role != "controller" || ms[4].Region != "west" {
			t.Errorf("members %+v", ms)
		}
	})

	t.Run("a crashed router restarted with an empty store catches up", func(t *testing.T) {
		c.meshes["r3"].shutdown(false) // a crash: no leave
		c.publish("ctrl-a", 5)
		c.publish("ctrl-b", 5)
		n := 2*(1+20) + 2 + 20
		c.converged(t, n, "ctrl-a", "ctrl-b", "r1", "r2")
		r3 := c.start("r3", nil)
		if r3.digest().len != 0 {
			t.Fatal("restarted router has records")
		}
		c.converged(t, n, all...)
		testutil.Eventually(t, 5*time.Second, "restarted r3 ready", r3.Ready)
		if !r3.Stats().Synced {
			t.Error("r3 ready without an exchange")
		}
		testutil.Eventually(t, 5*time.Second, "everyone sees r3 back", func() bool {
			for _, m := range c.meshes {
				if !slices.Contains(alive(m), "r3") {
					return false
				}
			}
			return true
		})
	})

	t.Run("want finds a record the push never brought", func(t *testing.T) {
		w, ctrl, r2 := c.authors["ctrl-a"], c.meshes["ctrl-a"], c.meshes["r2"]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var cert *crdt.CertRecord
		added := 0
		for attempt := 1; cert == nil; attempt++ {
			s, c0 := w.Session(time.Now())
			ctrl.View(func(st *crdt.Store) { // written but never pushed
				st.MergeVerified(s)
				st.MergeVerified(c0)
			})
			added += 2
			pulled := r2.Stats().Pulls["found"]
			res, err := r2.Want(ctx, c0.Serial, "ctrl-a")
			if err != nil || !res.Found {
				t.Fatalf("want: %+v, %v", res, err)
			}
			r2.View(func(st *crdt.Store) {
				if _, ok := st.Cert(c0.Serial); !ok {
					t.Error("found, but not in the store")
				}
			})
			switch {
			case r2.Stats().Pulls["found"] == pulled+1:
				cert = c0
			case attempt == 3:
				t.Fatal("anti-entropy brought the record before the pull three times in a row")
			}
		}
		res, err := r2.Want(ctx, crdt.Serial{0xde, 0xad}, "ctrl-a")
		if err != nil || res.Found || !res.Authoritative {
			t.Fatalf("want of a serial never issued: %+v, %v", res, err)
		}
		// Everyone else pulls it too, so that the state is one again.
		for _, n := range []string{"ctrl-b", "r1", "r3"} {
			if res, err := c.meshes[n].Want(ctx, cert.Serial, "ctrl-a"); err != nil || !res.Found {
				t.Fatalf("want at %s: %+v, %v", n, res, err)
			}
		}
		c.converged(t, 2*(1+20)+2+20+added, all...)
	})

	t.Run("forged records are ignored by everyone", func(t *testing.T) {
		honest := []string{"ctrl-a", "ctrl-b", "r2", "r3"}
		before := map[string]digest{}
		for _, n := range honest {
			before[n] = c.meshes[n].digest()
		}
		relayedBefore := c.meshes["r2"].Stats().MessagesOut["push"]
		rogue := c.meshes["r1"]
		router := c.pki.Routers["r1"]
		now := time.Now()
		// A record the router wrote and signed itself.
		own, _ := trusttest.NewAuthor(t, "r1", router.Key, rogue.Now).Session(now)
		// A controller's certificate altered, under a fresh dot.
		_, genuine := c.authors["ctrl-b"].Session(now)
		altered := *genuine
		altered.Identity = "mallory"
		altered.Seq += 100
		// The same alteration under the genuine dot, which everyone has.
		var held crdt.Record
		c.meshes["ctrl-a"].View(func(st *crdt.Store) {
			held = st.Get(crdt.Dot{Author: c.authors["ctrl-b"].Author, Seq: 3})
		})
		sameDot := *held.(*crdt.CertRecord)
		sameDot.Identity = "mallory"
		// A signer record for ctrl-b carrying the router's certificate.
		fakeSigner, err := trust.NewSignerRecord(c.pki.Ctrl["ctrl-b"].Cert, trusttest.TrustDomain)
		if err != nil {
			t.Fatal(err)
		}
		fakeSigner.Cert = router.Cert.Raw
		trusttest.NewAuthor(t, "ctrl-b", router.Key, rogue.Now).Sign(fakeSigner)
		fakeSigner.Seq = 500
		if err := crdt.Sign(fakeSigner, trust.RecordSigner{Key: router.Key}); err != nil {
			t.Fatal(err)
		}
		forged := &gossip.Message{Type: gossip.MsgPush, SentAt: crdt.MillisOf(now), Origin: "r1", Batch: 99, Region: "east",
			Records: []crdt.Record{own, &altered, &sameDot, fakeSigner}}
		var outs []gossip.Output
		for _, n := range honest {
			outs = append(outs, gossip.Output{To: n, Msg: forged})
		}
		rogue.send(outs)
		for _, n := range honest {
			m := c.meshes[n]
			testutil.Eventually(t, 5*time.Second, n+" refuses the forgeries", func() bool {
				r := m.Stats().Rejected
				return r["bad_signature"] >= 1 && r["bad_signer"] >= 1 && r["held_expired"] >= 1
			})
			if got := m.digest(); got != before[n] {
				t.Errorf("%s's state changed: %+v, was %+v", n, got, before[n])
			}
			m.View(func(st *crdt.Store) {
				if _, ok := st.Cert(altered.Serial); ok {
					t.Errorf("%s holds the altered certificate", n)
				}
			})
			if m.Stats().Held != 0 {
				t.Errorf("%s still holds the router's record", n)
			}
		}
		if c.meshes["r2"].Stats().MessagesOut["push"] != relayedBefore {
			t.Error("r2 relayed a forged push")
		}
	})

	t.Run("wrong key, wrong label and another protocol major are kept out", func(t *testing.T) {
		c.addrs["spy-key"], c.roles["spy-key"], c.regions["spy-key"] = testutil.FreeAddr(t), gossip.RoleRouter, "east"
		c.addrs["spy-label"], c.roles["spy-label"], c.regions["spy-label"] = testutil.FreeAddr(t), gossip.RoleRouter, "east"
		badKey := c.start("spy-key", func(cfg *Config) { cfg.Keys = [][]byte{gossipKey(t)} })
		badLabel := c.start("spy-label", func(cfg *Config) { cfg.Label = "other-cluster" })

		// A memberlist node that speaks certmesh 2.x.
		future := memberlist.DefaultLANConfig()
		fastMemberlist(future)
		future.Name, future.BindAddr, future.BindPort = "future", "127.0.0.1", 0
		future.Label, future.SecretKey = c.label, c.key
		future.Delegate = futureDelegate{}
		future.LogOutput = discard{}
		fml, err := memberlist.Create(future)
		if err != nil {
			t.Fatal(err)
		}
		defer fml.Shutdown()
		if _, err := fml.Join(c.seeds[:1]); err != nil {
			t.Fatal(err)
		}

		for _, spy := range []*Mesh{badKey, badLabel} {
			testutil.Eventually(t, 10*time.Second, spy.Name()+" retries joining", func() bool {
				return spy.Stats().JoinAttempts >= 3
			})
			if n := spy.Stats().AlivePeers; n != 0 {
				t.Errorf("%s has %d peers", spy.Name(), n)
			}
			// It can never exchange anything: never ready
			// (TestWrongKeyOrLabelIsNeverReady).
			if spy.Ready() {
				t.Errorf("%s is ready though its seeds refuse it", spy.Name())
			}
		}
		for _, n := range all {
			for _, ms := range c.meshes[n].Members() {
				if ms.Name == "spy-key" || ms.Name == "spy-label" || ms.Name == "future" {
					t.Errorf("%s lists %s as %s", n, ms.Name, ms.State)
				}
			}
		}
	})
}

// futureDelegate announces a protocol major this build does not speak.
type futureDelegate struct{}

func (futureDelegate) NodeMeta(int) []byte {
	b, _ := (&nodeMeta{Role: gossip.RoleRouter, Region: "east", Major: gossip.ProtocolMajor + 1}).encode()
	return b
}
func (futureDelegate) NotifyMsg([]byte)                {}
func (futureDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (futureDelegate) LocalState(bool) []byte          { return nil }
func (futureDelegate) MergeRemoteState([]byte, bool)   {}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestMeshLoneNodeIsReadyAfterJoinTimeout(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, nil)
	unreachable := testutil.FreeAddr(t) // nobody listens there
	m := c.start("ctrl-a", func(cfg *Config) { cfg.Join = []string{unreachable} })
	if m.Ready() {
		t.Fatal("ready before the join timeout")
	}
	testutil.Eventually(t, 3*time.Second, "lone node ready", m.Ready)
	if m.Stats().Synced {
		t.Error("synced with nobody")
	}
	// A node that lists only itself is ready at once.
	c.addrs["ctrl-b"], c.roles["ctrl-b"], c.regions["ctrl-b"] = testutil.FreeAddr(t), gossip.RoleController, "east"
	self := c.start("ctrl-b", func(cfg *Config) { cfg.Join = []string{cfg.Bind} })
	if !self.Ready() {
		t.Error("a node listing only itself is not ready")
	}
}

func TestMeshKeyRotation(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east"})
	a, r := c.start("ctrl-a", nil), c.start("r1", nil)
	testutil.Eventually(t, 5*time.Second, "joined", func() bool { return len(alive(r)) == 2 })
	next := gossipKey(t)
	// Rotation: install the new key everywhere, then use it, then drop
	// the old one.
	for _, m := range []*Mesh{a, r} {
		if err := m.SetKeys([][]byte{c.key, next}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*Mesh{a, r} {
		if err := m.SetKeys([][]byte{next}); err != nil {
			t.Fatal(err)
		}
	}
	c.publish("ctrl-a", 3)
	c.converged(t, 7, "ctrl-a", "r1")
	if got := a.keyring.GetKeys(); len(got) != 1 || !bytes.Equal(got[0], next) {
		t.Errorf("keyring after rotation: %d keys", len(got))
	}
	if err := a.SetKeys([][]byte{[]byte("short")}); err == nil {
		t.Error("SetKeys accepted a 5-byte key")
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	k16 := "MDEyMzQ1Njc4OWFiY2RlZg=="                     // 16 bytes
	keys, err := LoadKeyFile(write("ok", "# rotation in progress\n\n"+k32+"\n  "+k16+"  \n"))
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("keys %d, %v", len(keys), err)
	}
	for _, tt := range []struct{ name, content, want string }{
		{"empty", "# nothing\n", "no key"},
		{"garbage", k32 + "\nnot base64!\n", "line 2: not base64"},
		{"short", "c2hvcnQ=\n", "line 1: key of 5 bytes"},
		{"duplicate", k16 + "\n" + k16 + "\n", "line 2: duplicate"},
	} {
		p := write(tt.name, tt.content)
		_, err := LoadKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want one naming %s and saying %q", tt.name, err, p, tt.want)
		}
	}
	if _, err := LoadKeyFile(dir + "/missing"); err == nil {
		t.Error("missing file accepted")
	}
}

// shortDeadGossip makes memberlist give up on dead members at once, so
// only the mesh's own reconnects can heal what follows.
func shortDeadGossip(cfg *Config) {
	cfg.ReconnectInterval = 100 * time.Millisecond
	cfg.Memberlist = func(mc *memberlist.Config) {
		fastMemberlist(mc)
		mc.GossipToTheDeadTime = 50 * time.Millisecond
	}
}

// crash stops a node as a SIGKILL would: no leave is announced.
func (c *meshCluster) crash(name string) {
	c.t.Helper()
	if err := c.meshes[name].shutdown(false); err != nil {
		c.t.Fatal(err)
	}
	delete(c.meshes, name)
}

func sees(m *Mesh, names ...string) func() bool {
	return func() bool {
		up := alive(m)
		for _, n := range names {
			if !slices.Contains(up, n) {
				return false
			}
		}
		return true
	}
}

// Every controller restarts and comes back knowing no router (its seeds
// are the controllers): the routers, which still see each other, must
// rejoin it through their seeds, or the mesh stays split for good.
func TestMeshRoutersRejoinAfterEveryControllerRestarts(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"edge-1": "east", "edge-2": "west"})
	for _, n := range []string{"ctrl-a", "edge-1", "edge-2"} {
		c.start(n, shortDeadGossip)
	}
	c.publish("ctrl-a", 1)
	c.converged(t, 3, "ctrl-a", "edge-1", "edge-2")

	c.crash("ctrl-a")
	for _, n := range []string{"edge-1", "edge-2"} {
		testutil.Eventually(t, 10*time.Second, n+" sees ctrl-a dead", func() bool { return !sees(c.meshes[n], "ctrl-a")() })
	}
	ctrl := c.start("ctrl-a", func(cfg *Config) { shortDeadGossip(cfg); cfg.Join = nil })
	testutil.Eventually(t, 10*time.Second, "the restarted controller sees both routers", sees(ctrl, "edge-1", "edge-2"))
	for _, n := range []string{"edge-1", "edge-2"} {
		testutil.Eventually(t, 10*time.Second, n+" sees the restarted controller", sees(c.meshes[n], "ctrl-a"))
	}
	c.publish("ctrl-a", 1)
	c.converged(t, 5, "ctrl-a", "edge-1", "edge-2")
}

// A controller restarts with no seed that answers while another
// controller stays up: the nodes that saw it fail rejoin it at its last
// address.
func TestMeshReconnectsAFailedMember(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east", "ctrl-b": "west"}, map[string]string{"edge-1": "east"})
	seedB := func(cfg *Config) { shortDeadGossip(cfg); cfg.Join = []string{c.addrs["ctrl-b"]} }
	for _, n := range []string{"ctrl-b", "ctrl-a", "edge-1"} {
		c.start(n, seedB)
	}
	testutil.Eventually(t, 10*time.Second, "edge-1 sees both controllers", sees(c.meshes["edge-1"], "ctrl-a", "ctrl-b"))

	c.crash("ctrl-a")
	testutil.Eventually(t, 10*time.Second, "edge-1 sees ctrl-a dead", func() bool { return !sees(c.meshes["edge-1"], "ctrl-a")() })
	ctrl := c.start("ctrl-a", func(cfg *Config) { shortDeadGossip(cfg); cfg.Join = nil })
	testutil.Eventually(t, 10*time.Second, "the restarted controller rejoined", sees(ctrl, "ctrl-b", "edge-1"))
	c.publish("ctrl-a", 1)
	c.converged(t, 3, "ctrl-a", "ctrl-b", "edge-1")
}
