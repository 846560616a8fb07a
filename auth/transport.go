package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
)

// httpClientFor returns the client that fetches an issuer's discovery
// document and keys: opts.HTTPClient, or, when caFile is set, a copy of it
// whose TLS trusts the certificates of caFile instead of the system roots.
func httpClientFor(caFile string, opts Options) (*http.Client, error) {
	if caFile == "" {
		return opts.HTTPClient, nil
	}
	data, err := readCapped(caFile, maxKeysFileBytes)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate", caFile)
	}
	var tr *http.Transport
	switch base := opts.HTTPClient.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = base.Clone()
	default:
		return nil, fmt.Errorf("ca_file %s: the HTTP client's transport (%T) cannot be given roots", caFile, base)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.RootCAs = pool
	c := *opts.HTTPClient
	c.Transport = tr
	return &c, nil
}

// tlsVerificationFailed reports whether err is the failure to verify the
// issuer's TLS certificate, as opposed to not reaching it at all.
func tlsVerificationFailed(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &verifyErr)
}

// unreachable says, for an API error message, why the issuer at url could
// not be asked: its TLS certificate did not verify, or it did not answer.
func unreachable(what, url string, err error) string {
	if tlsVerificationFailed(err) {
		return fmt.Sprintf("TLS verification of %s %s failed (is its CA in ca_file or the system roots?)", what, url)
	}
	return fmt.Sprintf("%s %s cannot be reached", what, url)
}
