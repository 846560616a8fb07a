package crdt

import (
	"bytes"
	"slices"
)

// Verdict is the outcome of an admission check. Its String is the reason
// word that routers log and count.
type Verdict uint8

const (
	Admit Verdict = iota
	UnknownCert
	UnknownSession
	NotYetValid
	CertExpired
	SessionExpired
	SerialRevoked
	SessionRevoked
	IdentityRevoked
	Superseded
	IssuerRevoked
	MismatchedFacts
)

var verdictNames = [...]string{
	Admit:           "admitted",
	UnknownCert:     "unknown_cert",
	UnknownSession:  "unknown_session",
	NotYetValid:     "not_yet_valid",
	CertExpired:     "cert_expired",
	SessionExpired:  "session_expired",
	SerialRevoked:   "serial_revoked",
	SessionRevoked:  "session_revoked",
	IdentityRevoked: "identity_revoked",
	Superseded:      "superseded",
	IssuerRevoked:   "issuer_revoked",
	MismatchedFacts: "mismatched_facts",
}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown_verdict"
}

// Revoked reports whether the verdict is a revocation of some kind, which
// closes live connections.
func (v Verdict) Revoked() bool {
	switch v {
	case SerialRevoked, SessionRevoked, IdentityRevoked, IssuerRevoked:
		return true
	}
	return false
}

// CertFacts is what a router reads from a client certificate whose chain
// it verified: the serial, the session and identity of its SPIFFE URI, the
// issuing controller named by its intermediate, and its validity.
type CertFacts struct {
	Serial    Serial
	Session   SessionID
	Identity  string
	Issuer    string
	NotBefore Millis
	NotAfter  Millis
	// Fingerprint is the SHA-256 of the certificate's DER. A router always
	// sets it; zero (the simulator, which has no DER) skips the check.
	Fingerprint [32]byte
}

// Admission decides whether a new connection made with the certificate f
// may be admitted at now. In strict mode the certificate and its session
// must be known here; otherwise (the router's "verified" mode) a
// chain-valid certificate that nothing here revokes is admitted. Every
// lookup is a map access: O(1) whatever the size of the store.
func (s *Store) Admission(f CertFacts, now Millis, strict bool) Verdict {
	if now < f.NotBefore {
		return NotYetValid
	}
	if now >= f.NotAfter {
		return CertExpired
	}
	cert := s.certs.m[f.Serial]
	if cert != nil && (cert.Session != f.Session || cert.Identity != f.Identity || cert.Issuer() != f.Issuer ||
		f.Fingerprint != [32]byte{} && f.Fingerprint != cert.Fingerprint) {
		// The replicated record disagrees with the certificate: one of
		// them is not what the issuer wrote.
		return MismatchedFacts
	}
	if cert == nil && strict {
		return UnknownCert
	}
	if v := s.revoked(f, cert, now); v != Admit {
		return v
	}
	if at, ok := s.superseded.get(f.Serial); ok && now >= at {
		return Superseded
	}
	if s.sessions.m[f.Session] == nil && strict {
		return UnknownSession
	}
	return Admit
}

// Live decides whether a live connection made with f may stay up at now. A
// connection belongs to its session: rotation, the end of its certificate's
// grace and even its certificate's expiry do not close it; the session's
// expiry and any revocation covering it do. Once the session's record is
// collected (its expiry plus the max offset plus grace), Live no longer
// knows that the session expired: a router keeps the expiry it read when
// it admitted the connection.
func (s *Store) Live(f CertFacts, now Millis) Verdict {
	return s.revoked(f, s.certs.m[f.Serial], now)
}

func (s *Store) revoked(f CertFacts, cert *CertRecord, now Millis) Verdict {
	if s.revokedSerials.has(f.Serial) {
		return SerialRevoked
	}
	if s.revokedSessions.has(f.Session) {
		return SessionRevoked
	}
	if s.revokedSigners.has(f.Issuer) {
		// Certificates issued before the revocation are refused too: the
		// controller's key may have been stolen long before.
		return IssuerRevoked
	}
	sess := s.sessions.m[f.Session]
	if sess != nil && now >= s.sessionEnd(sess) {
		return SessionExpired
	}
	if rb, ok := s.revokedIdentities.get(f.Identity); ok {
		// The identity revocation covers every session created before it.
		// Without the session record, a session's first certificate (one
		// that supersedes nothing) is issued with the session, so its
		// record's HLC stands in for the session's creation. Nothing else
		// bounds it: a rotated certificate or one without a record may
		// belong to a session created long before, so revoke wins.
		var created Millis
		switch {
		case sess != nil:
			created = sess.Created
		case cert != nil && cert.Supersedes.IsZero():
			created = cert.HLC.Millis()
		default:
			return IdentityRevoked
		}
		if created < rb {
			return IdentityRevoked
		}
	}
	return Admit
}

// Cert returns the certificate record for serial, if known.
func (s *Store) Cert(serial Serial) (*CertRecord, bool) {
	c, ok := s.certs.m[serial]
	return c, ok
}

// Session returns the session record for id, if known: the one that
// created it. Its Expires is the session's first; SessionExpires is its
// current one.
func (s *Store) Session(id SessionID) (*SessionRecord, bool) {
	r, ok := s.sessions.m[id]
	return r, ok
}

// SessionExpires returns when session id ends: the latest Expires over the
// session records held for it. A session bound to its login token
// (session.bind_to_token) is extended by another record for the same id,
// written by the same controller (only its records for the id count, see
// trust) with a later Expires; expiry joins by max, so replicas agree
// whatever order the extensions arrive in, and an extension never
// shortens a session.
func (s *Store) SessionExpires(id SessionID) (Millis, bool) {
	r, ok := s.sessions.m[id]
	if !ok {
		return 0, false
	}
	return s.sessionEnd(r), true
}

// sessionEnd is SessionExpires of the session whose winning record is
// sess. Extensions are the session's other records, kept aside by the
// winners index (rare: only bound sessions have them).
func (s *Store) sessionEnd(sess *SessionRecord) Millis {
	end := sess.Expires
	for _, d := range s.sessions.dups[sess.ID] {
		end = max(end, d.Expires)
	}
	return end
}

// IdentityRevokedBefore returns the latest revoked-before time for identity.
func (s *Store) IdentityRevokedBefore(identity string) (Millis, bool) {
	return s.revokedIdentities.get(identity)
}

// SignerRevoked reports whether the root revoked controller, and from when.
func (s *Store) SignerRevoked(controller string) (Millis, bool) {
	return s.revokedSigners.get(controller)
}

// Signers returns the active signer records of controller, sorted by key
// id. It visits every active signer record; there are a few per
// controller.
func (s *Store) Signers(controller string) []*SignerRecord {
	var out []*SignerRecord
	for k, r := range s.signers.m {
		if k.controller == controller {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *SignerRecord) int { return bytes.Compare(a.KeyID[:], b.KeyID[:]) })
	return out
}

// Signer returns the signer record of controller's key keyID, if held.
func (s *Store) Signer(controller string, keyID [32]byte) (*SignerRecord, bool) {
	r, ok := s.signers.m[signerKey{controller, keyID}]
	return r, ok
}
