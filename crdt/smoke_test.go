package crdt

import (
	"bytes"
	"testing"
)

func TestSmokeMergeDelta(t *testing.T) {
	a := Author{"ctrl-a", 7}
	mk := func(seq uint64, id byte) Record {
		r := &SessionRecord{ID: SessionID{id}, Identity: "alice", Created: 1000, Expires: 5000}
		r.Header = Header{Author: a, Seq: seq, HLC: NewTimestamp(Millis(1000+seq), 0)}
		return r
	}
	src := NewStore()
	for i := uint64(1); i <= 10; i++ {
		if ok, err := src.MergeVerified(mk(i, byte(i))); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	dst := NewStore()
	d := src.DeltaSince(dst.Context(), 1<<20)
	for _, r := range d.Records {
		b := AppendRecord(nil, r)
		r2, err := DecodeRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		dst.MergeVerified(r2)
	}
	for _, iv := range d.Intervals {
		dst.CoverInterval(iv, 0)
	}
	if src.Digest() != dst.Digest() || dst.Len() != 10 {
		t.Fatalf("digest %x vs %x, len %d", src.Digest(), dst.Digest(), dst.Len())
	}
	var buf bytes.Buffer
	if err := src.EncodeSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap, err := DecodeSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	s3 := NewStore()
	if err := s3.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	if s3.Digest() != src.Digest() {
		t.Fatal("snapshot digest")
	}
}
