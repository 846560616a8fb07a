package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// BenchmarkPushFanout measures what the protocol costs each node per
// certificate event, in the in-test network: 300 nodes (3 regions of one
// controller and 99 routers, 1ms inside a region, 40ms across, up to 50%
// jitter), default config, one issuance (a session and a certificate
// record) every 20ms (50 events/s, spread over the controllers), pushes,
// repairs and anti-entropy all counted. Its metrics are the messages and
// bytes a node receives per event, as meshsim reports them.
//
//	go test -run '^$' -bench PushFanout -benchtime 500x ./gossip/
func BenchmarkPushFanout(b *testing.B) {
	for _, tc := range []struct {
		name  string
		loss  float64
		eager int
	}{
		{"loss=0", 0, 2},
		{"loss=1%", 0.01, 2},
		{"loss=1%/lazy", 0.01, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			v := &testVerifier{}
			net := newTestNetConfig(b, 1, regions3, 99, v, func(cfg *Config) { cfg.EagerTrees = tc.eager })
			net.loss = tc.loss
			writers := map[string]*writer{}
			for _, r := range regions3 {
				writers[r] = newWriter(v, "ctrl-"+r)
			}
			net.run(time.Second) // anti-entropy phases settle
			msgs0, bytes0 := received(net)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := regions3[i%len(regions3)]
				c := net.nodes["ctrl-"+r]
				s, cert := writers[r].session(b, c, net.now, byte(i))
				if err := c.Publish(net.now, []crdt.Record{s, cert}); err != nil {
					b.Fatal(err)
				}
				net.run(20 * time.Millisecond)
			}
			net.run(200 * time.Millisecond) // the last event lands
			b.StopTimer()
			msgs, bytes := received(net)
			nodes := float64(len(net.nodes))
			b.ReportMetric(float64(msgs-msgs0)/float64(b.N)/nodes, "msgs/event/node")
			b.ReportMetric(float64(bytes-bytes0)/float64(b.N)/nodes, "bytes/event/node")
			net.run(3 * time.Second)
			net.converged(2 * b.N)
		})
	}
}

// received sums the messages and bytes every node received.
func received(net *testNet) (msgs, bytes uint64) {
	for _, c := range net.nodes {
		st := c.Stats()
		for _, n := range st.MessagesIn {
			msgs += n
		}
		bytes += st.BytesIn
	}
	return msgs, bytes
}

// BenchmarkCatchUp100k measures how long a fresh node takes to catch up
// with a peer holding 100,000 records (50,000 sessions and their
// certificates) through anti-entropy alone, in the in-test network (1ms
// one way, no loss). Wall time includes verifying every record: with the
// test verifier (a hash) it measures the protocol and the store, with
// verifier=pki the production Verifier's ECDSA P-256 checks.
//
//	go test -run '^$' -bench CatchUp100k -benchtime 3x ./gossip/
func BenchmarkCatchUp100k(b *testing.B) {
	const sessions = 50_000
	b.Run("verifier=hash", func(b *testing.B) {
		v := &testVerifier{}
		w := newWriter(v, "ctrl-us")
		src := crdt.NewStore()
		clock := crdt.NewClock(0)
		for i := 0; i < sessions; i++ {
			s, c := sessionPair(w, clock, i)
			for _, r := range []crdt.Record{s, c} {
				if err := crdt.Sign(r, w.signer); err != nil {
					b.Fatal(err)
				}
				src.MergeVerified(r)
			}
		}
		benchCatchUp(b, src, func(*crdt.Store) crdt.Verifier { return v })
	})
	b.Run("verifier=pki", func(b *testing.B) {
		p := trusttest.NewPKI(b, epoch, []string{"ctrl-us"}, nil)
		w := &writer{author: crdt.Author{Name: "ctrl-us", Incarnation: 1}}
		signer := trust.RecordSigner{Key: p.Ctrl["ctrl-us"].Key}
		src := crdt.NewStore()
		clock := crdt.NewClock(0)
		sr, err := trust.NewSignerRecord(p.Ctrl["ctrl-us"].Cert, trusttest.TrustDomain)
		if err != nil {
			b.Fatal(err)
		}
		w.seq++
		sr.Header = crdt.Header{Author: w.author, Seq: w.seq, HLC: clock.Now(epoch)}
		if err := crdt.Sign(sr, signer); err != nil {
			b.Fatal(err)
		}
		src.MergeVerified(sr)
		for i := 0; i < sessions; i++ {
			s, c := sessionPair(w, clock, i)
			for _, r := range []crdt.Record{s, c} {
				if err := crdt.Sign(r, signer); err != nil {
					b.Fatal(err)
				}
				src.MergeVerified(r)
			}
		}
		benchCatchUp(b, src, func(s *crdt.Store) crdt.Verifier {
			v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return s })
			if err != nil {
				b.Fatal(err)
			}
			return v
		})
	})
}

func sessionPair(w *writer, clock *crdt.Clock, i int) (*crdt.SessionRecord, *crdt.CertRecord) {
	var id crdt.SessionID
	var serial crdt.Serial
	for j := 0; j < 8; j++ {
		id[j] = byte(i >> (8 * j))
		serial[j] = byte(i >> (8 * j))
	}
	id[15], serial[15] = 1, 2
	w.seq++
	s := &crdt.SessionRecord{ID: id, Identity: fmt.Sprintf("user-%d", i), Method: "oidc",
		Created: crdt.MillisOf(epoch), Expires: crdt.MillisOf(epoch.Add(24 * time.Hour))}
	s.Header = crdt.Header{Author: w.author, Seq: w.seq, HLC: clock.Now(epoch)}
	w.seq++
	c := &crdt.CertRecord{Serial: serial, Session: id, Identity: s.Identity, Fingerprint: [32]byte{byte(i)},
		NotBefore: crdt.MillisOf(epoch.Add(-time.Minute)), NotAfter: crdt.MillisOf(epoch.Add(time.Hour))}
	c.Header = crdt.Header{Author: w.author, Seq: w.seq, HLC: clock.Now(epoch)}
	return s, c
}

// benchCatchUp syncs a fresh router with a controller holding src, b.N
// times, and reports the time one catch-up takes.
func benchCatchUp(b *testing.B, src *crdt.Store, verifier func(*crdt.Store) crdt.Verifier) {
	want := src.Len()
	var virtual time.Duration
	var deltas uint64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		net := &testNet{
			t: b, rng: rand.New(rand.NewPCG(1, 1)), now: epoch,
			nodes: map[string]*Core{}, down: map[string]bool{}, region: map[string]string{},
			wants: map[string][]WantResult{},
			delay: func(string, string) time.Duration { return time.Millisecond },
		}
		members := []Member{{Name: "ctrl-us", Role: RoleController, Region: "us"}, {Name: "r-us-0", Role: RoleRouter, Region: "us"}}
		for j, m := range members {
			cfg := DefaultConfig()
			cfg.Name, cfg.Role, cfg.Region = m.Name, m.Role, m.Region
			cfg.AntiEntropyInterval = time.Hour // only the exchange started below
			store := src
			if m.Role == RoleRouter {
				store = crdt.NewStore()
			}
			c, err := NewCore(cfg, store, verifier(store), rand.New(rand.NewPCG(1, uint64(j))))
			if err != nil {
				b.Fatal(err)
			}
			net.nodes[m.Name], net.region[m.Name] = c, m.Region
		}
		for _, c := range net.nodes {
			for _, m := range members {
				c.SetMember(m)
			}
			c.Tick(net.now)
		}
		fresh := net.nodes["r-us-0"]
		b.StartTimer()
		start := net.now
		fresh.SyncWith(net.now, "ctrl-us")
		for fresh.Store().Len() < want && net.now.Sub(start) < time.Minute {
			net.run(10 * time.Millisecond)
		}
		b.StopTimer()
		if got := fresh.Store().Len(); got != want || fresh.Store().Digest() != src.Digest() {
			b.Fatalf("caught up %d of %d records", got, want)
		}
		if !fresh.Synced() {
			b.Fatal("caught up but not Synced")
		}
		virtual += net.now.Sub(start)
		deltas += fresh.Stats().MessagesIn[MsgDelta]
		b.StartTimer()
	}
	b.StopTimer()
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perOp.Milliseconds()), "ms/catchup")
	b.ReportMetric(float64(want)/perOp.Seconds(), "records/s")
	b.ReportMetric(float64(virtual.Milliseconds())/float64(b.N), "virtual-ms")
	b.ReportMetric(float64(deltas)/float64(b.N), "deltas")
}

// BenchmarkForward measures what relaying one push costs a node: the
// recently-forwarded check, the tree layout and the sends to its children,
// in a region of 400 members at the default fanout. A relay forwards every
// batch of its region once per tree, so this runs once per delivery in a
// large mesh and should not allocate (allocs/op rounds the outbox's chunk
// allocation down to 0).
//
//	go test -run '^$' -bench Forward -benchmem ./gossip/
func BenchmarkForward(b *testing.B) {
	const region, members = "eu", 400
	cfg := DefaultConfig()
	cfg.Name, cfg.Role, cfg.Region = "r-0001", RoleRouter, region // near the root, with children
	c, err := NewCore(cfg, crdt.NewStore(), &testVerifier{}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	c.SetMember(Member{Name: "ctrl-eu", Role: RoleController, Region: region})
	for i := 0; i < members-1; i++ {
		c.SetMember(Member{Name: fmt.Sprintf("r-%04d", i), Role: RoleRouter, Region: region})
	}
	var trees [2]*Message
	for t := range trees {
		trees[t] = &Message{Type: MsgPush, Origin: "ctrl-eu", Tree: uint8(t), Region: region}
	}
	sent := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := trees[i%2]
		m.Batch = uint64(i/2) + 1
		c.forward(m)
		sent += len(c.Ready().Messages)
	}
	b.ReportMetric(float64(sent)/float64(b.N), "sends/op")
}
