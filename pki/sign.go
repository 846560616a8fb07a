package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Signature contexts. Each starts with a printable byte, never 0x30 (the
// first byte of a DER SEQUENCE such as a TBSCertificate), and ends in NUL, so
// a message signed in one context is never valid in another or as X.509.
// nodeproof.go adds the context of a node's proof of a gossip frame.
const (
	recordContext     = "certmesh record v1\x00"
	revocationContext = "certmesh controller revocation v1\x00"
)

// RecordSignatureSize is the size of a record signature: r || s, 32 bytes each.
const RecordSignatureSize = 64

// SignRecord signs msg (a replicated record's canonical encoding) with a
// controller's intermediate key, which must be ECDSA P-256. The signature is
// over SHA-256(context || msg) and is returned as fixed-size r || s,
// big-endian. It is randomized, so signing twice gives different bytes.
func SignRecord(key crypto.Signer, msg []byte) ([RecordSignatureSize]byte, error) {
	var sig [RecordSignatureSize]byte
	if err := checkP256(key.Public()); err != nil {
		return sig, fmt.Errorf("pki: sign record: %w", err)
	}
	digest := contextDigest(recordContext, msg)
	der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return sig, fmt.Errorf("pki: sign record: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return sig, errors.New("pki: sign record: signer returned a malformed ECDSA signature")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return sig, errors.New("pki: sign record: signer returned an out-of-range ECDSA signature")
	}
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return sig, nil
}

// VerifyRecord reports whether sig is pub's SignRecord signature of msg.
func VerifyRecord(pub *ecdsa.PublicKey, msg []byte, sig [RecordSignatureSize]byte) bool {
	if pub == nil || checkP256(pub) != nil {
		return false
	}
	digest := contextDigest(recordContext, msg)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, digest[:], r, s)
}

// KeyID identifies a public key: SHA-256 of its DER SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) ([32]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [32]byte{}, fmt.Errorf("pki: key id: %w", err)
	}
	return sha256.Sum256(der), nil
}

func contextDigest(context string, msg []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(context))
	h.Write(msg)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// MaxControllerRevocationBytes caps the blob VerifyControllerRevocation
// decodes; a real one is about 150 bytes.
const MaxControllerRevocationBytes = 1024

const controllerRevocationVersion = 1

// ControllerRevocation is the content of a root-signed revocation of a
// controller's signing authority (`certmesh pki revoke-controller`).
type ControllerRevocation struct {
	TrustDomain string
	Controller  string
	// At is when the revocation was made, in milliseconds (the resolution of
	// the mesh's hybrid logical clock).
	At time.Time
}

// controllerRevocationWire is the signed payload. WARNING: the field names
// and the version are part of the protocol.
type controllerRevocationWire struct {
	Version     int    `msgpack:"v"`
	TrustDomain string `msgpack:"td"`
	Controller  string `msgpack:"c"`
	AtUnixMilli int64  `msgpack:"at"`
}

// signedBlob carries a payload and the signature over it, so that the
// verifier checks the exact bytes that were signed before decoding them.
type signedBlob struct {
	Payload   []byte `msgpack:"p"`
	Signature []byte `msgpack:"s"` // ASN.1 ECDSA over SHA-256(context || Payload)
}

// SignControllerRevocation signs, with the root key, a revocation of
// controller's signer records made at `at`. The blob is msgpack.
func SignControllerRevocation(rootKey crypto.Signer, trustDomain, controller string, at time.Time) ([]byte, error) {
	if err := ControllerID(trustDomain, controller).check(); err != nil {
		return nil, fmt.Errorf("pki: controller revocation: %w", err)
	}
	if at.IsZero() {
		return nil, errors.New("pki: controller revocation: time is zero")
	}
	payload, err := msgpack.Marshal(controllerRevocationWire{
		Version:     controllerRevocationVersion,
		TrustDomain: trustDomain,
		Controller:  controller,
		AtUnixMilli: at.UnixMilli(),
	})
	if err != nil {
		return nil, fmt.Errorf("pki: controller revocation: %w", err)
	}
	digest := contextDigest(revocationContext, payload)
	sig, err := rootKey.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("pki: controller revocation: sign: %w", err)
	}
	blob, err := msgpack.Marshal(signedBlob{Payload: payload, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("pki: controller revocation: %w", err)
	}
	return blob, nil
}

// VerifyControllerRevocation checks that blob was made by
// SignControllerRevocation with the key of root and returns its content.
// Callers must also check that TrustDomain is their own.
func VerifyControllerRevocation(root *x509.Certificate, blob []byte) (ControllerRevocation, error) {
	fail := func(format string, args ...any) (ControllerRevocation, error) {
		return ControllerRevocation{}, fmt.Errorf("pki: controller revocation: "+format, args...)
	}
	if len(blob) > MaxControllerRevocationBytes {
		return fail("%d bytes, more than %d", len(blob), MaxControllerRevocationBytes)
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fail("root key is %T, want ECDSA", root.PublicKey)
	}
	var sb signedBlob
	if err := msgpack.Unmarshal(blob, &sb); err != nil {
		return fail("malformed: %w", err)
	}
	digest := contextDigest(revocationContext, sb.Payload)
	if !ecdsa.VerifyASN1(pub, digest[:], sb.Signature) {
		return fail("signature is not the root's")
	}
	var w controllerRevocationWire
	if err := msgpack.Unmarshal(sb.Payload, &w); err != nil {
		return fail("malformed payload: %w", err)
	}
	if w.Version != controllerRevocationVersion {
		return fail("version %d, want %d", w.Version, controllerRevocationVersion)
	}
	if err := ControllerID(w.TrustDomain, w.Controller).check(); err != nil {
		return fail("%w", err)
	}
	if w.AtUnixMilli <= 0 {
		return fail("time %d is not positive", w.AtUnixMilli)
	}
	return ControllerRevocation{
		TrustDomain: w.TrustDomain,
		Controller:  w.Controller,
		At:          time.UnixMilli(w.AtUnixMilli).UTC(),
	}, nil
}
