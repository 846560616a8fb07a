package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// CheckNodeCert checks that cert, read from certFile, is the certificate of
// node want (a controller or a router: kind, name and trust domain), issued
// directly by one of roots and valid at now. A controller and a router both
// check their own certificate with it before they start and on every
// reload, so that no node runs under another node's name or role (a router
// started with a controller's intermediate, or with another router's
// certificate). A router's certificate must be a leaf that allows
// ServerAuth, since clients verify it. It returns the verified chain: cert,
// then the root. Errors begin with certFile, so they say which file to fix.
func CheckNodeCert(certFile string, cert *x509.Certificate, roots *x509.CertPool, want SPIFFEID, now time.Time) ([]*x509.Certificate, error) {
	if want.Kind != KindController && want.Kind != KindRouter {
		return nil, fmt.Errorf("pki: check node certificate: %s is not a node kind", want.Kind)
	}
	if cert == nil {
		return nil, fmt.Errorf("%s: no certificate", certFile)
	}
	id, err := idOf(cert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if id.Kind != want.Kind || id.Name != want.Name || id.TrustDomain != want.TrustDomain {
		return nil, fmt.Errorf("%s is the certificate of %s, not of %s %s in trust domain %s",
			certFile, id, want.Kind, want.Name, want.TrustDomain)
	}
	usage := x509.ExtKeyUsageAny // a controller's intermediate is a CA
	if want.Kind == KindRouter {
		if cert.IsCA {
			return nil, fmt.Errorf("%s is a CA certificate, not a router's", certFile)
		}
		usage = x509.ExtKeyUsageServerAuth
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return nil, fmt.Errorf("%s does not chain to the root CA: %w", certFile, err)
	}
	if len(chains[0]) != 2 {
		return nil, errors.New(certFile + " is not issued directly by the root")
	}
	return chains[0], nil
}
