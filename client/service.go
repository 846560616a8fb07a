package client

import (
	"errors"
	"net"

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

// The TLS alerts of an access refusal: the certificate is good, the
// service is not granted to the session (access_denied) or not defined
// (unrecognized_name). Logging in again or rotating does not change that;
// an admin's policy does.
const (
	alertAccessDenied     = "access denied"
	alertUnrecognizedName = "unrecognized name"
)

// IsAccessDenied reports whether err is a router's refusal of the service
// rather than of the certificate: no policy grants it to the session's
// identity or roles, or no such service is defined. It is distinct from
// IsRefused, which means the certificate or session is no longer good.
func IsAccessDenied(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" {
		return false
	}
	msg := oe.Err.Error()
	return msg == "tls: "+alertAccessDenied || msg == "tls: "+alertUnrecognizedName
}
