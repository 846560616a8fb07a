package gossip

import (
	"hash/fnv"
	"testing"
)

// TestBatchHashIsFNV1a checks the hand-written hash against hash/fnv: the
// roots of remote region trees come from it, so every node, whatever its
// version, must compute the same value.
func TestBatchHashIsFNV1a(t *testing.T) {
	for _, tc := range []struct {
		batch  uint64
		region string
		salt   byte
	}{
		{0, "", 0},
		{1, "us-east", 0},
		{0xdeadbeefcafef00d, "eu-west", 1},
		{^uint64(0), "ap-southeast-with-a-longer-name", 1},
	} {
		h := fnv.New64a()
		var b [9]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(tc.batch >> (8 * i))
		}
		b[8] = tc.salt
		h.Write(b[:])
		h.Write([]byte(tc.region))
		if got, want := batchHash(tc.batch, tc.region, tc.salt), h.Sum64(); got != want {
			t.Errorf("batchHash(%#x, %q, %d) = %#x, want %#x", tc.batch, tc.region, tc.salt, got, want)
		}
	}
}
