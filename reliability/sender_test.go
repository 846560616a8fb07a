package reliability

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
)

// framer is a holder of the gossip key with no node identity: a bare
// memberlist instance with the cluster's keyring and label, that writes
// certmesh frames under any name it likes straight to a node's gossip
// port. memberlist hands a user message to certmesh whether or not its
// sender is a member.
type framer struct {
	ml *memberlist.Memberlist
}

func (c *cluster) newFramer(t *testing.T) *framer {
	t.Helper()
	keys, err := mesh.LoadKeyFile(filepath.Join(c.PKIDir, pki.GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "framer", "127.0.0.1", 0
	mc.Label = mesh.DefaultLabel
	if mc.Keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
		t.Fatal(err)
	}
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return &framer{ml: ml}
}

// send sends a frame of m, claiming to come from name, to the mesh at addr.
func (f *framer) send(t *testing.T, addr, name string, m *gossip.Message) {
	t.Helper()
	b, err := gossip.EncodeFrame(name, m)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	if err := f.ml.SendReliable(&memberlist.Node{Name: name, Addr: net.ParseIP(host), Port: uint16(p)}, b); err != nil {
		t.Fatal(err)
	}
}

// TestForgedSenderNames: a holder of the gossip key writes frames under
// 40 made-up names, and under every real member's name, with clocks an
// hour behind, to every controller, round after round (issue 13, item 2:
// this once moved every controller's clock estimate to an hour, and every
// login and revocation got 503 clock_skew for as long as it lasted and
// 20 s after). A second key holder has joined as a member that never
// proves who it is. Every controller's estimate stays near zero, and
// every controller keeps issuing; the clients connect through every
// router.
//
//	go test -race ./reliability/ -run TestForgedSenderNames -v
func TestForgedSenderNames(t *testing.T) {
	c := startCluster(t)
	c.rogueNode(t) // a silent member
	f := c.newFramer(t)
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("made-up-%d", i))
	}
	for _, m := range c.meshes() {
		if m.Name() != "rogue" {
			names = append(names, m.Name())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const rounds = 5
	for round := range rounds {
		hourAgo := crdt.MillisOf(time.Now().Add(-time.Hour))
		syncsBefore := map[string]uint64{}
		for _, ctrl := range c.Controllers {
			syncsBefore[ctrl.Mesh.Name()] = ctrl.Mesh.Stats().MessagesIn["sync_req"]
		}
		for _, ctrl := range c.Controllers {
			addr := ctrl.Mesh.Addr()
			for i, name := range names {
				if name == ctrl.Mesh.Name() {
					continue
				}
				for _, m := range []*gossip.Message{
					{Type: gossip.MsgSyncReq, SentAt: hourAgo, Context: crdt.Context{}},
					{Type: gossip.MsgRepairReq, SentAt: hourAgo, Repair: crdt.Interval{Author: ctrl.Author(), From: 0, To: 1}},
					{Type: gossip.MsgWantReq, SentAt: hourAgo, WantID: uint64(i), Serial: crdt.Serial{byte(i)}},
					{Type: gossip.MsgDelta, SentAt: hourAgo, Context: crdt.Context{}},
				} {
					f.send(t, addr, name, m)
				}
			}
		}
		// Every controller keeps its estimate and keeps issuing, during
		// the attack.
		for _, ctrl := range c.Controllers {
			testutil.Eventually(t, 30*time.Second, ctrl.Mesh.Name()+" handles the frames", func() bool {
				return ctrl.Mesh.Stats().MessagesIn["sync_req"] >= syncsBefore[ctrl.Mesh.Name()]+uint64(len(names)-1)
			})
			off, ok := ctrl.Mesh.ClockOffset()
			if !ok || off > 2*time.Second || off < -2*time.Second {
				t.Errorf("round %d: %s estimates its clock %v off (%v)", round, ctrl.Author().Name, off, ok)
			}
			if code := c.probeClock(ctrl); code != "token_invalid" {
				t.Errorf("round %d: %s answers a write with %q", round, ctrl.Author().Name, code)
			}
		}
	}
	for _, ctrl := range c.Controllers {
		s := c.mustLogin(ctrl, "after-"+ctrl.Author().Name)
		for _, r := range c.Routers {
			conn, err := c.connect(ctx, s, r.Addr().String())
			if err != nil {
				t.Errorf("a client of %s refused at %s: %v", ctrl.Author().Name, r.Mesh.Name(), err)
				continue
			}
			conn.Close()
		}
	}
	for _, ctrl := range c.Controllers {
		st := ctrl.Mesh.Stats()
		t.Logf("%s: offset estimate %v, %d sync requests in", ctrl.Author().Name, func() time.Duration { d, _ := ctrl.Mesh.ClockOffset(); return d }(), st.MessagesIn["sync_req"])
	}
}
