package reliability

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/node"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// refuseAll is the verifier of the rogue node below: it merges nothing it
// receives, so that what it publishes is exactly what the test gives it.
type refuseAll struct{}

func (refuseAll) Verify(crdt.Record, []byte) error { return errors.New("rogue: not listening") }

// rogueNode is a node that holds the gossip key and a stolen controller
// key: it publishes whatever records it is given, under any author.
func (c *cluster) rogueNode(t *testing.T) *mesh.Mesh {
	t.Helper()
	keys, err := mesh.LoadKeyFile(filepath.Join(c.PKIDir, pki.GossipKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = "rogue", gossip.RoleController, "us-east"
	m, err := mesh.New(mesh.Config{Core: core, Bind: "127.0.0.1:0", Join: []string{c.Controllers[0].Mesh.Addr()},
		Keys: keys, Logger: testLogger()}, crdt.NewStore(), refuseAll{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, o := range c.meshes() {
		testutil.Eventually(t, 10*time.Second, o.Name()+" hears the rogue", func() bool {
			for _, ms := range o.Members() {
				if ms.Name == "rogue" && ms.State == "alive" {
					return true
				}
			}
			return false
		})
	}
	return m
}

// signAs signs records as controller ctrl with its (stolen) key, from
// seq on, at HLC now.
func (c *cluster) signAs(t *testing.T, ctrl *node.Controller, seq uint64, recs ...crdt.Record) []crdt.Record {
	t.Helper()
	return c.signAsAt(t, ctrl, seq, time.Now(), recs...)
}

// signAsAt is signAs with the HLC at, as a thief backdating records would.
func (c *cluster) signAsAt(t *testing.T, ctrl *node.Controller, seq uint64, at time.Time, recs ...crdt.Record) []crdt.Record {
	t.Helper()
	name := ctrl.Author().Name
	kp, err := pki.LoadKeyPair(filepath.Join(c.PKIDir, name, pki.CertFile), filepath.Join(c.PKIDir, name, pki.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	clock := crdt.NewClock(0)
	for i, r := range recs {
		*r.Head() = crdt.Header{Author: ctrl.Author(), Seq: seq + uint64(i), HLC: clock.Now(at)}
		if err := crdt.Sign(r, trust.RecordSigner{Key: kp.Key}); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// publishRefused publishes recs from the rogue and waits until at least 3
// of the honest nodes refused every one for reason (the nodes it reaches:
// refused records are not relayed), then until every honest node covers
// their dots (the others learn by anti-entropy that there is nothing to
// wait for). before holds each node's count for reason beforehand.
func publishRefused(t *testing.T, rogue *mesh.Mesh, others []*mesh.Mesh, recs []crdt.Record, before map[string]uint64, reason, what string) {
	t.Helper()
	if err := rogue.Publish(recs); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, what, func() bool {
		n := 0
		for _, m := range others {
			if m.Stats().Rejected[reason] >= before[m.Name()]+uint64(len(recs)) {
				n++
			}
		}
		return n >= 3
	})
	for _, m := range others {
		waitCovered(t, m, recs)
	}
}

// waitCovered waits until m covers the dots of recs, refused or not: a
// refused record must not leave a gap that m waits on.
func waitCovered(t *testing.T, m *mesh.Mesh, recs []crdt.Record) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, m.Name()+" covers the refused dots", func() bool {
		covered := true
		m.View(func(st *crdt.Store) {
			for _, r := range recs {
				covered = covered && st.Has(r.Head().Dot())
			}
		})
		return covered
	})
}

func rejected(ms []*mesh.Mesh, reason string) map[string]uint64 {
	out := map[string]uint64{}
	for _, m := range ms {
		out[m.Name()] = m.Stats().Rejected[reason]
	}
	return out
}

// TestCompromisedController takes a controller's key as stolen. It cannot
// revoke another controller, neither through the API nor by gossip. Then
// `certmesh pki revoke-controller` (a root-signed revocation submitted at
// another controller) makes every node refuse the certificates it issued,
// closes its clients' live connections, and refuses whatever its key signs
// later; the other controllers' clients are untouched.
//
//	go test -race ./reliability/ -run TestCompromisedController -v
func TestCompromisedController(t *testing.T) {
	c := startCluster(t)
	honest, bad := c.Controllers[0], c.Controllers[2] // ctrl-us-east, ctrl-ap-southeast
	badName := bad.Author().Name
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A client of each, connected through routers of two regions.
	victim := c.mustLogin(bad, "victim")
	bystander := c.mustLogin(honest, "bystander")
	var victimConns, bystanderConns []*devcluster.LiveConn
	for _, r := range []int{0, 2} {
		addr := c.Routers[r].Addr().String()
		vc, err := c.connect(ctx, victim, addr)
		if err != nil {
			t.Fatalf("victim connects via %s: %v", c.Routers[r].Mesh.Name(), err)
		}
		defer vc.Close()
		victimConns = append(victimConns, vc)
		bc, err := c.connect(ctx, bystander, addr)
		if err != nil {
			t.Fatalf("bystander connects via %s: %v", c.Routers[r].Mesh.Name(), err)
		}
		defer bc.Close()
		bystanderConns = append(bystanderConns, bc)
	}
	rogue := c.rogueNode(t)
	// stolen hands out the seqs the thief signs with: the ones the
	// controller would write next, each used once.
	var stolenSeq uint64
	stolen := func(n int) uint64 {
		if stolenSeq == 0 {
			stolenSeq = bad.NextSeq()
		}
		seq := stolenSeq
		stolenSeq += uint64(n)
		return seq
	}
	others := []*mesh.Mesh{c.Controllers[0].Mesh, c.Controllers[1].Mesh}
	others = append(others, c.routerMeshes()...)

	t.Run("it cannot revoke another controller", func(t *testing.T) {
		kp, err := pki.LoadKeyPair(filepath.Join(c.PKIDir, badName, pki.CertFile), filepath.Join(c.PKIDir, badName, pki.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		blob, err := pki.SignControllerRevocation(kp.Key, "certmesh", honest.Author().Name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Through the API, at every controller (its own included).
		for _, n := range c.Controllers {
			status, eb, body := c.post(n, api.PathRevocations, api.RevocationRequest{RootSigned: blob})
			if status != 400 || eb.Code != api.CodeBadRequest || !strings.Contains(eb.Error, "not the root's") {
				t.Errorf("%s accepted a revocation signed by %s's key: %d %s", n.Author().Name, badName, status, body)
			}
			if n == bad {
				t.Logf("%s answers: %d %s: %s", n.Author().Name, status, eb.Code, eb.Error)
			}
		}
		// By gossip, as a record signed with its key.
		before := rejected(others, "bad_revocation")
		rec := &crdt.SignerRecord{Controller: honest.Author().Name, Revoked: true, RevokedAt: crdt.MillisOf(time.Now()), RootSig: blob}
		if err := rogue.Publish(c.signAs(t, bad, bad.NextSeq()+100, rec)); err != nil {
			t.Fatal(err)
		}
		// It stops at the first honest node (forged pushes are not
		// relayed): wait until those it was sent to refused it.
		testutil.Eventually(t, 10*time.Second, "the forged revocation is refused", func() bool {
			n := 0
			for _, m := range others {
				if m.Stats().Rejected["bad_revocation"] > before[m.Name()] {
					n++
				}
			}
			return n >= 3
		})
		for _, m := range others {
			m.View(func(st *crdt.Store) {
				if _, revoked := st.SignerRevoked(honest.Author().Name); revoked {
					t.Errorf("%s takes %s as revoked", m.Name(), honest.Author().Name)
				}
			})
		}
		for i, bc := range bystanderConns {
			if err := bc.RoundTrip(); err != nil {
				t.Errorf("bystander's connection %d after the forged revocation: %v", i, err)
			}
		}
	})

	// Session and certificate records are write-once, the earliest HLC
	// wins: a backdated one from another controller's key would take over
	// the bystander's session (a 30-day expiry, a creation after an
	// identity revocation) or its certificate (refused as mismatched).
	// Only the controller whose name the session id or serial carries
	// writes them.
	t.Run("its key cannot rewrite another controller's session or certificate", func(t *testing.T) {
		offboarded := c.mustLogin(honest, "offboarded")
		status, eb, body := c.post(honest, api.PathRevocations, api.RevocationRequest{Identity: offboarded.Identity})
		if status != 202 {
			t.Fatalf("identity revocation: %d %s %s", status, eb.Code, body)
		}
		for _, r := range c.Routers {
			testutil.Eventually(t, 10*time.Second, r.Mesh.Name()+" refuses the offboarded identity", func() bool {
				conn, err := c.connect(ctx, offboarded, r.Addr().String())
				if err == nil {
					conn.Close()
				}
				return client.IsRefused(err)
			})
		}
		bsid, _ := crdt.ParseSessionID(bystander.ID)
		bserial, _ := crdt.ParseSerial(bystander.Serial)
		osid, _ := crdt.ParseSessionID(offboarded.ID)
		expiries := map[string]crdt.Millis{}
		for _, m := range others {
			m.View(func(st *crdt.Store) {
				if s, ok := st.Session(bsid); ok {
					expiries[m.Name()] = s.Expires
				}
			})
		}
		before := rejected(others, "not_creator")
		now := time.Now()
		// Before every genuine record of both sessions, within the
		// stolen key's validity.
		long := bystander.Leaf().NotBefore
		recs := c.signAsAt(t, bad, stolen(3), long,
			&crdt.SessionRecord{ID: bsid, Identity: bystander.Identity, Method: "oidc", Created: crdt.MillisOf(long), Expires: crdt.MillisOf(now.Add(30 * 24 * time.Hour))},
			&crdt.SessionRecord{ID: osid, Identity: offboarded.Identity, Method: "oidc", Created: crdt.MillisOf(now.Add(time.Minute)), Expires: crdt.MillisOf(now.Add(time.Hour))},
			&crdt.CertRecord{Serial: bserial, Session: bsid, Identity: "mallory", NotBefore: crdt.MillisOf(long), NotAfter: crdt.MillisOf(now.Add(time.Hour))})
		publishRefused(t, rogue, others, recs, before, "not_creator", "the records are refused")
		for _, m := range others {
			m.View(func(st *crdt.Store) {
				if s, ok := st.Session(bsid); !ok || s.Expires != expiries[m.Name()] || s.Author.Name != honest.Author().Name {
					t.Errorf("%s: the bystander's session is now %+v", m.Name(), s)
				}
				if cr, ok := st.Cert(bserial); !ok || cr.Author.Name != honest.Author().Name {
					t.Errorf("%s: the bystander's certificate record is now %+v", m.Name(), cr)
				}
			})
		}
		for _, r := range c.Routers {
			conn, err := c.connect(ctx, bystander, r.Addr().String())
			if err != nil {
				t.Errorf("bystander refused at %s: %v", r.Mesh.Name(), err)
			} else {
				conn.Close()
			}
			if conn, err := c.connect(ctx, offboarded, r.Addr().String()); err == nil {
				conn.Close()
				t.Errorf("%s admits the offboarded identity again", r.Mesh.Name())
			}
		}
	})

	t.Run("the root revokes it", func(t *testing.T) {
		blob, err := pki.SignControllerRevocation(c.root.Key, "certmesh", badName, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		status, eb, body := c.post(honest, api.PathRevocations, api.RevocationRequest{RootSigned: blob, Reason: "key stolen"})
		acked := time.Now()
		if status != 202 {
			t.Fatalf("revoke-controller at %s: %d %s %s", honest.Author().Name, status, eb.Code, body)
		}
		var slowest time.Duration
		for _, m := range c.meshes() {
			testutil.Eventually(t, 10*time.Second, m.Name()+" learns of the revocation", func() bool {
				ok := false
				m.View(func(st *crdt.Store) { _, ok = st.SignerRevoked(badName) })
				return ok
			})
			slowest = max(slowest, time.Since(acked))
		}
		t.Logf("the revocation reached all %d nodes within %v", len(c.meshes()), slowest.Round(100*time.Microsecond))
		for i, vc := range victimConns {
			if _, closed := vc.WaitClosed(5 * time.Second); !closed {
				t.Errorf("victim's live connection %d is still up", i)
			}
		}
		t.Logf("the victim's %d live connections closed %v after the acknowledgement", len(victimConns), time.Since(acked).Round(100*time.Microsecond))
		for _, r := range c.Routers {
			if conn, err := c.connect(ctx, victim, r.Addr().String()); err == nil {
				conn.Close()
				t.Errorf("%s admits a certificate of the revoked controller", r.Mesh.Name())
			} else if !client.IsRefused(err) {
				t.Errorf("%s: connect failed, but not as a refusal: %v", r.Mesh.Name(), err)
			}
		}
		for i, bc := range bystanderConns {
			if err := bc.RoundTrip(); err != nil {
				t.Errorf("bystander's connection %d: %v", i, err)
			}
		}
		for _, r := range c.Routers {
			conn, err := c.connect(ctx, bystander, r.Addr().String())
			if err != nil {
				t.Errorf("bystander refused at %s: %v", r.Mesh.Name(), err)
				continue
			}
			conn.Close()
		}
		// The revoked controller's own API no longer issues, and says so
		// with a code that sends clients to another controller.
		_, err = c.login(ctx, bad, "after-revocation")
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != api.CodeUnavailable {
			t.Errorf("login at the revoked controller: %v", err)
		}
		t.Logf("login at the revoked controller: %v", err)
	})

	// The cut: what the honest controller held of the revoked one when it
	// applied the revocation. Backdating does not move a record into it.
	t.Run("what its key signs later is refused however it is stamped", func(t *testing.T) {
		bsid, _ := crdt.ParseSessionID(bystander.ID)
		before := rejected(others, "author_revoked")
		long := bystander.Leaf().NotBefore // long before the revocation
		recs := c.signAsAt(t, bad, stolen(2), long,
			&crdt.RevocationRecord{Target: crdt.RevokeSession, Session: bsid, Reason: "denial", At: crdt.MillisOf(long)},
			&crdt.IdentityRevocationRecord{Identity: bystander.Identity, RevokedBefore: crdt.MillisOf(time.Now().Add(time.Hour)), Reason: "denial"})
		publishRefused(t, rogue, others, recs, before, "author_revoked", "the backdated revocations are refused")
		for i, bc := range bystanderConns {
			if err := bc.RoundTrip(); err != nil {
				t.Errorf("bystander's connection %d after the backdated revocations: %v", i, err)
			}
		}
		for _, r := range c.Routers {
			conn, err := c.connect(ctx, bystander, r.Addr().String())
			if err != nil {
				t.Errorf("bystander refused at %s after the backdated revocations: %v", r.Mesh.Name(), err)
				continue
			}
			conn.Close()
		}
	})

	t.Run("what its key signs later is refused everywhere", func(t *testing.T) {
		before := rejected(others, "author_revoked")
		digests := map[string]uint64{}
		for _, m := range others {
			m.View(func(st *crdt.Store) { digests[m.Name()] = st.Digest() })
		}
		// A session and a certificate of its own, as it would write them.
		rawSID, err := pki.NewSessionID(badName, nil)
		if err != nil {
			t.Fatal(err)
		}
		rawSerial, err := pki.NewSerialFor(badName, nil)
		if err != nil {
			t.Fatal(err)
		}
		sid, serial := crdt.SessionID(rawSID), crdt.Serial(rawSerial)
		now := time.Now()
		// The next seqs it would have written.
		recs := c.signAs(t, bad, stolen(2),
			&crdt.SessionRecord{ID: sid, Identity: "mallory", Method: "oidc", Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(time.Hour))},
			&crdt.CertRecord{Serial: serial, Session: sid, Identity: "mallory", NotBefore: crdt.MillisOf(now), NotAfter: crdt.MillisOf(now.Add(time.Hour))})
		publishRefused(t, rogue, others, recs, before, "author_revoked", "the revoked controller's later records are refused")
		for _, m := range others {
			m.View(func(st *crdt.Store) {
				if st.Digest() != digests[m.Name()] {
					t.Errorf("%s's state changed", m.Name())
				}
				if _, ok := st.Cert(serial); ok {
					t.Errorf("%s holds the certificate record signed after the revocation", m.Name())
				}
			})
		}
		counted := 0
		for _, m := range others {
			if m.Stats().Rejected["author_revoked"] > before[m.Name()] {
				counted++
			}
		}
		t.Logf("%d of %d nodes refused the records themselves (author_revoked); all %d cover their dots", counted, len(others), len(others))
	})
}
