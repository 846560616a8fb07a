package mesh

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// The data plane never waits for the control plane: these benchmarks
// measure admission lookups (Mesh.View, as router.Decide makes them) at a
// router while its mesh ingests genuinely signed records, and what ingest
// costs. Frames enter where memberlist hands them over (the delegate's
// NotifyMsg), so everything a received record goes through is measured:
// decoding, the checks off the loop, the loop, the core, the store.
//
//	go test -run '^$' -bench 'Admission|Collect|Ingest' -benchtime 1x ./gossip/mesh/
//
// The machine they run on is shared: absolute figures move with its load;
// compare runs made together (benchstat).

const (
	benchLogins    = 50_000 // a session and a certificate record each: 100k records
	benchAuthor    = "ctrl-us"
	probeEvery     = 200 * time.Microsecond
	catchUpPerMsg  = 1_300 // records per delta, as a controller's delta budget cuts them
	stormRate      = 20_000
	stormSeconds   = 5
	stormPerPush   = 2 // a login: its session and certificate records
	collectRecords = 1_000_000
)

// benchBatch is how many records the benchmarks' controller signs with
// one signature, as its group commit does (crdt.SignBatch); 0 signs each
// record alone, as controllers did before batch signatures.
var benchBatch = flag.Int("mesh.bench.batch", 64, "records per batch signature in the benchmarks' record set (0: each signed alone)")

// benchSet is 100,001 records signed with a real controller key: the
// controller's signer record, then benchLogins sessions and their
// certificates. Signing them takes seconds, so every benchmark shares one.
var benchSet struct {
	once sync.Once
	pki  *trusttest.PKI
	recs []crdt.Record
}

func benchRecords(b *testing.B) (*trusttest.PKI, []crdt.Record) {
	benchSet.once.Do(func() {
		start := time.Now().Add(-time.Hour)
		p := trusttest.NewPKI(b, start, []string{benchAuthor}, []string{"r-bench"})
		clock := crdt.NewClock(0)
		w := trusttest.NewAuthor(b, benchAuthor, p.Ctrl[benchAuthor].Key, func() crdt.Timestamp {
			return clock.Now(time.Now().Add(-5 * time.Minute))
		})
		recs := []crdt.Record{w.Signer(p.Ctrl[benchAuthor])}
		for range benchLogins {
			s, c := w.Session(time.Now())
			recs = append(recs, s, c)
		}
		for i := 1; *benchBatch > 0 && i < len(recs); i += *benchBatch {
			batch := recs[i:min(i+*benchBatch, len(recs))]
			if err := crdt.SignBatch(batch, trust.RecordSigner{Key: w.Key}); err != nil {
				b.Fatal(err)
			}
		}
		benchSet.pki, benchSet.recs = p, recs
	})
	return benchSet.pki, benchSet.recs
}

// benchMesh is a lone router's Mesh with a real verifier, and a count of
// the records it applied.
type benchMesh struct {
	m        *Mesh
	applied  atomic.Int64
	progress chan struct{} // a signal after each batch applied
}

func newBenchMesh(b *testing.B, p *trusttest.PKI, store *crdt.Store, edit func(*Config)) *benchMesh {
	b.Helper()
	core := gossip.DefaultConfig()
	core.Name, core.Role, core.Region = "r-bench", gossip.RoleRouter, "us"
	cfg := Config{Core: core, Bind: "127.0.0.1:0", Logger: testLogger(), JoinTimeout: time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg, store, v)
	if err != nil {
		b.Fatal(err)
	}
	bm := &benchMesh{m: m, progress: make(chan struct{}, 1)}
	m.Subscribe(func(applied []crdt.Record) {
		bm.applied.Add(int64(len(applied)))
		select {
		case bm.progress <- struct{}{}:
		default:
		}
	})
	return bm
}

// deliver hands a frame to the mesh as memberlist would.
func (bm *benchMesh) deliver(frame []byte) { delegate{bm.m}.NotifyMsg(frame) }

// waitApplied waits until n records are applied, or until nothing was
// applied for idle; it reports whether all were.
func (bm *benchMesh) waitApplied(n int64, idle time.Duration) bool {
	for bm.applied.Load() < n {
		select {
		case <-bm.progress:
		case <-time.After(idle):
			return bm.applied.Load() >= n
		}
	}
	return true
}

// frames encodes recs as messages of per records from the controller:
// deltas, or pushes down its region's first tree.
func frames(b *testing.B, typ gossip.MsgType, recs []crdt.Record, per int) [][]byte {
	b.Helper()
	var out [][]byte
	for i := 0; i < len(recs); i += per {
		msg := &gossip.Message{Type: typ, SentAt: crdt.MillisOf(time.Now()), Records: recs[i:min(i+per, len(recs))]}
		if typ == gossip.MsgPush {
			msg.Origin, msg.Batch, msg.Region = benchAuthor, uint64(len(out)+1), "us"
		}
		f, err := gossip.EncodeFrame(benchAuthor, msg)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// prober makes an admission lookup every probeEvery, as router.Decide
// does, and keeps how long each waited from when it was due, not from
// when it started: a lookup blocked for 100ms delays the 500 due behind
// it, and each of them counts (no coordinated omission). after, if set,
// runs in the lookup's View.
type prober struct {
	stop chan struct{}
	done chan struct{}
	lat  []time.Duration // from when each was due to when it returned
	view []time.Duration // from its call to its return: the wait for the lock alone
}

func startProber(m *Mesh, facts crdt.CertFacts, after func(*crdt.Store) bool) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTimer(0)
		defer t.Stop()
		due := time.Now()
		for {
			due = due.Add(probeEvery)
			if d := time.Until(due); d > 0 {
				t.Reset(d)
				select {
				case <-p.stop:
					return
				case <-t.C:
				}
			} else {
				select {
				case <-p.stop:
					return
				default:
				}
			}
			start := time.Now()
			now := crdt.MillisOf(start)
			last := false
			m.View(func(s *crdt.Store) {
				s.Admission(facts, now, false)
				last = after != nil && after(s)
			})
			p.lat = append(p.lat, time.Since(due))
			p.view = append(p.view, time.Since(start))
			if last {
				return
			}
		}
	}()
	return p
}

func (p *prober) finish() *prober {
	close(p.stop)
	<-p.done
	return p
}

// latencies are the lookups of every run of a benchmark.
type latencies struct{ lat, view []time.Duration }

func (l *latencies) add(p *prober) {
	l.lat = append(l.lat, p.lat...)
	l.view = append(l.view, p.view...)
}

// report reports the p50, p99 and max of the lookups in microseconds,
// counted from when they were due; and, as view-p99-us and view-max-us,
// counted from their call, which leaves out how long the prober itself
// waited for a core: on a loaded machine that wait is the OS's, not the
// mesh's.
func (l *latencies) report(b *testing.B) {
	if len(l.lat) == 0 {
		b.Fatal("no admission lookup was made")
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	q := func(lat []time.Duration, f float64) float64 { return us(lat[int(f*float64(len(lat)-1))]) }
	slices.Sort(l.lat)
	slices.Sort(l.view)
	b.ReportMetric(q(l.lat, 0.50), "p50-us")
	b.ReportMetric(q(l.lat, 0.99), "p99-us")
	b.ReportMetric(us(l.lat[len(l.lat)-1]), "max-us")
	b.ReportMetric(q(l.view, 0.99), "view-p99-us")
	b.ReportMetric(us(l.view[len(l.view)-1]), "view-max-us")
	b.ReportMetric(float64(len(l.lat)), "lookups")
}

// probeFacts are those of a certificate no record names: a lookup that
// misses every index, as for a client whose records are still on their way.
func probeFacts() crdt.CertFacts {
	now := crdt.MillisOf(time.Now())
	return crdt.CertFacts{Serial: crdt.Serial{1}, Session: crdt.SessionID{1}, Identity: "bob", Issuer: benchAuthor,
		NotBefore: now - 60_000, NotAfter: now + 3_600_000}
}

// BenchmarkAdmissionDuringCatchUp: admission lookups every 200µs while a
// fresh router catches up 100k records, in deltas of 1,300 records asked
// for one after the other (the next once the last is applied), as
// anti-entropy does.
func BenchmarkAdmissionDuringCatchUp(b *testing.B) {
	p, recs := benchRecords(b)
	deltas := frames(b, gossip.MsgDelta, recs, catchUpPerMsg)
	var all latencies
	for b.Loop() {
		bm := newBenchMesh(b, p, crdt.NewStore(), nil)
		pr := startProber(bm.m, probeFacts(), nil)
		catchUp(b, bm, deltas, catchUpPerMsg, len(recs))
		all.add(pr.finish())
		bm.m.Close()
	}
	all.report(b)
}

// catchUp delivers deltas one after the other, each once the one before
// is applied, and fails unless all of want records are.
func catchUp(b *testing.B, bm *benchMesh, deltas [][]byte, per, want int) {
	for i, f := range deltas {
		bm.deliver(f)
		if !bm.waitApplied(int64(min((i+1)*per, want)), 30*time.Second) {
			b.Fatalf("delta %d not applied: %d records of %d", i, bm.applied.Load(), want)
		}
	}
}

// BenchmarkAdmissionDuringStorm: the same while 20,000 records/s (a
// login's two records per push) are offered for 5s. dropped counts the
// pushes the node dropped (queue_full); drain-ms is how long after the
// storm's end the node held every record (repairing what it dropped from
// the controller), and missing what it still lacked 30s after the last
// record applied.
func BenchmarkAdmissionDuringStorm(b *testing.B) {
	p, recs := benchRecords(b)
	signer, logins := recs[:1], recs[1:]
	first := frames(b, gossip.MsgDelta, signer, 1)[0]
	pushes := frames(b, gossip.MsgPush, logins, stormPerPush)
	var all latencies
	var dropped, missing uint64
	var repair time.Duration
	for b.Loop() {
		// The controller the pushes come from is a member too, over real
		// memberlist on loopback: what the router drops, it repairs from
		// it (gaps, anti-entropy). Each push's records are in its store
		// from the moment the push is offered.
		cstore := crdt.NewStore()
		if _, err := cstore.MergeVerified(signer[0]); err != nil {
			b.Fatal(err)
		}
		ctrl := newBenchMesh(b, p, cstore, func(cfg *Config) {
			cfg.Core.Name, cfg.Core.Role = benchAuthor, gossip.RoleController
		})
		bm := newBenchMesh(b, p, crdt.NewStore(), func(cfg *Config) { cfg.Join = []string{ctrl.m.Addr()} })
		bm.deliver(first)
		bm.waitApplied(1, 30*time.Second)
		pr := startProber(bm.m, probeFacts(), nil)
		storm(bm, pushes, func(i int) {
			ctrl.m.View(func(s *crdt.Store) {
				for _, r := range logins[i*stormPerPush : min((i+1)*stormPerPush, len(logins))] {
					s.MergeVerified(r)
				}
			})
		})
		end := time.Now()
		bm.waitApplied(int64(len(recs)), 30*time.Second)
		repair += time.Since(end)
		all.add(pr.finish())
		dropped += bm.m.dropped.Load()
		missing += uint64(int64(len(recs)) - bm.applied.Load())
		bm.m.Close()
		ctrl.m.Close()
	}
	all.report(b)
	b.ReportMetric(float64(dropped)/float64(b.N), "dropped")
	b.ReportMetric(float64(missing)/float64(b.N), "missing")
	b.ReportMetric(float64(repair.Milliseconds())/float64(b.N), "drain-ms")
}

// storm delivers pushes at stormRate records per second, a millisecond's
// worth at a time, calling offered(i) before push i.
func storm(bm *benchMesh, pushes [][]byte, offered func(i int)) {
	perMs := stormRate / 1000 / stormPerPush
	start := time.Now()
	for i := 0; i < len(pushes) && i < stormRate*stormSeconds/stormPerPush; i += perMs {
		if d := time.Until(start.Add(time.Duration(i/perMs) * time.Millisecond)); d > 0 {
			time.Sleep(d) // pacing the offered load, not waiting for a result
		}
		for j, f := range pushes[i:min(i+perMs, len(pushes))] {
			if offered != nil {
				offered(i + j)
			}
			bm.deliver(f)
		}
	}
}

// BenchmarkIngest: what ingesting genuinely signed records costs a
// receiving node. us/record is the process's CPU time (user and system,
// every core) per record while it ingests a storm offered as fast as it
// applies it (at most 2,000 records waiting); catchup-ms the wall time of
// a 100k-record catch-up in deltas of 1,300.
func BenchmarkIngest(b *testing.B) {
	p, recs := benchRecords(b)
	deltas := frames(b, gossip.MsgDelta, recs, catchUpPerMsg)
	signer, logins := recs[:1], recs[1:]
	first := frames(b, gossip.MsgDelta, signer, 1)[0]
	pushes := frames(b, gossip.MsgPush, logins, 20)
	var catchUpWall, cpu time.Duration
	for b.Loop() {
		bm := newBenchMesh(b, p, crdt.NewStore(), nil)
		start := time.Now()
		catchUp(b, bm, deltas, catchUpPerMsg, len(recs))
		catchUpWall += time.Since(start)
		bm.m.Close()

		bm = newBenchMesh(b, p, crdt.NewStore(), nil)
		bm.deliver(first)
		bm.waitApplied(1, 30*time.Second)
		cpu0 := cpuTime(b)
		for i, f := range pushes {
			for int64(i*20)-bm.applied.Load() > 2_000 {
				<-bm.progress
			}
			bm.deliver(f)
		}
		if !bm.waitApplied(int64(len(recs)), 30*time.Second) {
			b.Fatalf("storm: %d records of %d applied", bm.applied.Load(), len(recs))
		}
		cpu += cpuTime(b) - cpu0
		bm.m.Close()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(logins)), "us/record")
	b.ReportMetric(float64(catchUpWall.Milliseconds())/float64(b.N), "catchup-ms")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollect: admission lookups every 200µs while a router's mesh
// collects a store of 1M records, half of them expired long enough to go.
// max-hold-us is the longest a lookup waited: the longest admission was
// blocked.
func BenchmarkCollect(b *testing.B) {
	p, _ := benchRecords(b)
	var all latencies
	for b.Loop() {
		b.StopTimer()
		store, keep := collectStore()
		b.StartTimer()
		bm := newBenchMesh(b, p, store, func(cfg *Config) { cfg.CollectInterval = time.Nanosecond })
		left := store.Len()
		pr := startProber(bm.m, probeFacts(), func(s *crdt.Store) bool {
			left = s.Len()
			return left <= keep
		})
		select {
		case <-pr.done:
		case <-time.After(time.Minute):
			pr.finish()
			b.Fatalf("not collected within a minute: %d records left, want %d", left, keep)
		}
		all.add(pr)
		bm.m.Close()
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	slices.Sort(all.lat)
	slices.Sort(all.view)
	b.ReportMetric(us(all.view[len(all.view)-1]), "max-hold-us")
	b.ReportMetric(us(all.lat[len(all.lat)-1]), "max-us")
	b.ReportMetric(us(all.lat[len(all.lat)*99/100]), "p99-us")
}

// collectStore returns a store of collectRecords session and certificate
// records of a few authors, half of them expired an hour and more ago,
// and how many records Collect leaves. The records are not signed: they
// are merged as verified, as a snapshot restores them.
func collectStore() (*crdt.Store, int) {
	store := crdt.NewStore()
	now := time.Now()
	old := crdt.NewTimestamp(crdt.MillisOf(now.Add(-3*time.Hour)), 0)
	recent := crdt.NewTimestamp(crdt.MillisOf(now.Add(-time.Minute)), 0)
	keep := 0
	for a := range 4 {
		author := crdt.Author{Name: fmt.Sprintf("ctrl-%d", a), Incarnation: 1}
		var seq uint64
		for i := range collectRecords / 8 {
			expired := i%2 == 0
			hlc, end := recent, crdt.MillisOf(now.Add(24*time.Hour))
			if expired {
				hlc, end = old, crdt.MillisOf(now.Add(-2*time.Hour))
			} else {
				keep += 2
			}
			var id crdt.SessionID
			var sn crdt.Serial
			id[0], id[1], id[2], id[3], id[15] = byte(a), byte(i), byte(i>>8), byte(i>>16), 1
			sn[0], sn[1], sn[2], sn[3], sn[15] = byte(a), byte(i), byte(i>>8), byte(i>>16), 2
			seq++
			s := &crdt.SessionRecord{Header: crdt.Header{Author: author, Seq: seq, HLC: hlc}, ID: id,
				Identity: fmt.Sprintf("user-%d", i), Method: "oidc", Created: hlc.Millis(), Expires: end}
			seq++
			c := &crdt.CertRecord{Header: crdt.Header{Author: author, Seq: seq, HLC: hlc}, Serial: sn, Session: id,
				Identity: s.Identity, NotBefore: hlc.Millis(), NotAfter: end}
			for _, r := range []crdt.Record{s, c} {
				if _, err := store.MergeVerified(r); err != nil {
					panic(err)
				}
			}
		}
	}
	return store, keep
}
