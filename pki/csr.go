package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxCSRBytes caps the CSR input that CheckCSR reads. A P-256 CSR is about
// 250 bytes of DER (350 of PEM); the cap leaves room for subject fields and
// extensions that certmesh ignores.
const MaxCSRBytes = 8 << 10

// ErrInvalidCSR is wrapped by every error CheckCSR returns, so that callers
// can answer 400 csr_invalid with errors.Is.
var ErrInvalidCSR = errors.New("pki: invalid certificate request")

// CheckCSR parses a PKCS #10 certificate request, PEM ("CERTIFICATE REQUEST"
// or "NEW CERTIFICATE REQUEST", exactly one block) or DER, verifies its
// self-signature and returns its public key, which must be ECDSA P-256: the
// only key type a certmesh client certificate carries (docs/deploy.md).
// RSA, Ed25519 and other curves are refused rather than accepted, so that
// routers need handle one key type only. Everything else in the request
// (subject, extensions) is ignored: names come from the verified token.
func CheckCSR(pemOrDER []byte) (*ecdsa.PublicKey, error) {
	if len(pemOrDER) > MaxCSRBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidCSR, len(pemOrDER), MaxCSRBytes)
	}
	der := pemOrDER
	if trimmed := bytes.TrimSpace(pemOrDER); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		if block == nil {
			return nil, fmt.Errorf("%w: malformed PEM", ErrInvalidCSR)
		}
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block is %q, want CERTIFICATE REQUEST", ErrInvalidCSR, block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%w: data after the PEM block", ErrInvalidCSR)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || checkP256(pub) != nil {
		return nil, fmt.Errorf("%w: key is %s, want ECDSA P-256", ErrInvalidCSR, keyDescription(csr))
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify: %w", ErrInvalidCSR, err)
	}
	return pub, nil
}

func keyDescription(csr *x509.CertificateRequest) string {
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); ok {
		return "ECDSA " + k.Curve.Params().Name
	}
	return csr.PublicKeyAlgorithm.String()
}
