package gossip

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Hostile peers over real memberlist on loopback: a node that holds the
// gossip key (so memberlist lets it in) but not the key of the controller
// whose records it sends. Whatever it sends is verified against the root
// before it is merged, refused, and counted in
// certmesh_rejected_records_total{reason}; honest nodes' state does not
// move and they do not relay it.
//
//	go test ./gossip/ -run 'TestMeshHostilePeers' -v

// rejectedMetric reads certmesh_rejected_records_total{reason} from m's
// Prometheus text.
func rejectedMetric(t *testing.T, m *Mesh, reason string) uint64 {
	t.Helper()
	var b bytes.Buffer
	m.WritePrometheus(&b)
	re := regexp.MustCompile(`(?m)^certmesh_rejected_records_total\{reason="` + regexp.QuoteMeta(reason) + `"\} ([0-9]+)$`)
	mt := re.FindSubmatch(b.Bytes())
	if mt == nil {
		return 0
	}
	n, err := strconv.ParseUint(string(mt[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rejections snapshots the rejection counters of the named nodes.
func (c *meshCluster) rejections(names ...string) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, n := range names {
		out[n] = c.meshes[n].Stats().Rejected
	}
	return out
}

// waitRejected waits until each named node counted at least want[reason]
// more rejections than in before, and checks that the metric says so.
func (c *meshCluster) waitRejected(t *testing.T, before map[string]map[string]uint64, want map[string]uint64, names ...string) {
	t.Helper()
	for _, n := range names {
		m := c.meshes[n]
		deadline := time.Now().Add(10 * time.Second)
		for {
			now := m.Stats().Rejected
			done := true
			for r, k := range want {
				done = done && now[r] >= before[n][r]+k
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 10s, %s counts rejections %v, want %v more than %v", n, now, want, before[n])
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		for r := range want {
			if got := rejectedMetric(t, m, r); got < before[n][r]+want[r] {
				t.Errorf("%s: certmesh_rejected_records_total{reason=%q} = %d, want at least %d", n, r, got, before[n][r]+want[r])
			}
		}
	}
}

func TestMeshHostilePeers(t *testing.T) {
	c := newMeshCluster(t,
		map[string]string{"ctrl-a": "east", "ctrl-b": "west"},
		map[string]string{"r1": "east", "r2": "east", "r3": "west"})
	all := []string{"ctrl-a", "ctrl-b", "r1", "r2", "r3"}
	honest := []string{"ctrl-a", "ctrl-b", "r2", "r3"}
	for _, n := range all {
		c.start(n, nil)
	}
	for _, n := range all {
		eventually(t, 5*time.Second, n+" sees every member", func() bool { return len(alive(c.meshes[n])) == len(all) })
	}
	c.publish("ctrl-a", 3)
	c.publish("ctrl-b", 3)
	total := 2 * 7
	c.converged(t, total, all...)
	rogue := c.meshes["r1"]

	// unchanged checks that no honest node's state moved and none holds
	// anything for later.
	unchanged := func(t *testing.T, before map[string]digest) {
		t.Helper()
		for _, n := range honest {
			if got := c.meshes[n].digest(); got != before[n] {
				t.Errorf("%s's state changed: %+v, was %+v", n, got, before[n])
			}
		}
	}
	digests := func() map[string]digest {
		d := map[string]digest{}
		for _, n := range honest {
			d[n] = c.meshes[n].digest()
		}
		return d
	}

	t.Run("replayed, altered and re-signed records", func(t *testing.T) {
		before, rej := digests(), c.rejections(honest...)
		relayed := c.meshes["r2"].Stats().MessagesOut["push"]
		b := c.authors["ctrl-b"]
		var genuine *crdt.CertRecord
		c.meshes["ctrl-a"].View(func(st *crdt.Store) { genuine = st.Get(crdt.Dot{Author: b.a, Seq: 3}).(*crdt.CertRecord) })
		next := b.seq + 1 // the next dot ctrl-b will write

		// An old genuine record, sent again as it is: a duplicate.
		replayed := genuine
		// The same record under the next dot, signature untouched.
		reseq := *genuine
		reseq.Seq = next
		// The same record with a field altered, under a fresh dot.
		altered := *genuine
		altered.Seq, altered.Identity = next+1, "mallory"
		// ctrl-b's record re-signed by the rogue router, and by another
		// (genuine, perhaps compromised) controller: a controller's key
		// signs only its own name's records.
		byRouter := *genuine
		byRouter.Seq = next + 2
		if err := crdt.Sign(&byRouter, RecordSigner{c.pki.routers["r1"].Key}); err != nil {
			t.Fatal(err)
		}
		byOtherCtrl := *genuine
		byOtherCtrl.Seq = next + 3
		if err := crdt.Sign(&byOtherCtrl, RecordSigner{c.pki.ctrl["ctrl-a"].Key}); err != nil {
			t.Fatal(err)
		}
		// The record re-authored as the rogue's own: no signer record
		// for r1 will ever come, so it is held, then dropped.
		own := *genuine
		own.Header = crdt.Header{}
		newAuthor(t, "r1", c.pki.routers["r1"].Key, rogue.Now).sign(&own)

		push := &Message{Type: MsgPush, SentAt: crdt.MillisOf(time.Now()), Origin: "r1", Batch: 7001, Region: "east",
			Records: []crdt.Record{replayed, &reseq, &altered, &byRouter, &byOtherCtrl, &own}}
		// The same forgeries as an anti-entropy answer and a pull answer.
		delta := &Message{Type: MsgDelta, SentAt: crdt.MillisOf(time.Now()), Records: push.Records,
			Intervals: []crdt.Interval{{Author: b.a, From: 0, To: next + 3}}}
		var outs []Output
		for _, n := range honest {
			outs = append(outs, Output{To: n, Msg: push}, Output{To: n, Msg: delta, Reliable: true})
		}
		rogue.send(outs)
		c.waitRejected(t, rej, map[string]uint64{"bad_signature": 2 * 4, "held_expired": 1}, honest...)
		unchanged(t, before)
		for _, n := range honest {
			c.meshes[n].View(func(st *crdt.Store) {
				if got := st.Contiguous(b.a); got != b.seq {
					t.Errorf("%s covers ctrl-b up to %d, want %d: a refused record's interval was covered", n, got, b.seq)
				}
			})
		}
		if c.meshes["r2"].Stats().MessagesOut["push"] != relayed {
			t.Error("r2 relayed a forged push")
		}
		// ctrl-b's real next records still go through.
		c.publish("ctrl-b", 1)
		total += 2
		c.converged(t, total, all...)
	})

	t.Run("a node claiming the controller role without a controller key", func(t *testing.T) {
		c.addrs["fake-ctrl"], c.roles["fake-ctrl"], c.regions["fake-ctrl"] = freeAddr(t), RoleController, "east"
		before, rej := digests(), c.rejections(honest...)
		fake := c.start("fake-ctrl", nil)
		for _, n := range honest {
			eventually(t, 5*time.Second, n+" lists fake-ctrl", func() bool {
				for _, ms := range c.meshes[n].Members() {
					if ms.Name == "fake-ctrl" && ms.State == "alive" {
						return ms.Role == "controller" // self-asserted: steers paths only
					}
				}
				return false
			})
		}
		// Its own CA, with an intermediate that names it as a controller.
		now := time.Now()
		fakeRoot, err := pki.NewRoot(testTD, 24*time.Hour, now, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		fakeInter, err := pki.NewController(fakeRoot, testTD, "fake-ctrl", 12*time.Hour, now, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		w := newAuthor(t, "fake-ctrl", fakeInter.Key, fake.Now)
		ownSigner := w.signer(fakeInter)
		sess, cert := w.session(now)
		// A signer record naming ctrl-a, carrying ctrl-a's genuine
		// intermediate, published under its own name.
		stolen, err := NewSignerRecord(c.pki.ctrl["ctrl-a"].Cert, testTD)
		if err != nil {
			t.Fatal(err)
		}
		w.sign(stolen)
		// A revocation of ctrl-a signed by its own root.
		blob, err := pki.SignControllerRevocation(fakeRoot.Key, testTD, "ctrl-a", now)
		if err != nil {
			t.Fatal(err)
		}
		revoke := &crdt.SignerRecord{Controller: "ctrl-a", Revoked: true, RevokedAt: crdt.MillisOf(now), RootSig: blob}
		w.sign(revoke)
		if err := fake.Publish([]crdt.Record{ownSigner, sess, cert, stolen, revoke}); err != nil {
			t.Fatal(err)
		}
		c.waitRejected(t, rej, map[string]uint64{"bad_signer": 2, "bad_revocation": 1, "held_expired": 2}, honest...)
		unchanged(t, before)
		// Asked for a certificate, it answers "not issued" like an issuer
		// would; only the issuer's answer settles a pull, and the genuine
		// certificate is found.
		gs, genuine := c.authors["ctrl-a"].session(time.Now())
		c.meshes["ctrl-a"].View(func(st *crdt.Store) { // written, never pushed
			st.MergeVerified(gs)
			st.MergeVerified(genuine)
		})
		res, err := c.meshes["r2"].Want(t.Context(), genuine.Serial, "ctrl-a")
		if err != nil || !res.Found {
			t.Fatalf("pull of a genuine certificate with a fake controller about: %+v, %v", res, err)
		}
		fake.Close()
		delete(c.meshes, "fake-ctrl")
		c.publish("ctrl-a", 1)
		total += 2 + 2
		c.converged(t, total, honest...)
	})

	t.Run("malformed, oversized, spoofed and other-major frames are dropped and counted", func(t *testing.T) {
		target := c.meshes["ctrl-a"]
		node := rogue.lookup("ctrl-a")
		rej := c.rejections("ctrl-a")
		good, err := EncodeFrame("r1", &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(time.Now()), Context: crdt.Context{}})
		if err != nil {
			t.Fatal(err)
		}
		var packets [][]byte
		for i := 0; i < 20; i++ { // garbage after a valid version byte
			b := make([]byte, 1+i*50)
			rand.Read(b)
			b[0] = protocolVersion
			packets = append(packets, b)
		}
		packets = append(packets,
			good[:len(good)-1],              // truncated
			append(bytes.Clone(good), 0x00)) // trailing byte
		for _, p := range packets {
			if err := rogue.ml.SendBestEffort(node, p); err != nil {
				t.Fatal(err)
			}
		}
		spoofed, err := EncodeFrame("ctrl-a", &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(time.Now()), Context: crdt.Context{}})
		if err != nil {
			t.Fatal(err)
		}
		otherMajor := bytes.Clone(good)
		otherMajor[0] = (ProtocolMajor + 2) << 4
		huge := make([]byte, MaxMessageSize+1)
		huge[0] = protocolVersion
		for _, p := range [][]byte{spoofed, otherMajor, huge} {
			if err := rogue.ml.SendReliable(node, p); err != nil {
				t.Fatal(err)
			}
		}
		c.waitRejected(t, rej, map[string]uint64{"malformed": 22, "spoofed_sender": 1, "version": 1, "too_large": 1}, "ctrl-a")
		t.Logf("ctrl-a rejections after the garbage: %v", target.Stats().Rejected)
		c.publish("ctrl-a", 1)
		total += 2
		c.converged(t, total, honest...)
	})
}

// TestMeshGarbageFlood floods a node from outside the cluster (no gossip
// key): garbage datagrams and streams at its gossip port. memberlist drops
// them before certmesh sees them, one log line each; the node counts them
// as certmesh_rejected_records_total{reason="foreign"}, logs a line at
// most every 10 s, and keeps replicating.
func TestMeshGarbageFlood(t *testing.T) {
	c := newMeshCluster(t, map[string]string{"ctrl-a": "east"}, map[string]string{"r1": "east"})
	var logs lockedBuffer
	target := c.start("ctrl-a", func(cfg *MeshConfig) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	c.start("r1", nil)
	eventually(t, 5*time.Second, "joined", func() bool { return len(alive(target)) == 2 })

	const datagrams, streams = 5000, 50
	udp, err := net.Dial("udp", target.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	buf := make([]byte, 1200)
	rand.Read(buf)
	for i := 0; i < datagrams; i++ {
		buf[i%len(buf)]++
		udp.Write(buf[:1+i%len(buf)])
	}
	for i := 0; i < streams; i++ {
		conn, err := net.Dial("tcp", target.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(buf)
		conn.Close()
	}
	// Loopback may drop datagrams when the socket buffer is full: most,
	// not all, arrive.
	eventually(t, 10*time.Second, "the garbage is counted", func() bool { return rejectedMetric(t, target, "foreign") >= datagrams/2 })
	t.Logf("%d of %d garbage datagrams and streams counted", rejectedMetric(t, target, "foreign"), datagrams+streams)
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "label") || strings.Contains(l, "decrypt") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || len(lines) > 2 {
		t.Errorf("%d log lines about the garbage, want one (or two across a 10 s boundary):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	c.publish("ctrl-a", 2)
	c.converged(t, 5, "ctrl-a", "r1")
}
