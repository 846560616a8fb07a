package crdt

import (
	"bytes"
	"testing"
)

// A snapshot taken from a store encodes, later, exactly what
// EncodeSnapshot wrote when it was taken, whatever the store merged since:
// its owner takes it under its lock and encodes it after letting go.
func TestSnapshotTakenNowEncodesLater(t *testing.T) {
	s := NewStore()
	recs := storeSamples()
	mustMerge(t, s, recs[:5]...)
	var want bytes.Buffer
	if err := s.EncodeSnapshot(&want); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	mustMerge(t, s, recs[5:]...)
	var got bytes.Buffer
	if err := snap.Encode(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the snapshot encodes the store as it is now, not as it was when taken")
	}
	restored := NewStore()
	if err := restored.RestoreVerified(snap); err != nil {
		t.Fatal(err)
	}
	before := NewStore()
	mustMerge(t, before, recs[:5]...)
	if restored.Digest() != before.Digest() || restored.Len() != before.Len() {
		t.Fatal("a snapshot taken does not restore the store it was taken from")
	}
}
