package issuer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// ConfigError reports key material that the configuration points at but
// that is missing or wrong: fixed by the operator, not by retrying
// (command-line tools exit with status 2 on it).
type ConfigError struct {
	Field string // the setting naming the file: pki.cert
	Err   error
}

func (e *ConfigError) Error() string {
	msg := e.Err.Error()
	// An error that names the setting already, as auth's do ("auth:
	// auth.jwt[0]: ..."), names it once: "issuer: auth.jwt[0]: ...". The
	// prefix of the package behind a pki.* setting goes too: "issuer:
	// pki.key: open key.pem: ...", not "issuer: pki.key: pki: open ...".
	section, _, _ := strings.Cut(e.Field, ".")
	if rest, ok := strings.CutPrefix(msg, section+": "); ok {
		msg = rest
	}
	if strings.HasPrefix(msg, e.Field+".") || strings.HasPrefix(msg, e.Field+"[") {
		return "issuer: " + msg
	}
	return "issuer: " + e.Field + ": " + msg
}
func (e *ConfigError) Unwrap() error { return e.Err }

// keys is the controller's key material. It is immutable; a reload builds
// a new one.
type keys struct {
	root    *x509.Certificate // the trust anchor (first certificate of pki.ca)
	roots   *x509.CertPool    // every certificate of pki.ca
	rootPEM []byte            // pki.ca as served to clients

	inter    pki.KeyPair // the controller's intermediate: issues certificates, signs records
	interPEM []byte
	keyID    [32]byte
	signer   crdt.Signer
}

// loadKeys reads and checks pki.ca, pki.cert and pki.key.
func loadKeys(cfg *config.Controller, now time.Time) (*keys, error) {
	cas, err := pki.LoadCerts(cfg.PKI.CA)
	if err != nil {
		return nil, &ConfigError{"pki.ca", err}
	}
	k := &keys{root: cas[0], roots: x509.NewCertPool(), rootPEM: pki.EncodeCertsPEM(cas...)}
	for _, c := range cas {
		if !c.IsCA {
			return nil, &ConfigError{"pki.ca", fmt.Errorf("%s: certificate %q is not a CA", cfg.PKI.CA, c.Subject.CommonName)}
		}
		k.roots.AddCert(c)
	}
	if _, err := pki.LoadCerts(cfg.PKI.Cert); err != nil {
		return nil, &ConfigError{"pki.cert", err}
	}
	// The key on its own first: a missing or unreadable key file is
	// pki.key's fault, and so is a key that is not the certificate's.
	if _, err := pki.LoadKey(cfg.PKI.Key); err != nil {
		return nil, &ConfigError{"pki.key", err}
	}
	kp, err := pki.LoadKeyPair(cfg.PKI.Cert, cfg.PKI.Key)
	if err != nil {
		return nil, &ConfigError{"pki.key", err}
	}
	want := pki.ControllerID(cfg.PKI.TrustDomain, cfg.Node.Name)
	chain, err := pki.CheckNodeCert(cfg.PKI.Cert, kp.Cert, k.roots, want, now)
	if err != nil {
		return nil, &ConfigError{"pki.cert", err}
	}
	k.root = chain[1]
	k.inter = kp
	k.interPEM = pki.EncodeCertsPEM(kp.Cert)
	if k.keyID, err = pki.KeyID(kp.Cert.PublicKey); err != nil {
		return nil, &ConfigError{"pki.cert", err}
	}
	k.signer = trust.RecordSigner{Key: kp.Key}
	if _, err := k.signer.Sign([]byte("probe")); err != nil {
		return nil, &ConfigError{"pki.key", fmt.Errorf("%s cannot sign records: %w", cfg.PKI.Key, err)}
	}
	return k, nil
}

// serverCerts issues the API's TLS certificate from the current
// intermediate, and issues a new one when the intermediate changes or the
// current one nears its end.
type serverCerts struct {
	hosts []string
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	from  *keys            // guarded by mu: the keys cur was issued from
	cur   *tls.Certificate // guarded by mu
	renew time.Time        // guarded by mu
}

func (s *serverCerts) get(k *keys) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cur != nil && s.from == k && now.Before(s.renew) {
		return s.cur, nil
	}
	c, err := pki.IssueServer(k.inter, s.hosts, s.ttl, now, nil)
	if err != nil {
		if s.cur != nil {
			return s.cur, nil // keep serving the last one
		}
		return nil, fmt.Errorf("issuer: api server certificate: %w", err)
	}
	s.cur, s.from = &c, k
	s.renew = now.Add(c.Leaf.NotAfter.Sub(now) * 2 / 3)
	return s.cur, nil
}
