package reliability

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/gossip/mesh"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// TestGossipKeyRotation rotates the gossip key of a running cluster the way
// an operator does, through the key file and a reload of every node (what
// SIGHUP does): add the new key as a second line, reload all; move it
// first, reload all; remove the old one, reload all. Meanwhile a client
// logs in every 100 ms at a rotating controller. No member is ever seen
// failed or gone by anyone, every login succeeds and reaches every router,
// and at the end a node holding only the old key is kept out.
//
//	go test -race ./reliability/ -run TestGossipKeyRotation -v
func TestGossipKeyRotation(t *testing.T) {
	c := startCluster(t)
	keyFile := filepath.Join(c.PKIDir, pki.GossipKeyFile)
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := strings.TrimSpace(string(data))
	raw := make([]byte, 32)
	rand.Read(raw)
	newKey := base64.StdEncoding.EncodeToString(raw)
	total := len(c.Controllers) + len(c.Routers)
	watch := watchMembers(c.meshes(), total)

	// Steady writes through the whole rotation.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var serials []string
	var failures []string
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ctrl := c.Controllers[i%len(c.Controllers)]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := c.login(ctx, ctrl, fmt.Sprintf("rotation-%d", i))
			cancel()
			mu.Lock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("login %d at %s: %v", i, ctrl.Author().Name, err))
			} else {
				serials = append(serials, s.Serial)
			}
			mu.Unlock()
		}
	})

	steps := []struct {
		name  string
		lines []string
	}{
		{"add the new key second", []string{oldKey, newKey}},
		{"make the new key first", []string{newKey, oldKey}},
		{"remove the old key", []string{newKey}},
	}
	for _, step := range steps {
		if err := os.WriteFile(keyFile, []byte(strings.Join(step.lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, n := range c.Controllers {
			if err := n.Reload(); err != nil {
				t.Fatalf("%s: reload %s: %v", step.name, n.Author().Name, err)
			}
		}
		for _, r := range c.Routers {
			if err := r.Reload(); err != nil {
				t.Fatalf("%s: reload %s: %v", step.name, r.Mesh.Name(), err)
			}
		}
		reloaded := time.Since(start)
		// A write after the step reaches every router.
		s := c.mustLogin(c.Controllers[1], "after-"+strings.ReplaceAll(step.name, " ", "-"))
		acked := time.Now()
		var slowest time.Duration
		for _, m := range c.routerMeshes() {
			testutil.Eventually(t, 10*time.Second, step.name+": the login reaches "+m.Name(), func() bool { return hasCert(m, s.Serial) })
			slowest = max(slowest, time.Since(acked))
		}
		t.Logf("%s: %d nodes reloaded in %v; a login then reached all %d routers in %v",
			step.name, total, reloaded.Round(time.Millisecond), len(c.Routers), slowest.Round(100*time.Microsecond))
		// Let the mesh run on the new keyring for a few probe rounds.
		time.Sleep(1500 * time.Millisecond) // memberlist probes every second: give failure detection a chance to speak
	}
	close(stop)
	wg.Wait()

	// Every login of the steady stream reached every router.
	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	start := time.Now()
	for _, m := range c.routerMeshes() {
		for _, s := range serials {
			testutil.Eventually(t, 10*time.Second, fmt.Sprintf("login %s reaches %s", s, m.Name()), func() bool { return hasCert(m, s) })
		}
	}
	t.Logf("%d logins during the rotation, %d failed; all on every router %v after the last", len(serials), len(failures), time.Since(start).Round(time.Millisecond))
	if lost := watch.done(); len(lost) > 0 {
		t.Errorf("members lost during the rotation:\n%s", strings.Join(lost, "\n"))
	}

	// The old key is gone from every keyring: a node holding only it is
	// kept out.
	t.Run("a node with only the old key is kept out", func(t *testing.T) {
		old, err := base64.StdEncoding.DecodeString(oldKey)
		if err != nil {
			t.Fatal(err)
		}
		store := crdt.NewStore()
		v, err := trust.NewVerifier(c.root.Cert, "certmesh", func() *crdt.Store { return store })
		if err != nil {
			t.Fatal(err)
		}
		core := gossip.DefaultConfig()
		core.Name, core.Role, core.Region = "stale-key", gossip.RoleRouter, "us-east"
		m, err := mesh.New(mesh.Config{Core: core, Bind: "127.0.0.1:0", Join: []string{c.Controllers[0].Mesh.Addr()},
			Keys: [][]byte{old}, JoinTimeout: time.Second, Logger: testLogger()}, store, v)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		testutil.Eventually(t, 10*time.Second, "the stale node tries to join three times", func() bool { return m.Stats().JoinAttempts >= 3 })
		if n := m.Stats().AlivePeers; n != 0 {
			t.Errorf("a node with the removed key has %d peers", n)
		}
		for _, o := range c.meshes() {
			for _, ms := range o.Members() {
				if ms.Name == "stale-key" {
					t.Errorf("%s lists the stale node as %s", o.Name(), ms.State)
				}
			}
		}
	})
}
