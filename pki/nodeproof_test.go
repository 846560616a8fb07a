package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

func TestNodeProofBindsRecipientAndFrame(t *testing.T) {
	key, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte("\x11\xa2r1\x93\x03\xcf\x00\x00\x01")
	sig, err := SignNodeProof(key, "ctrl-a", frame)
	if err != nil {
		t.Fatal(err)
	}
	pub := &key.PublicKey
	if !VerifyNodeProof(pub, "ctrl-a", frame, sig) {
		t.Fatal("a genuine proof does not verify")
	}
	other, _ := GenerateKey(nil)
	altered := append([]byte(nil), frame...)
	altered[3] ^= 1
	for _, c := range []struct {
		what      string
		pub       *ecdsa.PublicKey
		recipient string
		frame     []byte
	}{
		{"for another recipient", pub, "ctrl-b", frame},
		{"for any recipient", pub, "", frame},
		// The recipient's bytes moved into the frame: length-prefixed, it
		// does not collide.
		{"recipient and frame split elsewhere", pub, "ctrl-", append([]byte("a"), frame...)},
		{"of an altered frame", pub, "ctrl-a", altered},
		{"by another key", &other.PublicKey, "ctrl-a", frame},
		{"without a key", nil, "ctrl-a", frame},
	} {
		if VerifyNodeProof(c.pub, c.recipient, c.frame, sig) {
			t.Errorf("a proof verifies %s", c.what)
		}
	}
	// A record signature over the same bytes is no node proof, and the
	// other way round: each signature has its own context.
	rec, err := SignRecord(key, frame)
	if err != nil {
		t.Fatal(err)
	}
	if VerifyNodeProof(pub, "", frame, rec) {
		t.Error("a record signature verifies as a node proof")
	}
	if anyProof, _ := SignNodeProof(key, "", frame); VerifyRecord(pub, frame, anyProof) {
		t.Error("a node proof verifies as a record signature")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignNodeProof(p384, "ctrl-a", frame); err == nil {
		t.Error("a P-384 key signs a node proof")
	}
}
