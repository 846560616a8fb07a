package reliability

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/node"
)

// probeClock asks ctrl whether it accepts writes, without writing: a login
// whose token is garbage is refused with clock_skew before the token is
// looked at when the controller's clock is off, and with token_invalid
// otherwise.
func (c *cluster) probeClock(ctrl *node.Controller) api.Code {
	c.t.Helper()
	_, eb, _ := c.post(ctrl, "/v1/sessions", map[string]string{"token": "x", "csr": "y"})
	return eb.Code
}

// TestControllerClockFarAhead steps one controller's clock 40 s ahead (30 s
// beyond the 10 s max offset), as a bad NTP step would, in a running
// cluster. What it writes before it notices carries a timestamp from the
// future: every peer holds it instead of merging it, so its identity
// revocation cannot reach over sessions created meanwhile at honest
// controllers. It notices the offset from its peers' messages and refuses
// writes with 503 clock_skew; the honest controllers never do, and keep
// serving. When its clock is stepped back it keeps refusing until wall
// time catches up with its hybrid clock (CERTMESH_LONG=1 waits for that,
// about 30 s, and checks its next client is admitted everywhere).
//
//	go test -race ./reliability/ -run TestControllerClockFarAhead -v
func TestControllerClockFarAhead(t *testing.T) {
	const skew = crdt.DefaultMaxOffset + 30*time.Second
	c := startCluster(t)
	var offset atomic.Int64
	skewed := c.startController("ctrl-skewed", "us-east", issuer.Options{
		Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	total := len(c.meshes())
	for _, m := range c.meshes() {
		testutil.Eventually(t, 10*time.Second, m.Name()+" sees every member", func() bool {
			n := 0
			for _, ms := range m.Members() {
				if ms.State == "alive" {
					n++
				}
			}
			return n == total
		})
	}
	testutil.Eventually(t, 10*time.Second, "ctrl-skewed ready", skewed.Ready)
	if code := c.probeClock(skewed); code != "token_invalid" {
		t.Fatalf("before the step, ctrl-skewed answers %q", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	honest := c.Controllers
	others := c.meshes()
	others = append(others[:len(honest)], others[len(honest)+1:]...) // all but ctrl-skewed

	// The step, and a write at once, before the controller can know.
	offset.Store(int64(skew))
	stepped := time.Now()
	status, eb, body := c.post(skewed, api.PathRevocations, api.RevocationRequest{Identity: "carol"})
	if status != 202 {
		t.Fatalf("identity revocation right after the step: %d %s %s", status, eb.Code, body)
	}
	for _, m := range others {
		testutil.Eventually(t, 10*time.Second, m.Name()+" holds the revocation from the future", func() bool { return m.Stats().Held > 0 })
		m.View(func(st *crdt.Store) {
			if _, ok := st.IdentityRevokedBefore("carol"); ok {
				t.Errorf("%s merged a revocation from 40 s in the future", m.Name())
			}
		})
	}
	// Meanwhile carol logs in at an honest controller and is admitted
	// everywhere: the future revocation does not reach over her session.
	carol := c.mustLogin(honest[1], "carol")
	for _, r := range c.Routers {
		conn, err := c.connect(ctx, carol, r.Addr().String())
		if err != nil {
			t.Errorf("carol, logged in after the skewed revocation was written, refused at %s: %v", r.Mesh.Name(), err)
			continue
		}
		conn.Close()
	}

	// The skewed controller notices and refuses writes; the honest ones
	// keep writing, and never see themselves as off.
	var detected time.Duration
	for {
		code := c.probeClock(skewed)
		if code == api.CodeClockSkew {
			detected = time.Since(stepped)
			break
		}
		if time.Since(stepped) > time.Minute {
			off, ok := skewed.Mesh.ClockOffset()
			t.Fatalf("ctrl-skewed still accepts writes a minute after its clock was stepped 40 s ahead (answers %q; offset estimate %v %v; messages in %v)",
				code, off, ok, skewed.Mesh.Stats().MessagesIn)
		}
		for _, h := range honest {
			if off, ok := h.Mesh.ClockOffset(); ok && (off > 2*time.Second || off < -2*time.Second) {
				t.Errorf("%s, an honest controller, estimates its offset at %v", h.Author().Name, off)
			}
		}
		time.Sleep(100 * time.Millisecond) // probing interval
	}
	off, _ := skewed.Mesh.ClockOffset()
	t.Logf("ctrl-skewed refuses writes with clock_skew %v after the step (estimated offset %v)", detected.Round(10*time.Millisecond), off.Round(time.Millisecond))
	for _, h := range honest {
		if code := c.probeClock(h); code != "token_invalid" {
			t.Errorf("%s answers %q while ctrl-skewed is off", h.Author().Name, code)
		}
		s := c.mustLogin(h, "while-skewed-"+h.Author().Name)
		for _, m := range c.routerMeshes() {
			testutil.Eventually(t, 10*time.Second, "a login at an honest controller reaches "+m.Name(), func() bool { return hasCert(m, s.Serial) })
		}
	}

	// Stepped back. Its hybrid clock never goes back, so for a while what
	// it would stamp is still from the future: it keeps refusing writes
	// until wall time is within the max offset of it (about 30 s), rather
	// than issue certificates that every peer would hold and every router
	// refuse.
	offset.Store(0)
	back := time.Now()
	if code := c.probeClock(skewed); code != api.CodeClockSkew {
		t.Fatalf("right after the step back, ctrl-skewed answers %q, want clock_skew", code)
	}
	if os.Getenv("CERTMESH_LONG") == "" {
		t.Log("set CERTMESH_LONG=1 to wait the ~30 s until ctrl-skewed writes again")
		return
	}
	for c.probeClock(skewed) == api.CodeClockSkew {
		if time.Since(back) > time.Minute {
			t.Fatal("ctrl-skewed still refuses writes a minute after its clock was stepped back")
		}
		time.Sleep(100 * time.Millisecond) // probing interval
	}
	t.Logf("ctrl-skewed accepts writes again %v after its clock was stepped back", time.Since(back).Round(10*time.Millisecond))
	s, err := c.login(ctx, skewed, "after-the-step-back")
	if err != nil {
		t.Fatalf("login at ctrl-skewed after the step back: %v", err)
	}
	for _, r := range c.Routers {
		conn, err := c.connect(ctx, s, r.Addr().String())
		if err != nil {
			t.Errorf("a client of ctrl-skewed after the step back is refused at %s: %v", r.Mesh.Name(), err)
			continue
		}
		conn.Close()
	}
}
