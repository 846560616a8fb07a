package router

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Mode is the admission mode (docs/deploy.md, admission.mode).
type Mode uint8

const (
	// ModeStrict admits a certificate only when it and its session are
	// known in the replicated state; an unknown one is pulled from peers
	// first.
	ModeStrict Mode = 1
	// ModeVerified admits a chain-valid certificate that nothing in the
	// replicated state revokes.
	ModeVerified Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeStrict:
		return "strict"
	case ModeVerified:
		return "verified"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "strict" or "verified".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "strict":
		return ModeStrict, nil
	case "verified":
		return ModeVerified, nil
	}
	return 0, fmt.Errorf("router: admission mode %q: want strict or verified", s)
}

// Decision is the outcome of Decide.
type Decision struct {
	// Verdict is crdt.Admit or the reason for refusal.
	Verdict crdt.Verdict
	// Pull is set when the verdict only says that the certificate or its
	// session is not known yet, and the mode allows asking peers for it
	// (strict mode): the caller should pull and decide again.
	Pull bool
}

// Admitted reports whether the connection may be admitted.
func (d Decision) Admitted() bool { return d.Verdict == crdt.Admit }

// Reason is the word logged and counted for the decision.
func (d Decision) Reason() string { return d.Verdict.String() }

// Decide is the admission decision for a new connection made at now with a
// certificate whose chain was verified and whose facts are f. It is a pure
// function of its arguments and costs a few map lookups whatever the size
// of the store. The store must not be modified concurrently (read it under
// the mesh's lock).
func Decide(store *crdt.Store, f crdt.CertFacts, now crdt.Millis, mode Mode) Decision {
	v := store.Admission(f, now, mode == ModeStrict)
	return Decision{
		Verdict: v,
		Pull:    mode == ModeStrict && (v == crdt.UnknownCert || v == crdt.UnknownSession),
	}
}

// Stays reports whether a live connection made with f may stay up at now:
// it belongs to its session, so rotation and the certificate's own expiry do
// not close it; the session's expiry and any revocation covering its
// session, identity, serial or issuer do. It returns crdt.Admit or the
// reason to close.
func Stays(store *crdt.Store, f crdt.CertFacts, now crdt.Millis) crdt.Verdict {
	return store.Live(f, now)
}

// ErrNotClientCert is wrapped by FactsFromChain for a chain that verifies
// but does not end in a client session certificate.
var ErrNotClientCert = errors.New("router: not a client session certificate")

// FactsFromChain reads the admission facts from a verified chain: leaf,
// controller intermediate, root, as crypto/x509 built it against a pool
// holding only the root. The session and identity come from the leaf's
// SPIFFE URI SAN, the issuer from the intermediate's (pki.ControllerOf),
// never from the order of the certificates the client sent.
func FactsFromChain(verifiedChain []*x509.Certificate, trustDomain string) (crdt.CertFacts, error) {
	if len(verifiedChain) == 0 {
		return crdt.CertFacts{}, fmt.Errorf("%w: empty chain", ErrNotClientCert)
	}
	leaf := verifiedChain[0]
	issuer, err := pki.ControllerOf(verifiedChain, trustDomain)
	if err != nil {
		return crdt.CertFacts{}, fmt.Errorf("%w: %v", ErrNotClientCert, err)
	}
	id, err := pki.IDOf(leaf)
	if err != nil {
		return crdt.CertFacts{}, fmt.Errorf("%w: %v", ErrNotClientCert, err)
	}
	if id.Kind != pki.KindIdentity {
		return crdt.CertFacts{}, fmt.Errorf("%w: leaf is a %s", ErrNotClientCert, id.Kind)
	}
	if id.TrustDomain != trustDomain {
		return crdt.CertFacts{}, fmt.Errorf("%w: leaf is in trust domain %q, want %q", ErrNotClientCert, id.TrustDomain, trustDomain)
	}
	session, err := crdt.ParseSessionID(id.SessionID)
	if err != nil {
		return crdt.CertFacts{}, fmt.Errorf("%w: %v", ErrNotClientCert, err)
	}
	serial, err := pki.SerialOf(leaf)
	if err != nil {
		return crdt.CertFacts{}, fmt.Errorf("%w: %v", ErrNotClientCert, err)
	}
	if serial == (pki.Serial{}) {
		return crdt.CertFacts{}, fmt.Errorf("%w: zero serial", ErrNotClientCert)
	}
	if !pki.IssuedBy(serial, issuer) {
		// Every certmesh serial names its issuer: one that does not
		// cannot have a record that counts (pki.IssuedBy).
		return crdt.CertFacts{}, fmt.Errorf("%w: serial %v does not name %q as its issuer", ErrNotClientCert, serial, issuer)
	}
	return crdt.CertFacts{
		Serial:      crdt.Serial(serial),
		Session:     session,
		Identity:    id.Name,
		Issuer:      issuer,
		NotBefore:   crdt.MillisOf(leaf.NotBefore),
		NotAfter:    crdt.MillisOf(leaf.NotAfter),
		Fingerprint: sha256.Sum256(leaf.Raw),
	}, nil
}
