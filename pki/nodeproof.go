package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
)

// nodeProofContext separates a node's proof of a gossip frame from every
// other signature its key makes (TLS handshakes with a router key,
// certificates and records with a controller key): see the contexts in
// sign.go.
const nodeProofContext = "certmesh node proof v1\x00"

// NodeProofSize is the size of a node proof signature: r || s, 32 bytes
// each.
const NodeProofSize = 64

// maxNodeProofRecipient bounds the recipient name a proof binds.
const maxNodeProofRecipient = 1 << 10

// nodeProofDigest is SHA-256(context || len(recipient) as 2 bytes ||
// recipient || frame): the recipient is length-prefixed, so no choice of
// recipient and frame collides with another.
func nodeProofDigest(recipient string, frame []byte) [32]byte {
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(recipient)))
	h := sha256.New()
	h.Write([]byte(nodeProofContext))
	h.Write(n[:])
	h.Write([]byte(recipient))
	h.Write(frame)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// SignNodeProof signs, with a node's key (a router's leaf key or a
// controller's intermediate key, ECDSA P-256), the bytes of a gossip frame
// it sends to recipient (empty: to whichever peer receives it). The
// signature is fixed-size r || s.
func SignNodeProof(key crypto.Signer, recipient string, frame []byte) ([NodeProofSize]byte, error) {
	var sig [NodeProofSize]byte
	if len(recipient) > maxNodeProofRecipient {
		return sig, fmt.Errorf("pki: sign node proof: recipient of %d bytes", len(recipient))
	}
	if err := checkP256(key.Public()); err != nil {
		return sig, fmt.Errorf("pki: sign node proof: %w", err)
	}
	digest := nodeProofDigest(recipient, frame)
	der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return sig, fmt.Errorf("pki: sign node proof: %w", err)
	}
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return sig, errors.New("pki: sign node proof: signer returned a malformed ECDSA signature")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
		return sig, errors.New("pki: sign node proof: signer returned an out-of-range ECDSA signature")
	}
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return sig, nil
}

// VerifyNodeProof reports whether sig is pub's SignNodeProof signature of
// frame for recipient.
func VerifyNodeProof(pub *ecdsa.PublicKey, recipient string, frame []byte, sig [NodeProofSize]byte) bool {
	if pub == nil || checkP256(pub) != nil || len(recipient) > maxNodeProofRecipient {
		return false
	}
	digest := nodeProofDigest(recipient, frame)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, digest[:], r, s)
}
