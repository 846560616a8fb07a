package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/certmesh/certmesh/pki"
)

func TestRecordSignatures(t *testing.T) {
	p := newTestPKI(t)
	key := p.ctrl["ctrl-a"].Key
	pub := p.ctrl["ctrl-a"].Cert.PublicKey.(*ecdsa.PublicKey)
	otherPub := p.ctrl["ctrl-b"].Cert.PublicKey.(*ecdsa.PublicKey)
	msg := []byte("session s1 identity alice seq 7")

	sig, err := pki.SignRecord(key, msg)
	if err != nil {
		t.Fatalf("SignRecord: %v", err)
	}
	if !pki.VerifyRecord(pub, msg, sig) {
		t.Fatal("signature does not verify")
	}
	tampered := bytes.Clone(msg)
	tampered[0] ^= 1
	badSig := sig
	badSig[63] ^= 1
	tests := []struct {
		name string
		pub  *ecdsa.PublicKey
		msg  []byte
		sig  [pki.RecordSignatureSize]byte
	}{
		{"other message", pub, tampered, sig},
		{"other key", otherPub, msg, sig},
		{"flipped signature bit", pub, msg, badSig},
		{"zero signature", pub, msg, [pki.RecordSignatureSize]byte{}},
		{"nil key", nil, msg, sig},
	}
	for _, tt := range tests {
		if pki.VerifyRecord(tt.pub, tt.msg, tt.sig) {
			t.Errorf("%s: VerifyRecord = true", tt.name)
		}
	}

	// Record signatures are domain-separated: the same key's plain ECDSA
	// signature over SHA-256(msg) is not a record signature.
	if _, err := pki.SignRecord(p.root.Key, msg); err != nil {
		t.Fatal(err)
	}

	// Key ids: stable, distinct per key.
	a1, _ := pki.KeyID(pub)
	a2, _ := pki.KeyID(p.ctrl["ctrl-a"].Key.Public())
	b, _ := pki.KeyID(otherPub)
	if a1 != a2 || a1 == b {
		t.Errorf("KeyID: same key %x vs %x, other key %x", a1, a2, b)
	}
}

func BenchmarkVerifyRecord(b *testing.B) {
	key, _ := pki.GenerateKey(rand.Reader)
	msg := bytes.Repeat([]byte("r"), 200)
	sig, _ := pki.SignRecord(key, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !pki.VerifyRecord(&key.PublicKey, msg, sig) {
			b.Fatal("does not verify")
		}
	}
}

func TestControllerRevocation(t *testing.T) {
	p := newTestPKI(t)
	at := time.Date(2026, 3, 2, 8, 30, 15, 123456789, time.UTC)
	blob, err := pki.SignControllerRevocation(p.root.Key, "mesh.test", "ctrl-b", at)
	if err != nil {
		t.Fatalf("SignControllerRevocation: %v", err)
	}
	got, err := pki.VerifyControllerRevocation(p.root.Cert, blob)
	if err != nil {
		t.Fatalf("VerifyControllerRevocation: %v", err)
	}
	want := pki.ControllerRevocation{TrustDomain: "mesh.test", Controller: "ctrl-b", At: at.Truncate(time.Millisecond)}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// A compromised controller signs with its intermediate key.
	byController, err := pki.SignControllerRevocation(p.ctrl["ctrl-a"].Key, "mesh.test", "ctrl-b", at)
	if err != nil {
		t.Fatal(err)
	}
	// Another PKI's root.
	other := newTestPKI(t)
	byOtherRoot, _ := pki.SignControllerRevocation(other.root.Key, "mesh.test", "ctrl-b", at)
	// The root's signature moved onto another payload.
	var env struct {
		P []byte `msgpack:"p"`
		S []byte `msgpack:"s"`
	}
	if err := msgpack.Unmarshal(blob, &env); err != nil {
		t.Fatal(err)
	}
	otherBlob, _ := pki.SignControllerRevocation(p.root.Key, "mesh.test", "ctrl-a", at)
	var env2 struct {
		P []byte `msgpack:"p"`
		S []byte `msgpack:"s"`
	}
	_ = msgpack.Unmarshal(otherBlob, &env2)
	swapped, _ := msgpack.Marshal(map[string][]byte{"p": env2.P, "s": env.S})
	// The root's record signature (another context) is not a revocation.
	recSig, _ := pki.SignRecord(p.root.Key, env.P)
	crossContext, _ := msgpack.Marshal(map[string][]byte{"p": env.P, "s": recSig[:]})

	forged := []struct {
		name, wantErr string
		blob          []byte
	}{
		{"signed by a controller", "not the root's", byController},
		{"signed by another root", "not the root's", byOtherRoot},
		{"signature of another payload", "not the root's", swapped},
		{"record signature", "not the root's", crossContext},
		{"garbage", "malformed", []byte("garbage")},
		{"empty", "malformed", nil},
		{"huge", "more than", bytes.Repeat([]byte{0}, pki.MaxControllerRevocationBytes+1)},
	}
	for _, tt := range forged {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.VerifyControllerRevocation(p.root.Cert, tt.blob)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	if _, err := pki.SignControllerRevocation(p.root.Key, "mesh.test", "../x", at); err == nil {
		t.Error("signed a revocation of an invalid controller name")
	}
}
