package client

import (
	"errors"

	"github.com/certmesh/certmesh/pki"
)

// ForService returns cfg set to reach service by name through its
// routers: the client names the service by TLS SNI
// <service>.svc.<trustDomain> and checks each router's certificate under
// that name (routers carry the DNS SAN *.svc.<trustDomain>). The replicated
// policies decide whether the session may reach it.
func (cfg Config) ForService(service, trustDomain string) Config {
	cfg.ServerName = pki.ServiceHost(service, trustDomain)
	return cfg
}

// IsAccessDenied reports whether err is a router's refusal of the service
// rather than of the certificate (the TLS alert access_denied or
// unrecognized_name): no policy grants it to the session's identity or
// roles, or no such service is defined. Logging in again or rotating does
// not change that; an admin's policy does. IsRefused is true for it too.
func IsAccessDenied(err error) bool {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.AccessDenied()
	}
	a, ok := alertOf(err)
	return ok && accessAlert(a)
}
