package trust

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// RecordSigner signs records with a controller's intermediate key
// (pki.SignRecord), as the Verifier expects.
type RecordSigner struct {
	Key crypto.Signer
}

var _ crdt.Signer = RecordSigner{}

// Sign implements crdt.Signer.
func (s RecordSigner) Sign(msg []byte) (crdt.Signature, error) {
	sig, err := pki.SignRecord(s.Key, msg)
	return crdt.Signature(sig), err
}

// NewSignerRecord returns the body of the record that publishes cert, a
// controller's intermediate, as a signing key: Controller (the name in
// cert's SPIFFE ID), KeyID, Cert and NotAfter (cert's). The caller sets
// the header (author, seq, HLC) and signs it with cert's key.
func NewSignerRecord(cert *x509.Certificate, trustDomain string) (*crdt.SignerRecord, error) {
	id, err := pki.IDOf(cert)
	if err != nil {
		return nil, fmt.Errorf("trust: signer record: %w", err)
	}
	if id.Kind != pki.KindController || id.TrustDomain != trustDomain {
		return nil, fmt.Errorf("trust: signer record: certificate names %s, not a controller of trust domain %q", id, trustDomain)
	}
	kid, err := pki.KeyID(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("trust: signer record: %w", err)
	}
	return &crdt.SignerRecord{
		Controller: id.Name,
		KeyID:      kid,
		Cert:       bytes.Clone(cert.Raw),
		NotAfter:   crdt.MillisOf(cert.NotAfter),
	}, nil
}

// Revocation is a root-signed controller revocation (`certmesh pki
// revoke-controller`) that CheckRevocation accepted.
type Revocation struct {
	pki.ControllerRevocation // TrustDomain, Controller, At

	blob     []byte
	notAfter crdt.Millis // the root's
}

// DomainError is CheckRevocation's error for a revocation the root signed
// for a controller of another trust domain.
type DomainError struct {
	Got  string // the revocation's trust domain
	Want string // this mesh's
}

func (e *DomainError) Error() string {
	return fmt.Sprintf("trust: revokes a controller of trust domain %q, not %q", e.Got, e.Want)
}

// CheckRevocation checks that blob is the root's revocation of a
// controller of trustDomain: pki.VerifyControllerRevocation's error as it
// is, or a *DomainError.
func CheckRevocation(root *x509.Certificate, trustDomain string, blob []byte) (Revocation, error) {
	rev, err := pki.VerifyControllerRevocation(root, blob)
	if err != nil {
		return Revocation{}, err
	}
	if rev.TrustDomain != trustDomain {
		return Revocation{}, &DomainError{Got: rev.TrustDomain, Want: trustDomain}
	}
	return Revocation{ControllerRevocation: rev, blob: bytes.Clone(blob), notAfter: crdt.MillisOf(root.NotAfter)}, nil
}

// Record returns the body of the signer record that carries r: Controller,
// Revoked, RevokedAt and RootSig; NotAfter, how long the revocation is
// kept, is the root's NotAfter, since no intermediate of the revoked
// controller outlives the root; and Cut is what the writing controller
// holds of the revoked one (crdt.Store.HeldOf(r.Controller)): everything
// the revoked key signs beyond it is refused everywhere, however it is
// stamped. The caller sets the header and signs it with its own key.
func (r Revocation) Record(cut []crdt.AuthorContext) *crdt.SignerRecord {
	return &crdt.SignerRecord{
		Controller: r.Controller,
		Revoked:    true,
		RevokedAt:  crdt.MillisOf(r.At),
		RootSig:    bytes.Clone(r.blob),
		NotAfter:   r.notAfter,
		Cut:        cut,
	}
}
