package crdt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// batchOf returns n sessions of ctrl-a from seq first, signed as one batch.
func batchOf(t *testing.T, keys *testKeys, first uint64, n int) []Record {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = newSession(ctrlA, first+uint64(i), t0+Millis(i), sid(int(first)+i), "alice", t0+hour)
	}
	if err := SignBatch(recs, edSigner{keys.priv["ctrl-a"]}); err != nil {
		t.Fatal(err)
	}
	return recs
}

func encodeList(t *testing.T, recs []Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeTo(msgpack.NewEncoder(&buf), recs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeList(t *testing.T, b []byte) []Record {
	t.Helper()
	recs, err := DecodeFrom(msgpack.NewDecoder(bytes.NewReader(b)), MaxRecordsPerMessage)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Every record of a batch, of every size, verifies alone: decoded by
// itself, or with the others, and again after being re-encoded from what
// it was decoded with (a relay sends the proof it did not receive whole).
func TestBatchRecordsVerifyAlone(t *testing.T) {
	keys := newTestKeys("ctrl-a")
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64, 65, 100} {
		recs := batchOf(t, keys, 1, n)
		for _, r := range recs {
			if err := Verify(r, keys); err != nil {
				t.Fatalf("batch of %d, seq %d as signed: %v", n, r.Head().Seq, err)
			}
			alone, err := DecodeRecord(AppendRecord(nil, r))
			if err != nil {
				t.Fatalf("batch of %d, seq %d: %v", n, r.Head().Seq, err)
			}
			if err := Verify(alone, keys); err != nil {
				t.Fatalf("batch of %d, seq %d decoded alone: %v", n, r.Head().Seq, err)
			}
			if !bytes.Equal(AppendRecord(nil, alone), AppendRecord(nil, r)) {
				t.Fatalf("batch of %d, seq %d: re-encoding differs", n, r.Head().Seq)
			}
		}
		// A part of the batch, decoded together, shares one Batch; each
		// record re-encodes to the bytes it came with.
		part := recs[n/3:]
		got := decodeList(t, encodeList(t, part))
		for i, r := range got {
			if r.Head().Batch != got[0].Head().Batch {
				t.Fatalf("batch of %d: records decoded together do not share their batch", n)
			}
			if err := Verify(r, keys); err != nil {
				t.Fatalf("batch of %d, seq %d decoded in a list: %v", n, r.Head().Seq, err)
			}
			if !bytes.Equal(AppendRecord(nil, r), AppendRecord(nil, part[i])) {
				t.Fatalf("batch of %d, seq %d: re-encoding differs", n, r.Head().Seq)
			}
		}
	}
}

// A batch decoded whole keeps its leaves only.
func TestBatchDecodedWholeKeepsLeaves(t *testing.T) {
	recs := batchOf(t, newTestKeys("ctrl-a"), 7, 64)
	got := decodeList(t, encodeList(t, recs))
	b := got[0].Head().Batch
	if b.leaves == nil || b.nodes != nil || len(b.leaves) != 64 {
		t.Fatalf("batch decoded whole keeps %d leaves and %d nodes", len(b.leaves), len(b.nodes))
	}
}

// A record whose body changed, a proof of another batch, a seq outside
// its batch: refused.
func TestBatchForgeriesRefused(t *testing.T) {
	keys := newTestKeys("ctrl-a", "ctrl-b")
	recs := batchOf(t, keys, 1, 8)
	other := batchOf(t, keys, 9, 8)

	tampered := *recs[3].(*SessionRecord)
	tampered.Identity = "mallory"
	if err := Verify(&tampered, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("tampered body: %v, want a bad signature", err)
	}
	tamperedWire, err := DecodeRecord(AppendRecord(nil, &tampered))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(tamperedWire, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("tampered body from the wire: %v, want a bad signature", err)
	}

	// The proof and signature of another batch, on a record of seq 12.
	moved := *recs[3].(*SessionRecord)
	moved.Seq = 12
	moved.Batch = other[3].Head().Batch // and its signature
	if err := Verify(&moved, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("record under another batch's proof: %v, want a bad signature", err)
	}

	// Signed by another controller's key.
	forged := batchOf(t, keys, 1, 4)
	if err := SignBatch(forged, edSigner{keys.priv["ctrl-b"]}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(forged[0], keys); !errors.Is(err, errBadSig) {
		t.Fatalf("batch signed by another author: %v, want a bad signature", err)
	}

	// A seq outside the batch it claims.
	outside := *recs[3].(*SessionRecord)
	outside.Seq = 20
	if err := Validate(&outside); !errors.Is(err, ErrInvalid) {
		t.Fatalf("seq outside its batch: %v", err)
	}
	if _, err := DecodeRecord(AppendRecord(nil, &outside)); err == nil {
		t.Fatal("a record outside its batch decoded")
	}
}

// Signer records are signed alone, and a batch proof on one is refused.
func TestBatchRefusesSignerRecords(t *testing.T) {
	keys := newTestKeys("ctrl-a")
	s := newSigner(ctrlA, 1, t0, "ctrl-a", 1, t0+hour)
	if err := SignBatch([]Record{s}, edSigner{keys.priv["ctrl-a"]}); err == nil {
		t.Fatal("a signer record was batch-signed")
	}
	recs := batchOf(t, keys, 1, 2)
	s.Batch = recs[0].Head().Batch
	if err := Validate(s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch-signed signer record: %v", err)
	}
}

// Truncated, padded or overlong proofs are malformed input, never a panic.
func TestBatchMalformedProofs(t *testing.T) {
	recs := batchOf(t, newTestKeys("ctrl-a"), 1, 8)
	good := AppendRecord(nil, recs[2])
	// The proof is the last element: 2 + 10 + 3*32 bytes.
	proofAt := len(good) - (batchFixed + 3*32)
	for name, b := range map[string][]byte{
		"short":    append(append([]byte{}, good[:proofAt-2]...), append([]byte{0xc4, batchFixed + 2*32}, good[proofAt:len(good)-32]...)...),
		"long":     append(append([]byte{}, good[:proofAt-2]...), append(append([]byte{0xc4, batchFixed + 4*32}, good[proofAt:]...), make([]byte, 32)...)...),
		"count 0":  func() []byte { b := bytes.Clone(good); b[proofAt+8], b[proofAt+9] = 0, 0; return b }(),
		"odd size": append(append([]byte{}, good[:proofAt-2]...), append([]byte{0xc4, batchFixed + 3*32 - 1}, good[proofAt:len(good)-1]...)...),
	} {
		if _, err := DecodeRecord(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s proof: %v, want malformed", name, err)
		}
	}
	if _, err := DecodeRecord(good); err != nil {
		t.Fatal(err)
	}
}

// Records read back one at a time (a journal, a database) share their
// batch, which keeps only its leaves once read whole.
func TestRecordReaderSharesBatches(t *testing.T) {
	keys := newTestKeys("ctrl-a")
	recs := batchOf(t, keys, 1, 13)
	var w RecordWriter
	var rd RecordReader
	var got []Record
	for _, r := range recs {
		b := w.Append(nil, r)
		if !bytes.Equal(b, AppendRecord(nil, r)) {
			t.Fatal("RecordWriter and AppendRecord differ")
		}
		back, err := rd.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, back)
	}
	rd.Finish()
	b := got[0].Head().Batch
	if b.leaves == nil || b.nodes != nil {
		t.Fatalf("batch read whole keeps %d leaves and %d nodes", len(b.leaves), len(b.nodes))
	}
	for i, r := range got {
		if r.Head().Batch != b {
			t.Fatalf("record %d does not share its batch", i)
		}
		if err := Verify(r, keys); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(AppendRecord(nil, r), AppendRecord(nil, recs[i])) {
			t.Fatalf("record %d re-encodes otherwise", i)
		}
	}
}

// EncodedSizeHint bounds a batch-signed record's encoding, closely: pushes
// are cut to fit a packet by it.
func TestBatchSizeHint(t *testing.T) {
	for _, n := range []int{1, 2, 3, 64, 65, MaxBatch} {
		for _, r := range batchOf(t, newTestKeys("ctrl-a"), 1, n) {
			got, hint := EncodedSize(r), EncodedSizeHint(r)
			if got > hint || hint > got+64 {
				t.Fatalf("batch of %d, seq %d: %d bytes, hint %d", n, r.Head().Seq, got, hint)
			}
		}
	}
}
