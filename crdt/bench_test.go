package crdt

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Benchmarks of the store at scale. The store size defaults to 1,000,000
// records and is set with -crdt.bench.size=N (or CRDT_BENCH_SIZE=N), so
// that runs at 10k and 1M compare under the same names:
//
//	go test ./crdt/ -run '^$' -bench . -benchtime 1x           # StoreMemory, Snapshot
//	go test ./crdt/ -run '^$' -bench 'Merge|DeltaSince'
//	go test ./crdt/ -run '^$' -bench DeltaSince -crdt.bench.size=10000
var benchSize = flag.Int("crdt.bench.size", envInt("CRDT_BENCH_SIZE", 1_000_000),
	"records in the store of the crdt benchmarks (StoreMemory: certs, plus as many sessions)")

// benchBatch, when above 0, makes fill's controllers sign their records
// in batches of that many (SignBatch), as a group commit does: the store
// then keeps each batch's shared Batch.
var benchBatch = flag.Int("crdt.bench.batch", 0, "records per batch signature in the crdt benchmarks' stores (0: each signed alone)")

// noSigner signs with a zero signature: the benchmarks verify nothing.
type noSigner struct{}

func (noSigner) Sign([]byte) (Signature, error) { return Signature{}, nil }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchGen writes what a mesh of controllers writes: logins, each a
// session record and a cert record, with realistic sizes: five
// controllers, 100,000 identities of about 20 characters, random 64-byte
// signatures. Every string is a fresh copy, as a decoded record's would be.
type benchGen struct {
	rng        *rand.Rand
	authors    []Author
	seqs       []uint64
	identities []string
	method     string
	now        Millis
	n          int
}

func newBenchGen() *benchGen {
	g := &benchGen{
		rng:    rand.New(rand.NewPCG(1, 2)),
		method: "oidc:https://login.corp.example",
		now:    t0,
	}
	for _, name := range []string{"ctrl-us-east-1", "ctrl-us-west-2", "ctrl-eu-west-1", "ctrl-eu-central-1", "ctrl-ap-south-1"} {
		g.authors = append(g.authors, Author{name, g.rng.Uint64()})
	}
	g.seqs = make([]uint64, len(g.authors))
	for i := 0; i < 100_000; i++ {
		g.identities = append(g.identities, fmt.Sprintf("user%06d@corp.example", i))
	}
	return g
}

func (g *benchGen) header(a int) Header {
	g.seqs[a]++
	g.now += 3
	h := Header{Author: Author{strings.Clone(g.authors[a].Name), g.authors[a].Incarnation}, Seq: g.seqs[a], HLC: NewTimestamp(g.now, 0)}
	var sig Signature
	for i := 0; i < len(sig); i += 8 {
		binary.LittleEndian.PutUint64(sig[i:], g.rng.Uint64())
	}
	h.SetSig(sig)
	return h
}

// login returns the records of one login: a session and its certificate.
func (g *benchGen) login() (*SessionRecord, *CertRecord) {
	g.n++
	a := g.rng.IntN(len(g.authors))
	ident := g.identities[g.rng.IntN(len(g.identities))]
	var id SessionID
	var sn Serial
	binary.LittleEndian.PutUint64(id[:], g.rng.Uint64())
	binary.LittleEndian.PutUint64(id[8:], g.rng.Uint64())
	binary.LittleEndian.PutUint64(sn[:], g.rng.Uint64())
	binary.LittleEndian.PutUint64(sn[8:], g.rng.Uint64())
	sess := &SessionRecord{Header: g.header(a), ID: id, Identity: strings.Clone(ident), Method: strings.Clone(g.method),
		Created: g.now, Expires: g.now + 8*hour}
	cert := &CertRecord{Header: g.header(a), Serial: sn, Session: id, Identity: strings.Clone(ident),
		NotBefore: g.now - minute, NotAfter: g.now + hour}
	for i := 0; i < len(cert.Fingerprint); i += 8 {
		binary.LittleEndian.PutUint64(cert.Fingerprint[i:], g.rng.Uint64())
	}
	return sess, cert
}

// fill merges n records (n/2 logins) into s.
func (g *benchGen) fill(tb testing.TB, s *Store, n int) {
	pending := map[Author][]Record{}
	merge := func(recs ...Record) {
		for _, r := range recs {
			if _, err := s.MergeVerified(r); err != nil {
				tb.Fatal(err)
			}
		}
	}
	flush := func(a Author) {
		if err := SignBatch(pending[a], noSigner{}); err != nil {
			tb.Fatal(err)
		}
		merge(pending[a]...)
		pending[a] = pending[a][:0]
	}
	for i := 0; i < n; i += 2 {
		sess, cert := g.login()
		if *benchBatch <= 0 {
			merge(sess, cert)
			continue
		}
		a := sess.Author
		if pending[a] = append(pending[a], sess, cert); len(pending[a]) >= *benchBatch {
			flush(a)
		}
	}
	for a := range pending {
		flush(a)
	}
}

// benchStores caches read-only stores by size: building 1M records takes
// seconds.
var benchStores sync.Map // int → *Store

func benchStore(b *testing.B, n int) *Store {
	if s, ok := benchStores.Load(n); ok {
		return s.(*Store)
	}
	s := NewStore()
	newBenchGen().fill(b, s, n)
	benchStores.Store(n, s)
	return s
}

// BenchmarkStoreMemory reports the heap a store takes per record, for
// -crdt.bench.size certificates and as many sessions (1M + 1M by default).
func BenchmarkStoreMemory(b *testing.B) {
	pairs := *benchSize
	var perRecord float64
	for i := 0; i < b.N; i++ {
		g := newBenchGen()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := NewStore()
		g.fill(b, s, 2*pairs)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s.Len() != 2*pairs {
			b.Fatalf("store holds %d records", s.Len())
		}
		perRecord = float64(after.HeapAlloc-before.HeapAlloc) / float64(2*pairs)
		runtime.KeepAlive(s)
		runtime.KeepAlive(g)
	}
	b.ReportMetric(perRecord, "bytes/record")
}

// BenchmarkMerge merges one new, verified record into a store that holds
// -crdt.bench.size records. Records are made, with the clock stopped, in
// small batches just before they are merged, as a node merges what it has
// just decoded and verified: hot in the cache.
func BenchmarkMerge(b *testing.B) {
	g := newBenchGen()
	s := NewStore()
	g.fill(b, s, *benchSize)
	batch := make([]Record, 0, 256)
	next := func() {
		batch = batch[:0]
		for len(batch) < cap(batch) {
			sess, cert := g.login()
			batch = append(batch, sess, cert)
		}
	}
	next()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i, j := 0, 0; i < b.N; i, j = i+1, j+1 {
		if j == len(batch) {
			b.StopTimer()
			next()
			j = 0
			b.StartTimer()
		}
		if ok, err := s.MergeVerified(batch[j]); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkDeltaSince computes the delta for a peer that lacks the 100
// latest records of a store of -crdt.bench.size records.
func BenchmarkDeltaSince(b *testing.B) {
	s := benchStore(b, *benchSize)
	peer := s.Context()
	missing := 0
	for i := 0; missing < 100; i = (i + 1) % len(peer) {
		peer[i].Max--
		missing++
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := s.DeltaSince(peer, 1<<20)
		if len(d.Records) != 100 {
			b.Fatalf("delta of %d records", len(d.Records))
		}
	}
}

// BenchmarkSnapshot encodes a store of -crdt.bench.size records and decodes
// the snapshot; MB/s counts the snapshot's bytes once per operation.
func BenchmarkSnapshot(b *testing.B) {
	s := benchStore(b, *benchSize)
	var buf bytes.Buffer
	if err := s.EncodeSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := s.EncodeSnapshot(&buf); err != nil {
			b.Fatal(err)
		}
		snap, err := DecodeSnapshot(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Records) != s.Len() {
			b.Fatalf("decoded %d records", len(snap.Records))
		}
	}
	b.ReportMetric(float64(buf.Len())/float64(s.Len()), "snapshot-bytes/record")
}
