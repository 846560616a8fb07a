package crdt

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

// Decoders take bytes from peers and from disk: whatever the bytes, they
// return a value or an error, never panic, and allocate in proportion to
// the input, never to the lengths it claims. The seed corpora run in every
// go test; go test -fuzz explores from them:
//
//	go test ./crdt/ -run '^$' -fuzz FuzzDecodeRecord -fuzztime 60s
//	go test ./crdt/ -run '^$' -fuzz FuzzDecodeFrom -fuzztime 60s
//	go test ./crdt/ -run '^$' -fuzz FuzzDecodeSnapshot -fuzztime 60s

// allocBound is the most decoding n bytes may allocate: a generous
// multiple of the input plus a constant for the decoder and first buffers.
// A length taken on trust from the input would blow through it.
func allocBound(n int) uint64 { return 64*uint64(n) + 1<<20 }

// boundedAllocs runs f and fails if it allocated more than allocBound(n).
func boundedAllocs(t *testing.T, n int, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(n) {
		t.Fatalf("decoding %d bytes allocated %d bytes", n, got)
	}
}

func expectDecodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v is neither ErrMalformed nor ErrInvalid", err)
	}
}

func seedRecords(f *testing.F) {
	for _, r := range sampleRecords() {
		b := AppendRecord(nil, r)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, r := range batchSamples() {
		b := AppendRecord(nil, r)
		f.Add(b)
		f.Add(b[:len(b)-5])
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x9b, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff})
}

func FuzzDecodeRecord(f *testing.F) {
	seedRecords(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		var err error
		boundedAllocs(t, len(b), func() { r, err = DecodeRecord(b) })
		if err != nil {
			expectDecodeError(t, err)
			return
		}
		// What decodes re-encodes to a fixed point.
		enc := AppendRecord(nil, r)
		r2, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoding of a decoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(r, r2, cmp.Comparer(sameBatch)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if !bytes.Equal(enc, AppendRecord(nil, r2)) || !bytes.Equal(SignedBytes(r), SignedBytes(r2)) {
			t.Fatal("encoding is not a fixed point")
		}
		if EncodedSizeHint(r) < len(enc) {
			t.Fatalf("EncodedSizeHint %d below the encoding's %d bytes", EncodedSizeHint(r), len(enc))
		}
	})
}

func FuzzDecodeFrom(f *testing.F) {
	for _, recs := range [][]Record{nil, sampleRecords(), storeSamples()[:3], batchSamples(), batchSamples()[2:]} {
		var buf bytes.Buffer
		if err := EncodeTo(msgpack.NewEncoder(&buf), recs); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()*2/3])
	}
	f.Add([]byte{0xdd, 0x00, 0x01, 0x00, 0x00})
	f.Add([]byte{0xdc, 0xff, 0xff, 0x9b, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		var err error
		boundedAllocs(t, len(b), func() { recs, err = DecodeFrom(msgpack.NewDecoder(bytes.NewReader(b)), 64) })
		if err != nil {
			expectDecodeError(t, err)
			return
		}
		var buf bytes.Buffer
		if err := EncodeTo(msgpack.NewEncoder(&buf), recs); err != nil {
			t.Fatal(err)
		}
		again, err := DecodeFrom(msgpack.NewDecoder(&buf), 64)
		if err != nil {
			t.Fatalf("re-encoded list does not decode: %v", err)
		}
		if diff := cmp.Diff(recs, again, equateEmpty); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		// A delta from a peer goes into a store, and the store keeps
		// answering, whatever the records say.
		s := NewStore()
		for _, r := range recs {
			s.MergeVerified(r)
		}
		exerciseStore(t, s, recs)
	})
}

// exerciseStore runs every operation of s once, to shake out panics on
// odd contents.
func exerciseStore(t *testing.T, s *Store, recs []Record) {
	now := t0 + hour
	for _, r := range recs {
		if c, ok := r.(*CertRecord); ok {
			s.Admission(facts(c), now, true)
			s.Live(facts(c), now)
		}
	}
	for _, svc := range s.Services() {
		for _, p := range s.Policies() {
			for _, sel := range p.Identities {
				s.Access(sel[1:], SessionID{}, svc.Name)
				s.AccessOf(sel[1:], nil)
			}
		}
	}
	peer := NewStore()
	for i := 0; i < 1000; i++ {
		d := s.DeltaSince(peer.Context(), 512)
		for _, r := range d.Records {
			peer.MergeVerified(r)
		}
		for _, iv := range d.Intervals {
			peer.CoverInterval(iv, now)
		}
		if len(d.Records) == 0 {
			break
		}
	}
	if s.Missing(peer.Context()) == 0 && peer.Digest() != s.Digest() {
		t.Fatalf("a peer synced from the store has digest %x, want %x", peer.Digest(), s.Digest())
	}
	s.Missing(nil)
	var buf bytes.Buffer
	if err := s.EncodeSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap, err := DecodeSnapshot(&buf)
	if err != nil {
		t.Fatalf("the store's own snapshot does not decode: %v", err)
	}
	r := NewStore()
	if err := r.RestoreVerified(snap); err != nil {
		t.Fatalf("the store's own snapshot does not restore: %v", err)
	}
	if r.Digest() != s.Digest() {
		t.Fatal("restored digest differs")
	}
	s.Collect(t0+1000*hour, DefaultMaxOffset, time.Minute)
}

func FuzzDecodeSnapshot(f *testing.F) {
	for _, recs := range [][]Record{nil, storeSamples(), append(storeSamples(),
		newSession(ctrlC, 9, t0, sid(60), "gap", t0+hour),
		newRootRevocation(ctrlB, 4, t0+hour, "ctrl-a", t0-hour, 0))} {
		s := NewStore()
		for _, r := range recs {
			s.MergeVerified(r)
		}
		var buf bytes.Buffer
		if err := s.EncodeSnapshot(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()/2])
	}
	f.Add([]byte{0x93, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x93, 0x01, 0x90, 0xdd, 0x04, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var snap *Snapshot
		var err error
		boundedAllocs(t, len(b), func() { snap, err = DecodeSnapshot(bytes.NewReader(b)) })
		if err != nil {
			expectDecodeError(t, err)
			return
		}
		s := NewStore()
		boundedAllocs(t, len(b), func() { err = s.RestoreVerified(snap) })
		if err != nil {
			if !errors.Is(err, ErrTooFarAhead) && !errors.Is(err, ErrTooManyAuthors) {
				t.Fatalf("restore: %v", err)
			}
			if s.Len() != 0 || len(s.Context()) != 0 {
				t.Fatal("a refused restore changed the store")
			}
			return
		}
		exerciseStore(t, s, snap.Records)
	})
}
