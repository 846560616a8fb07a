package issuer

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
)

func (m *fakeMesh) publishedRecords() []crdt.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.published)
}

// Two controllers configured differently: c1 issues 30-day sessions, c2
// 24-hour ones, and c2 used to keep its revocations for its own 24 hours.
// A session created at c1 and revoked at c2 must stay revoked at every
// node (both controllers, in memory and on disk, and a router's store with
// its own grace) after c2's horizon has passed, for as long as the session
// could still be used; then it all goes, alike everywhere.
func TestRevocationOutlivesTheRevokingControllersSessionLifetime(t *testing.T) {
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oidc.Close() })
	pkiDir := newPKI(t)
	long := newEnvOf(t, pkiDir, "c1", oidc, func(c *config.Controller) {
		c.Session.MaxLifetime = crdt.MaxSessionLifetime
		c.Certs.TTL = crdt.MaxSessionLifetime // one certificate for the whole session
	})
	short := newEnvOf(t, pkiDir, "c2", oidc, func(c *config.Controller) {
		c.Session.MaxLifetime = 24 * time.Hour
	})
	router := crdt.NewStore()
	// carry gossips: every record a controller wrote reaches the others.
	carry := func() {
		for _, from := range []*env{long, short} {
			recs := from.mesh.publishedRecords()
			for _, to := range []*env{long, short} {
				if to != from {
					to.mesh.deliver(recs...)
				}
			}
			for _, r := range recs {
				if _, err := router.MergeVerified(r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	alice := long.login("alice")
	carry()
	if r := short.revoke(api.RevocationRequest{SessionID: alice.SessionID}); r.status != http.StatusAccepted {
		t.Fatalf("revoke at c2: %d %s", r.status, r.body)
	}
	carry()
	f := facts(t, alice.leaf, "c1")
	start := time.Now()
	sessionEnd := crdt.MillisOf(start.Add(crdt.MaxSessionLifetime))
	if f.NotAfter < sessionEnd-crdt.Millis(time.Minute/time.Millisecond) {
		t.Fatalf("alice's certificate ends at %v, want with the 30-day session", f.NotAfter.Time())
	}

	// Each node collects with its own slack: the controllers with the
	// mesh's max offset and an hour of grace (as mesh.Mesh does), the
	// router with ten minutes; c2's disk with the controller's own rule.
	collect := func(at time.Time) {
		t.Helper()
		now := crdt.MillisOf(at)
		long.mesh.View(func(s *crdt.Store) { s.Collect(now, crdt.DefaultMaxOffset, time.Hour) })
		short.mesh.View(func(s *crdt.Store) { s.Collect(now, crdt.DefaultMaxOffset, time.Hour) })
		router.Collect(now, crdt.DefaultMaxOffset, 10*time.Minute)
		for _, e := range []*env{long, short} {
			if _, err := e.c.db.collect(at, crdt.DefaultMaxOffset+gcGrace); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string, at time.Time, want crdt.Verdict) {
		t.Helper()
		now := crdt.MillisOf(at)
		for _, n := range []struct {
			name string
			view func(func(*crdt.Store))
		}{{"c1", long.mesh.View}, {"c2", short.mesh.View}, {"router", func(fn func(*crdt.Store)) { fn(router) }}} {
			n.view(func(s *crdt.Store) {
				for _, strict := range []bool{true, false} {
					if v := s.Admission(f, now, strict); v != want {
						t.Errorf("%s: %s: alice's certificate (strict %v): %v, want %v", when, n.name, strict, v, want)
					}
				}
			})
		}
	}

	// Well past c2's horizon: its Until (24h), the slack and MinRetention.
	later := start.Add(24*time.Hour + 3*time.Hour)
	collect(later)
	check("after c2's horizon", later, crdt.SessionRevoked)
	// What c2 and c1 kept on disk says the same after a restart.
	short.restart()
	long.restart()
	check("after c2's horizon and a restart", later, crdt.SessionRevoked)

	// Once the session is over, the session, its certificate and the
	// revocation go everywhere, and the nodes hold the same records.
	end := start.Add(crdt.MaxSessionLifetime + 3*time.Hour)
	collect(end)
	var left []int
	for _, view := range []func(func(*crdt.Store)){long.mesh.View, short.mesh.View, func(fn func(*crdt.Store)) { fn(router) }} {
		view(func(s *crdt.Store) {
			if _, ok := s.Session(f.Session); ok {
				t.Error("alice's session still held after it ended")
			}
			if s.Live(f, crdt.MillisOf(end)) == crdt.SessionRevoked {
				t.Error("alice's revocation still held after her session ended")
			}
			var n int
			s.Range(func(r crdt.Record) bool {
				if r.Kind() != crdt.KindSigner {
					n++
				}
				return true
			})
			left = append(left, n)
		})
	}
	if left[0] != 0 || left[1] != 0 || left[2] != 0 {
		t.Errorf("records other than signers held after every session ended: %v", left)
	}
}
