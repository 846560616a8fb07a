package router

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/router/routertest"
	"github.com/certmesh/certmesh/trust"
)

// Tests over real gossip meshes (hashicorp/memberlist on loopback).

var _ Mesh = (*mesh.Mesh)(nil)

// startMesh starts a real mesh node. Anti-entropy is slowed to an hour, so
// that records reach a node only by push or by pull: a node that was not
// in the mesh when a record was pushed has to pull it.
func startMesh(t *testing.T, p *routertest.PKI, name string, role gossip.Role, region string, join []string, slow time.Duration) (*mesh.Mesh, *slowGossip) {
	t.Helper()
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = name, role, region
	core.AntiEntropyInterval = time.Hour
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, routertest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	bind := testutil.FreeAddr(t)
	var tr *slowGossip
	var transport memberlist.NodeAwareTransport
	if slow > 0 {
		tr = newSlowGossip(t, bind, slow)
		transport = tr
	}
	m, err := mesh.New(mesh.Config{
		Core: core, Bind: bind, Join: join, Transport: transport, JoinTimeout: 300 * time.Millisecond, Label: "router-test",
		Logger: testLogger(t),
		Memberlist: func(mc *memberlist.Config) {
			mc.ProbeInterval = 200 * time.Millisecond
			mc.ProbeTimeout = 150 * time.Millisecond
			mc.GossipInterval = 20 * time.Millisecond
			mc.PushPullInterval = 0      // no periodic state sync (it carries an anti-entropy exchange)
			mc.EnableCompression = false // so that slowGossip can read the packets
		},
	}, store, v)
	if err != nil {
		t.Fatal(err)
	}
	return m, tr
}

// slowGossip is a memberlist transport that delays every received packet
// carrying records by gossip (pushes, repairs, anti-entropy) by Delay;
// pulls and their answers, membership probes and streams pass at once.
// Fault injection for tests.
type slowGossip struct {
	*memberlist.NetTransport
	Delay   time.Duration
	out     chan *memberlist.Packet
	stop    chan struct{}
	done    sync.WaitGroup // the forwarder and the delayed deliveries
	delayed atomic.Int64
}

func newSlowGossip(t *testing.T, bind string, delay time.Duration) *slowGossip {
	host, port, _ := net.SplitHostPort(bind)
	p, _ := strconv.Atoi(port)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: p,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	s := &slowGossip{NetTransport: nt, Delay: delay, out: make(chan *memberlist.Packet), stop: make(chan struct{})}
	s.done.Add(1)
	go s.forward()
	return s
}

func (s *slowGossip) PacketCh() <-chan *memberlist.Packet { return s.out }

func (s *slowGossip) Shutdown() error {
	err := s.NetTransport.Shutdown()
	close(s.stop)
	s.done.Wait()
	return err
}

func (s *slowGossip) forward() {
	defer s.done.Done()
	for {
		select {
		case p := <-s.NetTransport.PacketCh():
			if !carriesGossip(p.Buf) {
				s.deliver(p)
				continue
			}
			s.delayed.Add(1)
			s.done.Add(1)
			time.AfterFunc(s.Delay, func() {
				defer s.done.Done()
				s.deliver(p)
			})
		case <-s.stop:
			return
		}
	}
}

func (s *slowGossip) deliver(p *memberlist.Packet) {
	select {
	case s.out <- p:
	case <-s.stop:
	}
}

// carriesGossip reports whether a raw memberlist packet is a user message
// (after the label and CRC headers) holding a gossip message other than a
// pull's.
func carriesGossip(b []byte) bool {
	const hasLabelMsg, hasCrcMsg, userMsg = 244, 12, 8
	if len(b) > 2 && b[0] == hasLabelMsg {
		b = b[min(len(b), 2+int(b[1])):]
	}
	if len(b) > 5 && b[0] == hasCrcMsg {
		b = b[5:]
	}
	if len(b) < 2 || b[0] != userMsg {
		return false
	}
	_, m, err := gossip.DecodeFrame(bytes.Clone(b[1:]))
	return err == nil && m.Type != gossip.MsgWantReq && m.Type != gossip.MsgWantResp
}

func alive(m *mesh.Mesh, name string) bool {
	for _, ms := range m.Members() {
		if ms.Name == name && ms.State == "alive" {
			return true
		}
	}
	return false
}

func TestRealMeshClientRightAfterLoginIsAdmittedByPullAndRevocationAtAnotherControllerClosesIt(t *testing.T) {
	p := routertest.NewPKI(t, "ctrl-a", "ctrl-b")
	ctrlA, ctrlB := p.Controller("ctrl-a"), p.Controller("ctrl-b")
	const gossipDelay = 3 * time.Second
	meshA, _ := startMesh(t, p, "ctrl-a", gossip.RoleController, "us-east", nil, 0)
	t.Cleanup(func() { meshA.Close() })
	// The signer record is large enough to travel over a stream, which is
	// not delayed: it goes first, and the router learns it when it joins.
	must(t, meshA.Publish(ctrlA.Signer()))
	meshR, slow := startMesh(t, p, "edge-1", gossip.RoleRouter, "eu-west", []string{meshA.Addr()}, gossipDelay)
	testutil.Eventually(t, 10*time.Second, "the router to see controller A", func() bool { return alive(meshR, "ctrl-a") && alive(meshA, "edge-1") })
	testutil.Eventually(t, 10*time.Second, "the router to learn controller A's signer", func() bool {
		var n int
		meshR.View(func(s *crdt.Store) { n = len(s.Signers("ctrl-a")) })
		return n == 1
	})
	echo := routertest.NewEchoServer(t)
	cfg := DefaultConfig()
	cfg.Name, cfg.Region, cfg.Listen, cfg.Upstream, cfg.DrainTimeout = "edge-1", "eu-west", "127.0.0.1:0", echo.Addr(), time.Second
	r, err := New(cfg, meshR, routerCreds(p), Options{Logger: testLogger(t)})
	must(t, err)
	must(t, r.Start())
	t.Cleanup(func() { r.Shutdown(context.Background()) })

	// Controller A writes a login; gossip takes gossipDelay to bring it to
	// the router, and the client connects at once.
	alice, recs := ctrlA.Login("alice", time.Hour)
	must(t, meshA.Publish(recs))
	start := time.Now()
	live := dial(t, r.Addr().String(), p.RootPool(), alice.TLS(true))
	mustRoundTrip(t, live, "admitted by pull")
	took := time.Since(start)
	if took >= gossipDelay {
		t.Fatalf("admitted after %v: waited for gossip, not a pull", took)
	}
	if n := r.opts.Metrics.GetOrCreateCounter(`certmesh_pull_total{result="found"}`).Get(); n != 1 {
		var buf bytes.Buffer
		meshR.WritePrometheus(&buf)
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "messages_total") || strings.Contains(l, "pull") {
				t.Log(l)
			}
		}
		t.Errorf("pulls found = %d, want 1", n)
	}
	if slow.delayed.Load() == 0 {
		t.Error("no gossip message was delayed: the test did not exercise the pull")
	}
	t.Logf("admitted by a pull %v after login, gossip delayed by %v", took, gossipDelay)

	// Controller B joins and revokes the session: the push closes the live
	// connection, and new connections are refused.
	meshB, _ := startMesh(t, p, "ctrl-b", gossip.RoleController, "ap-southeast", []string{meshA.Addr(), meshR.Addr()}, 0)
	t.Cleanup(func() { meshB.Close() })
	testutil.Eventually(t, 10*time.Second, "controller B to see the router", func() bool { return alive(meshB, "edge-1") })
	must(t, meshB.Publish(append(ctrlB.Signer(), ctrlB.RevokeSession(alice.Session)...)))
	expectClosed(t, live, gossipDelay+5*time.Second)
	expectRefused(t, dial(t, r.Addr().String(), p.RootPool(), alice.TLS(true)))
	// The handler counts the close once its proxy has returned, which may
	// be after the client saw it.
	closed := r.opts.Metrics.GetOrCreateCounter(`certmesh_connections_closed_total{reason="session_revoked"}`)
	testutil.Eventually(t, 5*time.Second, "one close counted as session_revoked", func() bool { return closed.Get() == 1 })
}
