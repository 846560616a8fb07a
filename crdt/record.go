package crdt

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Kind tells which of the eight record kinds a record is.
//
// WARNING: ONLY APPEND TO THIS LIST! The numeric values are part of the
// wire format and of the signed bytes.
type Kind uint8

const (
	KindSession            Kind = 1
	KindCert               Kind = 2
	KindRevocation         Kind = 3
	KindIdentityRevocation Kind = 4
	KindSigner             Kind = 5
	KindService            Kind = 6
	KindPolicy             Kind = 7
	KindIdentityRoles      Kind = 8

	maxKind = KindIdentityRoles
)

var kindNames = [...]string{
	KindSession:            "session",
	KindCert:               "cert",
	KindRevocation:         "revocation",
	KindIdentityRevocation: "identity_revocation",
	KindSigner:             "signer",
	KindService:            "service",
	KindPolicy:             "policy",
	KindIdentityRoles:      "identity_roles",
}

func (k Kind) String() string {
	if k == 0 || k > maxKind {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Author names the writer of a record: a controller name plus the
// incarnation chosen when that controller's data directory was created. A
// controller rebuilt from an empty disk gets a new incarnation, so its dots
// can never collide with those it wrote before.
type Author struct {
	Name        string
	Incarnation uint64
}

func (a Author) String() string { return fmt.Sprintf("%s#%016x", a.Name, a.Incarnation) }

// ParseAuthor parses the form that Author.String prints.
func ParseAuthor(s string) (Author, error) {
	i := strings.LastIndexByte(s, '#')
	if i <= 0 || len(s)-i-1 != 16 {
		return Author{}, fmt.Errorf("crdt: malformed author %q", s)
	}
	b, err := hex.DecodeString(s[i+1:])
	if err != nil {
		return Author{}, fmt.Errorf("crdt: malformed author %q", s)
	}
	var inc uint64
	for _, c := range b {
		inc = inc<<8 | uint64(c)
	}
	return Author{Name: s[:i], Incarnation: inc}, nil
}

// Dot identifies one write: the seq-th record of an author, counting from 1.
type Dot struct {
	Author Author
	Seq    uint64
}

func (d Dot) String() string { return fmt.Sprintf("%v:%d", d.Author, d.Seq) }

// Serial is a certificate serial number: 128 bits, big-endian.
type Serial [16]byte

func (s Serial) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the zero serial, which no certificate has.
func (s Serial) IsZero() bool { return s == Serial{} }

// ParseSerial parses a serial from hex, upper or lower case, with or without
// leading zeros.
func ParseSerial(h string) (Serial, error) {
	var s Serial
	if len(h) == 0 || len(h) > 32 {
		return s, fmt.Errorf("crdt: serial %q: want 1 to 32 hex digits", h)
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return s, fmt.Errorf("crdt: serial %q: %w", h, err)
	}
	copy(s[16-len(b):], b)
	return s, nil
}

// SessionID is a session's random 128-bit identifier.
type SessionID [16]byte

func (id SessionID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero id, which no session has.
func (id SessionID) IsZero() bool { return id == SessionID{} }

// ParseSessionID parses the 32 hex digits that String prints.
func ParseSessionID(h string) (SessionID, error) {
	var id SessionID
	if len(h) != 32 {
		return id, fmt.Errorf("crdt: session id %q: want 32 hex digits", h)
	}
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return id, fmt.Errorf("crdt: session id %q: %w", h, err)
	}
	return id, nil
}

// Signature is a record signature: 64 bytes, ECDSA P-256 r||s or Ed25519.
type Signature [64]byte

// Header is what every record carries besides its body.
type Header struct {
	Author Author
	Seq    uint64
	HLC    Timestamp
	// OwnSig is the author's signature of a record signed alone; nil for
	// a batch-signed record, whose signature its Batch holds: a batch's
	// records keep it once. Read it with Sig, set it with SetSig.
	OwnSig *Signature
	// Batch, when not nil, is the batch signature the record shares with
	// the other records of its author's commit.
	Batch *Batch
}

// Sig returns the record's signature: of its signed bytes for a record
// signed alone, of its batch's root (BatchSignedBytes) for one signed in
// a batch.
func (h *Header) Sig() Signature {
	switch {
	case h.Batch != nil:
		return h.Batch.Sig
	case h.OwnSig != nil:
		return *h.OwnSig
	}
	return Signature{}
}

// SetSig makes the record one signed alone, with signature sig.
func (h *Header) SetSig(sig Signature) { h.OwnSig, h.Batch = &sig, nil }

// Dot is the record's dot.
func (h *Header) Dot() Dot { return Dot{h.Author, h.Seq} }

// Record is one immutable write. The concrete types are *SessionRecord,
// *CertRecord, *RevocationRecord, *IdentityRevocationRecord,
// *SignerRecord, and the access records *ServiceRecord, *PolicyRecord and
// *IdentityRolesRecord. Records are shared between stores once merged and must not
// be modified after they are signed.
type Record interface {
	Head() *Header
	Kind() Kind
	// expiry is when the record stops mattering anywhere; garbage
	// collection keys on it.
	expiry() Millis
	// validate checks the body's own invariants (no signatures, no state).
	validate() error
	encodeBody(e *encoder)
	decodeBody(d *decoder) error
}

// SessionRecord creates a session. All fields are write-once facts set by
// the issuing controller.
type SessionRecord struct {
	Header
	ID       SessionID
	Identity string
	Method   string // how the identity authenticated, e.g. "oidc:<issuer>"
	Created  Millis
	Expires  Millis
	// Roles are the roles the identity's token claimed at login (the
	// claim named by roles_claim), sorted and unique; nil for none. The
	// roles an admin gives the identity are IdentityRolesRecords, read at
	// each decision.
	Roles []string
}

// CertRecord records one issued client certificate. A rotation is a new
// CertRecord for the same session whose Supersedes names the old serial:
// from SupersedeAt on the old certificate is refused for new connections.
type CertRecord struct {
	Header
	Serial      Serial
	Session     SessionID
	Identity    string
	Fingerprint [32]byte // SHA-256 of the certificate's DER
	NotBefore   Millis
	NotAfter    Millis
	Supersedes  Serial // zero for a session's first certificate
	SupersedeAt Millis // when Supersedes stops being valid for new connections
}

// Issuer is the controller whose intermediate issued the certificate: the
// record's author, since only a controller writes records about its own
// certificates.
func (r *CertRecord) Issuer() string { return r.Author.Name }

// RevocationTarget says what a RevocationRecord revokes.
//
// WARNING: ONLY APPEND TO THIS LIST! Part of the wire format.
type RevocationTarget uint8

const (
	RevokeSession RevocationTarget = 1
	RevokeSerial  RevocationTarget = 2
)

// RevocationRecord revokes one session or one serial, forever. It may
// arrive before the thing it revokes and still binds it.
type RevocationRecord struct {
	Header
	Target  RevocationTarget
	Session SessionID // when Target is RevokeSession
	Serial  Serial    // when Target is RevokeSerial
	Reason  string
	At      Millis
	// Until is the least time the writer asks the record to be kept
	// (zero: forever). It is a floor, not the rule: a writer knows only its
	// own session lifetime, so the record is kept until what it covers can
	// no longer be used, whatever its writer's config (see Retention).
	Until Millis
}

// IdentityRevocationRecord revokes every session of Identity created before
// RevokedBefore. Concurrent ones join by the maximum.
type IdentityRevocationRecord struct {
	Header
	Identity      string
	RevokedBefore Millis
	Reason        string
	Until         Millis // as in RevocationRecord: a floor; zero means never
}

// SignerRecord publishes a controller's record-signing certificate, or,
// when Revoked, revokes every key of controller Controller from RevokedAt
// on. A revoking record must carry RootSig, a revocation signed by the root
// CA, which the Verifier checks; the status lattice is active < revoked and
// revoked absorbs.
type SignerRecord struct {
	Header
	Controller string
	KeyID      [32]byte // SHA-256 of the key's SubjectPublicKeyInfo; zero when Revoked
	Cert       []byte   // DER of the controller's intermediate; empty when Revoked
	NotAfter   Millis   // the key's expiry; when Revoked, how long to keep the revocation (zero: forever)
	Revoked    bool
	RevokedAt  Millis
	RootSig    []byte // the root-signed revocation blob, opaque to crdt
	// Cut, on a revocation, is what its author held of Controller's writes
	// when it wrote it: one entry per incarnation, Author.Name being
	// Controller. Once revoked, a controller's records count only within
	// the union of the cuts that other controllers wrote (see
	// Store.MergeVerified); its HLC, which the stolen key chooses, cannot
	// move them. Nil on a revocation written without one (then only the
	// HLC rule applies) and on an active signer record.
	Cut []AuthorContext
}

func (r *SessionRecord) Head() *Header            { return &r.Header }
func (r *CertRecord) Head() *Header               { return &r.Header }
func (r *RevocationRecord) Head() *Header         { return &r.Header }
func (r *IdentityRevocationRecord) Head() *Header { return &r.Header }
func (r *SignerRecord) Head() *Header             { return &r.Header }

func (*SessionRecord) Kind() Kind            { return KindSession }
func (*CertRecord) Kind() Kind               { return KindCert }
func (*RevocationRecord) Kind() Kind         { return KindRevocation }
func (*IdentityRevocationRecord) Kind() Kind { return KindIdentityRevocation }
func (*SignerRecord) Kind() Kind             { return KindSigner }

func (r *SessionRecord) expiry() Millis { return r.Expires }
func (r *CertRecord) expiry() Millis    { return r.NotAfter }

// A revocation whose Until is unset (zero) is kept forever: collecting it
// would make its target usable again.
func (r *RevocationRecord) expiry() Millis         { return orNever(r.Until) }
func (r *IdentityRevocationRecord) expiry() Millis { return orNever(r.Until) }

// A signer revocation is kept until NotAfter, the latest expiry of the
// controller's keys, or forever when that is unset; revoked absorbs.
func (r *SignerRecord) expiry() Millis {
	if r.Revoked {
		return orNever(r.NotAfter)
	}
	return r.NotAfter
}

func orNever(m Millis) Millis {
	if m == 0 {
		return maxMillis
	}
	return m
}

// Limits on what a record may hold, so that untrusted input stays small.
const (
	MaxNameLen     = 253  // author and controller names
	MaxIdentityLen = 1024 // identities (OIDC sub and the like)
	MaxTextLen     = 256  // reasons and methods
	MaxCertLen     = 4096 // a signer's intermediate DER
	MaxRootSigLen  = 1024 // a root-signed revocation blob
	// MaxCutAuthors caps the incarnations in a revocation's cut, and
	// MaxCutAbove the seqs above each one's contiguous part: a cut is
	// what one controller held, normally one incarnation and a few
	// out-of-order dots. A writer with more keeps the lowest, which cuts
	// more of the revoked controller's writes, never fewer.
	MaxCutAuthors = 16
	MaxCutAbove   = 64
)

// ErrInvalid wraps every error about a record's own contents.
var ErrInvalid = errors.New("crdt: invalid record")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func validateHeader(h *Header) error {
	if h.Author.Name == "" || len(h.Author.Name) > MaxNameLen {
		return invalid("author name length %d", len(h.Author.Name))
	}
	if h.Seq == 0 {
		return invalid("seq 0")
	}
	return nil
}

func (r *SessionRecord) validate() error {
	switch {
	case r.ID.IsZero():
		return invalid("session with zero id")
	case r.Identity == "" || len(r.Identity) > MaxIdentityLen:
		return invalid("session identity length %d", len(r.Identity))
	case len(r.Method) > MaxTextLen:
		return invalid("session method length %d", len(r.Method))
	case r.Expires < r.Created:
		return invalid("session expires before it is created")
	}
	return validateRoles("session", r.Roles)
}

func (r *CertRecord) validate() error {
	switch {
	case r.Serial.IsZero():
		return invalid("cert with zero serial")
	case r.Session.IsZero():
		return invalid("cert %v without session", r.Serial)
	case r.Identity == "" || len(r.Identity) > MaxIdentityLen:
		return invalid("cert identity length %d", len(r.Identity))
	case r.NotAfter < r.NotBefore:
		return invalid("cert %v expires before it is valid", r.Serial)
	case r.Supersedes == r.Serial:
		return invalid("cert %v supersedes itself", r.Serial)
	}
	return nil
}

func (r *RevocationRecord) validate() error {
	switch r.Target {
	case RevokeSession:
		if r.Session.IsZero() || !r.Serial.IsZero() {
			return invalid("session revocation must name exactly a session")
		}
	case RevokeSerial:
		if r.Serial.IsZero() || !r.Session.IsZero() {
			return invalid("serial revocation must name exactly a serial")
		}
	default:
		return invalid("revocation target %d", r.Target)
	}
	if len(r.Reason) > MaxTextLen {
		return invalid("revocation reason length %d", len(r.Reason))
	}
	return nil
}

func (r *IdentityRevocationRecord) validate() error {
	if r.Identity == "" || len(r.Identity) > MaxIdentityLen {
		return invalid("identity revocation identity length %d", len(r.Identity))
	}
	if len(r.Reason) > MaxTextLen {
		return invalid("identity revocation reason length %d", len(r.Reason))
	}
	return nil
}

func (r *SignerRecord) validate() error {
	if r.Controller == "" || len(r.Controller) > MaxNameLen {
		return invalid("signer controller length %d", len(r.Controller))
	}
	if r.Revoked {
		if len(r.RootSig) == 0 || len(r.RootSig) > MaxRootSigLen {
			return invalid("signer revocation root signature length %d", len(r.RootSig))
		}
		if len(r.Cert) != 0 || r.KeyID != [32]byte{} {
			return invalid("signer revocation carries a key")
		}
		return validateCut(r.Controller, r.Cut)
	}
	if r.Cut != nil {
		return invalid("active signer carries a cut")
	}
	if len(r.Cert) == 0 || len(r.Cert) > MaxCertLen {
		return invalid("signer cert length %d", len(r.Cert))
	}
	if len(r.RootSig) != 0 {
		return invalid("active signer carries a root signature")
	}
	return nil
}

func validateCut(controller string, cut []AuthorContext) error {
	if len(cut) > MaxCutAuthors {
		return invalid("cut of %d incarnations", len(cut))
	}
	for i := range cut {
		e := &cut[i]
		if e.Author.Name != controller {
			return invalid("cut names %q, revocation of %q", e.Author.Name, controller)
		}
		if i > 0 && cut[i-1].Author.Incarnation >= e.Author.Incarnation {
			return invalid("cut incarnations not increasing")
		}
		if err := e.validateAbove(MaxCutAbove, "cut"); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a record's header and body for internal consistency. It
// does not check signatures; see Verify.
func Validate(r Record) error {
	if r == nil {
		return invalid("nil record")
	}
	h := r.Head()
	if err := validateHeader(h); err != nil {
		return err
	}
	if b := h.Batch; b != nil {
		switch {
		case r.Kind() == KindSigner:
			return invalid("batch-signed signer record")
		case b.Count <= 0 || b.Count > MaxBatch:
			return invalid("batch of %d records", b.Count)
		case h.Seq < b.First || h.Seq-b.First >= uint64(b.Count):
			return invalid("seq %d outside its batch of %d from %d", h.Seq, b.Count, b.First)
		}
	}
	return r.validate()
}

// A Signer signs the canonical bytes of records for one author.
type Signer interface {
	Sign(msg []byte) (Signature, error)
}

// A Verifier checks a record's signature over msg, its canonical bytes,
// against the key of its author (or, for a revoking SignerRecord, the root).
// Implementations must be safe for concurrent use.
type Verifier interface {
	Verify(r Record, msg []byte) error
}

// Stamp sets the headers of records a controller writes, in order: its
// author, consecutive seqs from next, and each an HLC from hlc, so that a
// controller's writes are numbered in HLC order (CoverInterval relies on
// it). It returns the seq after the last. The controller and the simulator
// both stamp with it.
func Stamp(recs []Record, author Author, next uint64, hlc func() Timestamp) uint64 {
	for _, r := range recs {
		h := r.Head()
		h.Author, h.Seq, h.HLC = author, next, hlc()
		next++
	}
	return next
}

// Sign sets r's signature. r's header fields other than Sig must be final.
func Sign(r Record, s Signer) error {
	sig, err := s.Sign(SignedBytes(r))
	if err != nil {
		return fmt.Errorf("crdt: sign %v %v: %w", r.Kind(), r.Head().Dot(), err)
	}
	r.Head().SetSig(sig)
	return nil
}

// Verify validates r and checks its signature with v.
func Verify(r Record, v Verifier) error {
	if err := Validate(r); err != nil {
		return err
	}
	if err := v.Verify(r, SignedBytes(r)); err != nil {
		return fmt.Errorf("crdt: %v %v: %w", r.Kind(), r.Head().Dot(), err)
	}
	return nil
}
