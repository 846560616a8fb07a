package trust

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Errors a Verifier returns. The gossip core holds a record refused with
// ErrUnknownSigner until its author's signer record arrives, and counts
// each of the others under its own reason in
// certmesh_rejected_records_total.
var (
	// ErrUnknownSigner: the store holds no signer record of the record's
	// author yet.
	ErrUnknownSigner = errors.New("trust: unknown signer")
	// ErrBadSignature: no active key of the record's author signed it.
	ErrBadSignature = errors.New("trust: bad record signature")
	// ErrBadSigner: a signer record's certificate is not a controller
	// intermediate issued by the root for the record's author.
	ErrBadSigner = errors.New("trust: signer certificate not acceptable")
	// ErrSignerExpired: the key that signed the record was not valid at the
	// record's HLC.
	ErrSignerExpired = errors.New("trust: signer not valid at the record's time")
	// ErrBadRevocation: a revoking signer record does not carry the root's
	// revocation of that controller at that time.
	ErrBadRevocation = errors.New("trust: controller revocation not signed by the root")
	// ErrNotCreator: a session or certificate record signed by its author,
	// for a session another controller created or a certificate another
	// controller issued (pki.CreatedBy, pki.IssuedBy). Its dot is covered,
	// the record never counts.
	ErrNotCreator = errors.New("trust: record about another controller's session or certificate")
)

// maxSignerCache caps the parsed signer certificates a Verifier keeps. A
// mesh has a few controllers with a few keys each.
const maxSignerCache = 1024

// Verifier is the production crdt.Verifier (ARCHITECTURE.md,
// "Dissemination", requirement 5). Trust comes from the root CA only:
//
//   - An active SignerRecord certifies itself: its Cert must be issued
//     directly by the root, be a CA with the DigitalSignature key usage,
//     carry the URI SAN spiffe://<trust domain>/controller/<name> with name
//     equal to the record's Controller and author, have KeyID
//     pki.KeyID(cert key), be valid at the record's HLC, not end before the
//     record's NotAfter, and its key must have signed the record.
//   - Any other record must be signed by an active key of its author held
//     in the store (a signer record merged before), valid at the record's
//     HLC. When the store holds no signer record for the author yet the
//     answer is ErrUnknownSigner, and the core holds the record until one
//     arrives. Routers have no signer record, so what they write is never
//     accepted.
//   - A revoking SignerRecord must, in addition, carry in RootSig the root's
//     revocation (pki.VerifyControllerRevocation) of the same controller at
//     the same RevokedAt.
//
// Parsed signer certificates are cached by key id. A Verifier is safe for
// concurrent use, but it reads the store it was given, so it must only be
// called where that store may be read: the core calls it from its driver's
// goroutine, the store's owner. Use one Verifier per store.
type Verifier struct {
	trustDomain string
	store       func() *crdt.Store

	mu     sync.Mutex // guards root, roots, certs and byName
	root   *x509.Certificate
	roots  *x509.CertPool
	certs  map[[32]byte]*signerCert
	byName map[string][]*signerCert // the same certificates, by controller

	pre     prechecked                                // verdicts of Precheck, for VerifyShared
	batches generations[batchRootKey, crdt.Signature] // batch messages verified, per key, with the signature that verified
}

var _ crdt.Verifier = (*Verifier)(nil)

// signerCert is a parsed, chain-checked controller certificate.
type signerCert struct {
	keyID      [32]byte
	der        []byte
	controller string
	pub        *ecdsa.PublicKey
	// notBefore and notAfter bound the times at which the key may sign:
	// the certificate's validity within the root's.
	notBefore, notAfter crdt.Millis
}

// NewVerifier returns a Verifier that trusts root for trustDomain and looks
// up signer records in the store that store returns.
func NewVerifier(root *x509.Certificate, trustDomain string, store func() *crdt.Store) (*Verifier, error) {
	if err := pki.ValidateTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("trust: verifier: %w", err)
	}
	if store == nil {
		return nil, errors.New("trust: verifier: no store")
	}
	v := &Verifier{trustDomain: trustDomain, store: store, pre: newPrechecked(), batches: newGenerations[batchRootKey, crdt.Signature](maxBatchRoots)}
	if err := v.SetRoot(root); err != nil {
		return nil, err
	}
	return v, nil
}

// SetRoot replaces the trusted root, as on a SIGHUP reload of the CA file,
// and forgets every cached signer certificate.
func (v *Verifier) SetRoot(root *x509.Certificate) error {
	if root == nil {
		return errors.New("trust: verifier: no root certificate")
	}
	if !root.IsCA {
		return fmt.Errorf("trust: verifier: root %q is not a CA", root.Subject.CommonName)
	}
	if _, ok := root.PublicKey.(*ecdsa.PublicKey); !ok {
		return fmt.Errorf("trust: verifier: root key is %T, want ECDSA", root.PublicKey)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	v.mu.Lock()
	v.root, v.roots = root, pool
	v.certs = make(map[[32]byte]*signerCert)
	v.byName = make(map[string][]*signerCert)
	v.mu.Unlock()
	v.pre.reset()
	v.batches.reset()
	return nil
}

// Verify implements crdt.Verifier. msg is crdt.SignedBytes(r); r has
// passed crdt.Validate.
func (v *Verifier) Verify(r crdt.Record, msg []byte) error {
	h := r.Head()
	sr, ok := r.(*crdt.SignerRecord)
	if !ok {
		if err := v.verifyByAuthor(r, msg); err != nil {
			return err
		}
		return checkCreator(r)
	}
	if sr.Revoked {
		if err := v.checkRevocation(sr); err != nil {
			return err
		}
		return v.verifyByAuthor(r, msg)
	}
	if sr.Controller != h.Author.Name {
		return fmt.Errorf("%w: record by %q publishes a key of %q", ErrBadSigner, h.Author.Name, sr.Controller)
	}
	sc, err := v.signer(sr.Cert, sr.KeyID, sr.Controller)
	if err != nil {
		return err
	}
	if sr.NotAfter > sc.notAfter {
		return fmt.Errorf("%w: signer record outlives its certificate (%v > %v)", ErrBadSigner,
			sr.NotAfter.Time().Format(time.RFC3339), sc.notAfter.Time().Format(time.RFC3339))
	}
	if !pki.VerifyRecord(sc.pub, msg, [pki.RecordSignatureSize]byte(h.Sig())) {
		return ErrBadSignature
	}
	return checkValidAt(h.HLC, sc.notBefore, sc.notAfter)
}

// verifyByAuthor checks r's signature against its author's active keys.
func (v *Verifier) verifyByAuthor(r crdt.Record, msg []byte) error {
	h := r.Head()
	signers := v.store().Signers(h.Author.Name)
	if len(signers) == 0 {
		return ErrUnknownSigner
	}
	m, err := signatureMessage(r, msg)
	if err != nil {
		return err
	}
	var certErr error
	for _, s := range signers {
		sc, err := v.signer(s.Cert, s.KeyID, h.Author.Name)
		if err != nil {
			certErr = err // cannot happen for a verified signer record
			continue
		}
		if !v.signedBy(sc, m, h.Sig()) {
			continue
		}
		return checkValidAt(h.HLC, sc.notBefore, min(sc.notAfter, s.NotAfter))
	}
	if certErr != nil {
		return certErr
	}
	return ErrBadSignature
}

// checkCreator checks that a session or certificate record is written by
// the controller whose name the session id or the serial carries: these
// records are write-once, the earliest wins, so one that any controller
// key could write would let a stolen key (even one the root revoked,
// backdating its HLC) rewrite another controller's sessions and
// certificates.
func checkCreator(r crdt.Record) error {
	name := r.Head().Author.Name
	switch r := r.(type) {
	case *crdt.SessionRecord:
		if !pki.CreatedBy(r.ID, name) {
			return fmt.Errorf("%w: session %v was not created by %q", ErrNotCreator, r.ID, name)
		}
	case *crdt.CertRecord:
		if !pki.IssuedBy(r.Serial, name) {
			return fmt.Errorf("%w: serial %v was not issued by %q", ErrNotCreator, r.Serial, name)
		}
	}
	return nil
}

func checkValidAt(t crdt.Timestamp, notBefore, notAfter crdt.Millis) error {
	if at := t.Millis(); at < notBefore || at > notAfter {
		return fmt.Errorf("%w: written at %v, key valid from %v to %v", ErrSignerExpired, t,
			notBefore.Time().Format(time.RFC3339), notAfter.Time().Format(time.RFC3339))
	}
	return nil
}

// checkRevocation checks a revoking signer record's root signature.
func (v *Verifier) checkRevocation(sr *crdt.SignerRecord) error {
	v.mu.Lock()
	root := v.root
	v.mu.Unlock()
	rev, err := pki.VerifyControllerRevocation(root, sr.RootSig)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRevocation, err)
	}
	switch {
	case rev.TrustDomain != v.trustDomain:
		return fmt.Errorf("%w: trust domain %q, want %q", ErrBadRevocation, rev.TrustDomain, v.trustDomain)
	case rev.Controller != sr.Controller:
		return fmt.Errorf("%w: root revoked %q, record says %q", ErrBadRevocation, rev.Controller, sr.Controller)
	case crdt.MillisOf(rev.At) != sr.RevokedAt:
		return fmt.Errorf("%w: root revoked at %v, record says %v", ErrBadRevocation, crdt.MillisOf(rev.At), sr.RevokedAt)
	}
	return nil
}

// signer returns the parsed certificate der, after checking that it is
// controller's intermediate, issued by the root, with key id keyID.
func (v *Verifier) signer(der []byte, keyID [32]byte, controller string) (*signerCert, error) {
	v.mu.Lock()
	sc, ok := v.certs[keyID]
	root, roots := v.root, v.roots
	v.mu.Unlock()
	if !ok || !bytes.Equal(sc.der, der) {
		var err error
		if sc, err = v.parseSigner(der, keyID, root, roots); err != nil {
			return nil, err
		}
		v.mu.Lock()
		if v.root == root { // not reloaded meanwhile
			if old, ok := v.certs[keyID]; ok {
				v.forget(old)
			} else if len(v.certs) >= maxSignerCache {
				for _, old := range v.certs { // evict one at random
					v.forget(old)
					break
				}
			}
			v.certs[keyID] = sc
			v.byName[sc.controller] = append(v.byName[sc.controller], sc)
		}
		v.mu.Unlock()
	}
	if sc.controller != controller {
		return nil, fmt.Errorf("%w: certificate of controller %q used by %q", ErrBadSigner, sc.controller, controller)
	}
	return sc, nil
}

// forget drops sc from the cache. v.mu must be held.
func (v *Verifier) forget(sc *signerCert) {
	delete(v.certs, sc.keyID)
	keys := slices.DeleteFunc(v.byName[sc.controller], func(k *signerCert) bool { return k == sc })
	if len(keys) == 0 {
		delete(v.byName, sc.controller)
	} else {
		v.byName[sc.controller] = keys
	}
}

func (v *Verifier) parseSigner(der []byte, keyID [32]byte, root *x509.Certificate, roots *x509.CertPool) (*signerCert, error) {
	fail := func(format string, args ...any) (*signerCert, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadSigner}, args...)...)
	}
	cert, from, until, err := pki.IssuedByRoot(der, root, roots)
	if err != nil {
		return fail("%v", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fail("certificate %q is not a controller intermediate allowed to sign", cert.Subject.CommonName)
	}
	id, err := pki.IDOf(cert)
	if err != nil {
		return fail("%v", err)
	}
	if id.Kind != pki.KindController || id.TrustDomain != v.trustDomain {
		return fail("certificate names %s, not a controller of trust domain %q", id, v.trustDomain)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fail("key of %s is not ECDSA P-256", id)
	}
	kid, err := pki.KeyID(pub)
	if err != nil {
		return fail("%v", err)
	}
	if kid != keyID {
		return fail("key id of %s does not match its certificate", id)
	}
	return &signerCert{
		keyID:      keyID,
		der:        bytes.Clone(der),
		controller: id.Name,
		pub:        pub,
		notBefore:  crdt.MillisOf(from),
		notAfter:   crdt.MillisOf(until),
	}, nil
}
