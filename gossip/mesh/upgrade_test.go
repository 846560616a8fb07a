package mesh

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/internal/testutil"
)

// A rolling upgrade, rehearsed with real memberlist nodes over loopback:
// nodes announce their protocol version in NodeMeta and write it at the
// head of every frame (Config.protocol overrides it for the test). A
// node of a newer minor interoperates; a node of an unknown major is kept
// out of membership with one clear log line, and nothing it sends, over
// packets, streams or memberlist's push-pull, is ever merged.
//
//	go test ./gossip/mesh/ -run TestRollingUpgrade -v

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// authoredBy counts the records in m's store written by name.
func authoredBy(m *Mesh, name string) int {
	n := 0
	m.View(func(s *crdt.Store) {
		s.Range(func(r crdt.Record) bool {
			if r.Head().Author.Name == name {
				n++
			}
			return true
		})
	})
	return n
}

func TestRollingUpgrade(t *testing.T) {
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "west", "ctrl-minor": "east", "ctrl-major": "west"},
		map[string]string{"r1": "east", "r2": "west"})
	var logs lockedBuffer
	old := []string{"ctrl-a", "ctrl-b", "r1", "r2"}
	for _, n := range old {
		c.start(n, func(cfg *Config) {
			if n == "ctrl-a" {
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
		})
	}
	for _, n := range old {
		testutil.Eventually(t, 5*time.Second, n+" sees the old members", func() bool { return len(alive(c.meshes[n])) == len(old) })
	}
	c.publish("ctrl-a", 3)
	c.converged(t, 7, old...)

	t.Run("a newer minor interoperates", func(t *testing.T) {
		minor := c.start("ctrl-minor", func(cfg *Config) { cfg.protocol = gossip.ProtocolMajor<<4 | (gossip.ProtocolMinor + 1) })
		all := append(slices.Clone(old), "ctrl-minor")
		for _, n := range all {
			testutil.Eventually(t, 5*time.Second, n+" sees the newer minor as a member", func() bool {
				return len(alive(c.meshes[n])) == len(all)
			})
		}
		c.publish("ctrl-minor", 3) // its signer record and 3 sessions
		c.publish("ctrl-b", 2)
		c.converged(t, 7+7+5, all...)
		if n := authoredBy(c.meshes["r2"], "ctrl-minor"); n != 7 {
			t.Errorf("r2 holds %d records of the newer minor, want 7", n)
		}
		// A message type the newer minor added: the old node drops and
		// counts it, and carries on.
		var frame bytes.Buffer
		frame.WriteByte(gossip.ProtocolMajor<<4 | (gossip.ProtocolMinor + 1))
		enc := msgpack.NewEncoder(&frame)
		enc.EncodeString("ctrl-minor")
		enc.EncodeArrayLen(3)
		enc.EncodeUint(uint64(gossip.MaxMsgType) + 1)
		enc.EncodeInt(int64(crdt.MillisOf(time.Now())))
		enc.EncodeArrayLen(0)
		before := c.meshes["ctrl-a"].Stats().Rejected["malformed"]
		if err := minor.ml.SendReliable(minor.lookup("ctrl-a"), frame.Bytes()); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "ctrl-a counts the unknown message type", func() bool {
			return c.meshes["ctrl-a"].Stats().Rejected["malformed"] > before
		})
		c.publish("ctrl-minor", 1)
		c.converged(t, 7+7+5+2, all...)
	})

	t.Run("an unknown major is refused, never half-merged", func(t *testing.T) {
		v1 := []string{"ctrl-a", "ctrl-b", "r1", "r2", "ctrl-minor"}
		before := map[string]digest{}
		versionDrops := map[string]uint64{}
		for _, n := range v1 {
			before[n] = c.meshes[n].digest()
			versionDrops[n] = c.meshes[n].Stats().Rejected["version"]
		}
		// A 2.0 controller with a genuine signing key: were anything it
		// sends merged, its records would verify.
		next := c.start("ctrl-major", func(cfg *Config) { cfg.protocol = (gossip.ProtocolMajor + 1) << 4 })
		// It hears the old nodes (it is the one that is tolerant here),
		// publishes, and pushes to them; memberlist's push-pull carries
		// its causal context to them too.
		testutil.Eventually(t, 5*time.Second, "the 2.0 node hears the 1.x nodes", func() bool { return len(alive(next)) > 1 })
		c.publish("ctrl-major", 5)
		for _, n := range v1 {
			testutil.Eventually(t, 10*time.Second, n+" drops the 2.0 node's messages as another major", func() bool {
				return c.meshes[n].Stats().Rejected["version"] > versionDrops[n]
			})
		}
		// Several anti-entropy rounds and push-pulls later, still nothing.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			for _, n := range v1 {
				m := c.meshes[n]
				if got := m.digest(); got != before[n] {
					t.Fatalf("%s's state changed from %+v to %+v", n, before[n], got)
				}
				for _, ms := range m.Members() {
					if ms.Name == "ctrl-major" {
						t.Fatalf("%s lists the 2.0 node as %s", n, ms.State)
					}
				}
				if m.Stats().Held != 0 {
					t.Fatalf("%s holds records of the 2.0 node", n)
				}
			}
			time.Sleep(50 * time.Millisecond) // polling interval of a check that must keep holding
		}
		if n := authoredBy(c.meshes["ctrl-b"], "ctrl-major"); n != 0 {
			t.Errorf("ctrl-b merged %d records of the 2.0 node", n)
		}
		var metrics bytes.Buffer
		c.meshes["ctrl-a"].WritePrometheus(&metrics)
		if !strings.Contains(metrics.String(), `certmesh_rejected_records_total{reason="version"}`) {
			t.Error("version drops are not in certmesh_rejected_records_total")
		}
		out := logs.String()
		var refusals []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "gossip: refusing node") && strings.Contains(line, "member=ctrl-major") {
				refusals = append(refusals, line)
			}
		}
		if len(refusals) != 1 {
			t.Fatalf("%d refusal lines for the 2.0 node, want exactly one:\n%s", len(refusals), out)
		}
		if !strings.Contains(refusals[0], fmt.Sprintf("protocol 2.0, this node %d.%d", gossip.ProtocolMajor, gossip.ProtocolMinor)) {
			t.Errorf("refusal line does not say which versions: %s", refusals[0])
		}
		t.Logf("refusal: %s", refusals[0])
		// The 1.x mesh keeps working meanwhile.
		c.publish("ctrl-a", 1)
		c.converged(t, before["ctrl-a"].len+2, v1...)
	})
}
