package pki

import "strings"

// A client chooses a service at a router by TLS SNI
// <service>.svc.<trust-domain>, and router certificates carry the DNS SAN
// *.svc.<trust-domain>, so that curl, openssl and the SDK verify the
// router under the service's name.

// serviceZone is the label between a service's name and the trust domain.
const serviceZone = ".svc."

// ServiceHost is the host name, and TLS SNI, of service in trustDomain:
// <service>.svc.<trustDomain>.
func ServiceHost(service, trustDomain string) string {
	return service + serviceZone + trustDomain
}

// ServiceWildcard is the DNS SAN of router certificates in trustDomain:
// *.svc.<trustDomain>.
func ServiceWildcard(trustDomain string) string { return "*" + serviceZone + trustDomain }

// ServiceOfHost returns the service that host names in trustDomain
// (case-insensitively, as DNS), and whether host is of the form
// <label>.svc.<trustDomain> at all. The label is returned lower-cased and
// unchecked: the caller decides whether it is a service.
func ServiceOfHost(host, trustDomain string) (string, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, ok := strings.CutSuffix(host, serviceZone+strings.ToLower(trustDomain))
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}
