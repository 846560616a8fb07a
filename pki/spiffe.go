package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is the role that a SPIFFE ID names.
type Kind string

// The kinds of SPIFFE ID that certmesh certificates carry.
const (
	KindController Kind = "controller" // spiffe://<td>/controller/<name>
	KindRouter     Kind = "router"     // spiffe://<td>/router/<name>
	KindAdmin      Kind = "admin"      // spiffe://<td>/admin/<name>
	KindIdentity   Kind = "identity"   // spiffe://<td>/identity/<identity>/session/<session-id>
)

// Limits on the strings that go into a SPIFFE ID, so that a certificate
// stays well under the 2048-byte URI limit of the SPIFFE specification even
// when every byte is percent-encoded (three bytes each).
const (
	MaxIdentityLen  = 512 // bytes of UTF-8 in a client identity
	MaxSessionIDLen = 128 // bytes in a session id
	maxSPIFFELen    = 2048
)

const spiffeScheme = "spiffe://"

// SPIFFEID is a parsed certmesh SPIFFE ID.
type SPIFFEID struct {
	TrustDomain string
	Kind        Kind
	// Name is the controller, router or admin name, or for KindIdentity the
	// client identity (any non-empty UTF-8 string).
	Name string
	// SessionID is set for KindIdentity only.
	SessionID string
}

// ControllerID returns the SPIFFE ID of controller name.
func ControllerID(trustDomain, name string) SPIFFEID {
	return SPIFFEID{TrustDomain: trustDomain, Kind: KindController, Name: name}
}

// IdentityID returns the SPIFFE ID of a client session certificate.
func IdentityID(trustDomain, identity, sessionID string) SPIFFEID {
	return SPIFFEID{TrustDomain: trustDomain, Kind: KindIdentity, Name: identity, SessionID: sessionID}
}

// String returns the canonical URI form of id. It does not validate id; use
// Validate for that.
func (id SPIFFEID) String() string {
	var b strings.Builder
	b.WriteString(spiffeScheme)
	b.WriteString(id.TrustDomain)
	b.WriteByte('/')
	b.WriteString(string(id.Kind))
	b.WriteByte('/')
	b.WriteString(EscapeSegment(id.Name))
	if id.Kind == KindIdentity {
		b.WriteString("/session/")
		b.WriteString(EscapeSegment(id.SessionID))
	}
	return b.String()
}

// URL returns id as a *url.URL for x509.Certificate.URIs. Its String method
// returns exactly id.String().
func (id SPIFFEID) URL() (*url.URL, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	s := id.String()
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("pki: spiffe id %q: %w", s, err)
	}
	if u.String() != s {
		// Cannot happen with the canonical escaping; checked so that the
		// certificate never carries a different string than the one parsed.
		return nil, fmt.Errorf("pki: spiffe id %q does not survive url round trip (got %q)", s, u.String())
	}
	return u, nil
}

// Validate reports whether id can be written into a certificate.
func (id SPIFFEID) Validate() error {
	if err := id.check(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func (id SPIFFEID) check() error {
	if err := checkTrustDomain(id.TrustDomain); err != nil {
		return err
	}
	switch id.Kind {
	case KindController, KindRouter, KindAdmin:
		if err := checkName(id.Name); err != nil {
			return err
		}
		if id.SessionID != "" {
			return fmt.Errorf("spiffe id of kind %s has a session id", id.Kind)
		}
	case KindIdentity:
		if err := checkIdentity(id.Name); err != nil {
			return err
		}
		if id.SessionID == "" || len(id.SessionID) > MaxSessionIDLen || !utf8.ValidString(id.SessionID) {
			return fmt.Errorf("session id must be 1 to %d bytes of UTF-8", MaxSessionIDLen)
		}
	default:
		return fmt.Errorf("unknown spiffe id kind %q", id.Kind)
	}
	if n := len(id.String()); n > maxSPIFFELen {
		return fmt.Errorf("spiffe id is %d bytes once encoded, more than %d", n, maxSPIFFELen)
	}
	return nil
}

func checkIdentity(identity string) error {
	if identity == "" || len(identity) > MaxIdentityLen {
		return fmt.Errorf("identity must be 1 to %d bytes, got %d", MaxIdentityLen, len(identity))
	}
	if !utf8.ValidString(identity) {
		return errors.New("identity is not valid UTF-8")
	}
	return nil
}

// ParseSPIFFE parses a certmesh SPIFFE ID in its canonical form (as String
// writes it). Non-canonical percent-encodings are refused, so every identity
// has exactly one URI.
func ParseSPIFFE(uri string) (SPIFFEID, error) {
	id, err := parseSPIFFE(uri)
	if err != nil {
		return SPIFFEID{}, fmt.Errorf("pki: %w", err)
	}
	return id, nil
}

func parseSPIFFE(uri string) (SPIFFEID, error) {
	fail := func(why string) (SPIFFEID, error) {
		return SPIFFEID{}, fmt.Errorf("spiffe id %.200q: %s", uri, why)
	}
	if len(uri) > maxSPIFFELen {
		return fail("too long")
	}
	rest, ok := strings.CutPrefix(uri, spiffeScheme)
	if !ok {
		return fail("scheme is not spiffe")
	}
	td, path, ok := strings.Cut(rest, "/")
	if !ok {
		return fail("no path")
	}
	if err := checkTrustDomain(td); err != nil {
		return fail(err.Error())
	}
	// Queries, fragments and spaces are not valid in an escaped path, and
	// '%' only appears as a canonical escape, so the segments below are all
	// there is.
	segs := strings.Split(path, "/")
	id := SPIFFEID{TrustDomain: td, Kind: Kind(segs[0])}
	switch {
	case id.Kind == KindIdentity && len(segs) == 4 && segs[2] == "session":
		var err error
		if id.Name, err = unescapeSegment(segs[1]); err != nil {
			return fail("identity: " + err.Error())
		}
		if id.SessionID, err = unescapeSegment(segs[3]); err != nil {
			return fail("session id: " + err.Error())
		}
	case (id.Kind == KindController || id.Kind == KindRouter || id.Kind == KindAdmin) && len(segs) == 2:
		var err error
		if id.Name, err = unescapeSegment(segs[1]); err != nil {
			return fail("name: " + err.Error())
		}
	default:
		return fail("path is not /controller/<name>, /router/<name>, /admin/<name> or /identity/<identity>/session/<id>")
	}
	if err := id.check(); err != nil {
		return fail(err.Error())
	}
	return id, nil
}

// IDOf returns the SPIFFE ID of cert, which must carry exactly one URI SAN.
func IDOf(cert *x509.Certificate) (SPIFFEID, error) {
	id, err := idOf(cert)
	if err != nil {
		return SPIFFEID{}, fmt.Errorf("pki: %w", err)
	}
	return id, nil
}

func idOf(cert *x509.Certificate) (SPIFFEID, error) {
	if len(cert.URIs) != 1 {
		return SPIFFEID{}, fmt.Errorf("certificate %q has %d URI SANs, want 1", cert.Subject.CommonName, len(cert.URIs))
	}
	return parseSPIFFE(cert.URIs[0].String())
}

// ControllerOf returns the name of the controller whose intermediate issued
// the leaf of verifiedChain. verifiedChain must be a chain built and verified
// by crypto/x509 (for example tls.ConnectionState.VerifiedChains[i]) against
// a pool holding only the root: leaf, intermediate, root. The name is read
// from the intermediate's URI SAN, never from the order in which a client sent
// its certificates.
func ControllerOf(verifiedChain []*x509.Certificate, trustDomain string) (string, error) {
	if len(verifiedChain) != 3 {
		return "", fmt.Errorf("pki: verified chain has %d certificates, want leaf, intermediate and root", len(verifiedChain))
	}
	inter := verifiedChain[1]
	if !inter.IsCA {
		return "", errors.New("pki: chain intermediate is not a CA")
	}
	id, err := idOf(inter)
	if err != nil {
		return "", fmt.Errorf("pki: chain intermediate: %w", err)
	}
	if id.Kind != KindController {
		return "", fmt.Errorf("pki: chain intermediate is a %s, not a controller", id.Kind)
	}
	if id.TrustDomain != trustDomain {
		return "", fmt.Errorf("pki: chain intermediate is in trust domain %q, want %q", id.TrustDomain, trustDomain)
	}
	return id.Name, nil
}

// AdminOf returns the admin name of verifiedChain: a ClientAuth leaf issued
// directly by the root (the chain is exactly leaf, root) whose only URI SAN is
// spiffe://<trustDomain>/admin/<name>. The subject CN plays no part.
// verifiedChain must come from crypto/x509 verification against the root.
func AdminOf(verifiedChain []*x509.Certificate, trustDomain string) (string, error) {
	if len(verifiedChain) != 2 {
		return "", fmt.Errorf("pki: admin chain has %d certificates, want leaf and root", len(verifiedChain))
	}
	leaf := verifiedChain[0]
	if leaf.IsCA {
		return "", errors.New("pki: admin certificate is a CA")
	}
	if !hasExtKeyUsage(leaf, x509.ExtKeyUsageClientAuth) {
		return "", errors.New("pki: admin certificate lacks ClientAuth")
	}
	id, err := idOf(leaf)
	if err != nil {
		return "", fmt.Errorf("pki: admin certificate: %w", err)
	}
	if id.Kind != KindAdmin || id.TrustDomain != trustDomain {
		return "", fmt.Errorf("pki: %s is not an admin of trust domain %q", id, trustDomain)
	}
	return id.Name, nil
}

// IsAdmin reports whether verifiedChain authenticates an admin (see AdminOf).
func IsAdmin(verifiedChain []*x509.Certificate, trustDomain string) bool {
	_, err := AdminOf(verifiedChain, trustDomain)
	return err == nil
}

func hasExtKeyUsage(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == want {
			return true
		}
	}
	return false
}

// EscapeSegment percent-encodes s as one URI path segment (RFC 3986 section
// 2.1, upper-case hex). Every byte except the unreserved characters
// ALPHA / DIGIT / "-" / "." / "_" / "~" is encoded, and a segment made only
// of dots has its dots encoded too, so that "." and ".." never become
// dot-segments that a URI normalizer would remove. The result never contains
// '/', and unescapeSegment(EscapeSegment(s)) == s for every s.
func EscapeSegment(s string) string {
	allDots := strings.Trim(s, ".") == ""
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) && !(c == '.' && allDots) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescapeSegment decodes a segment written by EscapeSegment and refuses any
// other spelling of the same bytes.
func unescapeSegment(seg string) (string, error) {
	if seg == "" {
		return "", errors.New("empty path segment")
	}
	s, err := url.PathUnescape(seg)
	if err != nil {
		return "", err
	}
	if EscapeSegment(s) != seg {
		return "", fmt.Errorf("segment %q is not canonically percent-encoded", seg)
	}
	return s, nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// ValidateName reports whether name can name a controller, router or admin:
// an RFC 1123 DNS label in lower case (1 to 63 of a-z, 0-9 and '-', not
// starting or ending with '-'), which is also safe as a path segment and a
// directory name on case-insensitive file systems.
func ValidateName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("name %.70q is longer than 63 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i != 0 && i != len(name)-1:
		default:
			return fmt.Errorf("name %q must be a lower-case DNS label (a-z, 0-9, inner '-')", name)
		}
	}
	return nil
}

// ValidateTrustDomain reports whether td is a valid SPIFFE trust domain: 1 to
// 255 bytes of lower-case letters, digits, '-', '_' and '.', in non-empty
// dot-separated labels.
func ValidateTrustDomain(td string) error {
	if err := checkTrustDomain(td); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func checkTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("trust domain %.60q must be 1 to 255 bytes", td)
	}
	for _, label := range strings.Split(td, ".") {
		if label == "" {
			return fmt.Errorf("trust domain %q has an empty label", td)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("trust domain %q may only hold a-z, 0-9, '-', '_' and '.'", td)
			}
		}
	}
	return nil
}

// IssuedByRoot parses der and checks that root, alone in roots, issued it
// directly. The chain is checked at a time when both certificates are
// valid; the window in which both are, from and until, is returned so that
// the caller checks each use's time against it and one parse serves every
// use (a record's HLC, a frame's send time).
func IssuedByRoot(der []byte, root *x509.Certificate, roots *x509.CertPool) (cert *x509.Certificate, from, until time.Time, err error) {
	if cert, err = x509.ParseCertificate(der); err != nil {
		return nil, from, until, err
	}
	from, until = cert.NotBefore, cert.NotAfter
	if root.NotBefore.After(from) {
		from = root.NotBefore
	}
	if root.NotAfter.Before(until) {
		until = root.NotAfter
	}
	if from.After(until) {
		return nil, from, until, fmt.Errorf("certificate %q is never valid under the root", cert.Subject.CommonName)
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: from,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, from, until, err
	}
	for _, ch := range chains {
		if len(ch) == 2 && ch[1].Equal(root) {
			return cert, from, until, nil
		}
	}
	return nil, from, until, fmt.Errorf("certificate %q is not issued directly by the root", cert.Subject.CommonName)
}
