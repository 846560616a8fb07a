package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults for `certmesh pki init` and certificate issuance.
const (
	DefaultTrustDomain = "certmesh"
	DefaultAdmin       = "admin"
	// DefaultRootTTL is the lifetime of the root CA.
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// DefaultCertTTL is the lifetime of controller intermediates, router
	// certificates and the admin certificate written by Init.
	DefaultCertTTL = 365 * 24 * time.Hour
	// ClockSkewAllowance is how far before `now` every certificate's
	// NotBefore is set, so that a node whose clock lags the issuer's (by up to
	// the mesh's max clock offset, 10s by default, and then some) does not
	// refuse a certificate issued a moment ago. Code that asks "was this
	// issued before T" must compare T with the issuance time it recorded,
	// never with NotBefore.
	ClockSkewAllowance = time.Minute
	// GossipKeySize is the size of a memberlist AES-256 key.
	GossipKeySize = 32
)

// KeyPair is a certificate and the private key of its public key. A KeyPair
// whose certificate is a CA issues certificates.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// GenerateKey returns a new ECDSA P-256 key, the only key type certmesh
// issues for. rand is ignored since Go 1.26 (see the package doc).
func GenerateKey(rand io.Reader) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

// NewGossipKey returns a memberlist key as `pki init` writes it to
// gossip.key: 32 random bytes in standard base64 and a newline.
func NewGossipKey(rand io.Reader) ([]byte, error) {
	var k [GossipKeySize]byte
	if _, err := io.ReadFull(orCryptoRand(rand), k[:]); err != nil {
		return nil, fmt.Errorf("pki: read gossip key: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(k[:]) + "\n"), nil
}

// NewRoot creates a self-signed root CA valid from now (less
// ClockSkewAllowance) for ttl. It may issue one level of intermediates.
func NewRoot(trustDomain string, ttl time.Duration, now time.Time, rand io.Reader) (KeyPair, error) {
	if err := ValidateTrustDomain(trustDomain); err != nil {
		return KeyPair{}, err
	}
	key, err := GenerateKey(rand)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "certmesh root CA " + trustDomain},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	cert, err := issue(KeyPair{Key: key}, tmpl, key.Public(), ttl, now, rand)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: root: %w", err)
	}
	return KeyPair{Cert: cert, Key: key}, nil
}

// NewController issues controller name's intermediate CA from root: a new
// key, MaxPathLen 0, URI SAN spiffe://<trustDomain>/controller/<name>.
func NewController(root KeyPair, trustDomain, name string, ttl time.Duration, now time.Time, rand io.Reader) (KeyPair, error) {
	uri, err := ControllerID(trustDomain, name).URL()
	if err != nil {
		return KeyPair{}, err
	}
	key, err := GenerateKey(rand)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "certmesh controller " + name},
		// DigitalSignature: the same key signs replicated records.
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{uri},
	}
	cert, err := issue(root, tmpl, key.Public(), ttl, now, rand)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: controller %s: %w", name, err)
	}
	return KeyPair{Cert: cert, Key: key}, nil
}

// NewRouter issues router name's certificate from root: ServerAuth and
// ClientAuth, DNS SANs name, localhost and *.svc.<trustDomain> (the
// services a client names by SNI, ServiceHost), IP SANs 127.0.0.1 and ::1,
// the extra hosts (DNS names or IP addresses), and URI SAN
// spiffe://<trustDomain>/router/<name>.
func NewRouter(root KeyPair, trustDomain, name string, hosts []string, ttl time.Duration, now time.Time, rand io.Reader) (KeyPair, error) {
	uri, err := SPIFFEID{TrustDomain: trustDomain, Kind: KindRouter, Name: name}.URL()
	if err != nil {
		return KeyPair{}, err
	}
	dns, ips, err := splitHosts(append([]string{name, "localhost", ServiceWildcard(trustDomain), "127.0.0.1", "::1"}, hosts...))
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: router %s: %w", name, err)
	}
	key, err := GenerateKey(rand)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		IPAddresses: ips,
		URIs:        []*url.URL{uri},
	}
	cert, err := issue(root, tmpl, key.Public(), ttl, now, rand)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: router %s: %w", name, err)
	}
	return KeyPair{Cert: cert, Key: key}, nil
}

// NewAdmin issues the admin client certificate from root: ClientAuth, URI SAN
// spiffe://<trustDomain>/admin/<name>.
func NewAdmin(root KeyPair, trustDomain, name string, ttl time.Duration, now time.Time, rand io.Reader) (KeyPair, error) {
	uri, err := SPIFFEID{TrustDomain: trustDomain, Kind: KindAdmin, Name: name}.URL()
	if err != nil {
		return KeyPair{}, err
	}
	key, err := GenerateKey(rand)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{uri},
	}
	cert, err := issue(root, tmpl, key.Public(), ttl, now, rand)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: admin %s: %w", name, err)
	}
	return KeyPair{Cert: cert, Key: key}, nil
}

// IssueClient issues a client session certificate from a controller
// intermediate: the public key from the client's CSR (see CheckCSR; it must
// be ECDSA P-256), CN = identity, ClientAuth, one URI SAN
// spiffe://<td>/identity/<identity>/session/<sessionID> where <td> is the
// trust domain of ca's own SPIFFE ID, a random 128-bit serial tagged with
// the name of ca's controller (NewSerialFor), NotBefore =
// now - ClockSkewAllowance and NotAfter = now + ttl (never past ca's own
// NotAfter).
func IssueClient(ca KeyPair, pub crypto.PublicKey, identity, sessionID string, ttl time.Duration, now time.Time, rand io.Reader) (*x509.Certificate, error) {
	if err := checkP256(pub); err != nil {
		return nil, fmt.Errorf("pki: client certificate: %w", err)
	}
	caID, err := idOf(ca.Cert)
	if err != nil {
		return nil, fmt.Errorf("pki: issuing CA: %w", err)
	}
	if caID.Kind != KindController {
		return nil, fmt.Errorf("pki: issuing CA is a %s, not a controller", caID.Kind)
	}
	uri, err := IdentityID(caID.TrustDomain, identity, sessionID).URL()
	if err != nil {
		return nil, err
	}
	serial, err := NewSerialFor(caID.Name, rand)
	if err != nil {
		return nil, fmt.Errorf("pki: client certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Big(),
		Subject:      pkix.Name{CommonName: identity},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{uri},
	}
	cert, err := issue(ca, tmpl, pub, ttl, now, rand)
	if err != nil {
		return nil, fmt.Errorf("pki: client certificate: %w", err)
	}
	return cert, nil
}

// IssueServer issues a TLS server certificate and its new key from ca (a
// controller's intermediate, at controller start) with DNS and IP SANs from
// hosts (see ServerHosts). The returned chain is the leaf then ca.Cert.
func IssueServer(ca KeyPair, hosts []string, ttl time.Duration, now time.Time, rand io.Reader) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("pki: server certificate needs at least one host")
	}
	dns, ips, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: server certificate: %w", err)
	}
	key, err := GenerateKey(rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}
	cert, err := issue(ca, tmpl, key.Public(), ttl, now, rand)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: server certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: [][]byte{cert.Raw, ca.Cert.Raw},
		PrivateKey:  key,
		Leaf:        cert,
	}, nil
}

// ServerHosts returns the SANs of a controller's API server certificate:
// nodeName, localhost, 127.0.0.1, ::1, the host of listenAddr (unless it is
// empty or unspecified, such as 0.0.0.0) and extra, without duplicates.
func ServerHosts(nodeName, listenAddr string, extra []string) []string {
	hosts := []string{nodeName, "localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(listenAddr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	hosts = append(hosts, extra...)
	seen := make(map[string]bool, len(hosts))
	out := hosts[:0]
	for _, h := range hosts {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// issue signs tmpl for pub with parent, or self-signs it when parent.Cert is
// nil (parent.Key then being pub's private key). It sets the serial, unless
// tmpl has one, and the validity window, clamped to the parent's.
func issue(parent KeyPair, tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration, now time.Time, rand io.Reader) (*x509.Certificate, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("ttl %v is not positive", ttl)
	}
	if now.IsZero() {
		return nil, errors.New("issue time is zero")
	}
	if parent.Key == nil {
		return nil, errors.New("issuer has no key")
	}
	rand = orCryptoRand(rand)
	if tmpl.SerialNumber == nil {
		serial, err := NewSerial(rand)
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = serial.Big()
	}
	// x509 encodes whole seconds; truncate here so the parsed certificate
	// says exactly what was asked for.
	tmpl.NotBefore = now.Add(-ClockSkewAllowance).Truncate(time.Second)
	tmpl.NotAfter = now.Add(ttl).Truncate(time.Second)
	parentCert := tmpl
	if parent.Cert != nil {
		parentCert = parent.Cert
		if !parent.Cert.IsCA || parent.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("issuer %q is not a CA", parent.Cert.Subject.CommonName)
		}
		if now.Before(parent.Cert.NotBefore) || !now.Before(parent.Cert.NotAfter) {
			return nil, fmt.Errorf("issuer %q is not valid at %s (valid %s to %s)", parent.Cert.Subject.CommonName,
				now.UTC().Format(time.RFC3339), parent.Cert.NotBefore.UTC().Format(time.RFC3339), parent.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand, tmpl, parentCert, pub, parent.Key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// splitHosts sorts hosts into DNS names and IP addresses, dropping
// duplicates and refusing anything that is neither.
func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := checkDNSName(h); err != nil {
			return nil, nil, err
		}
		dns = append(dns, h)
	}
	return dns, ips, nil
}

// checkDNSName accepts host names (letters, digits, '-' and '_' in
// dot-separated labels of at most 63 bytes, 253 bytes in all) with an
// optional leading "*." wildcard label.
func checkDNSName(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %.60q is neither an IP address nor a DNS name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
			}
		}
	}
	return nil
}

// orCryptoRand returns r, or crypto/rand.Reader when r is nil.
func orCryptoRand(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}

func checkP256(pub crypto.PublicKey) error {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("public key is %T, want ECDSA P-256", pub)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Errorf("public key is ECDSA %s, want P-256", k.Curve.Params().Name)
	}
	return nil
}
