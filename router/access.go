package router

import (
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Access: after the certificate is admitted (Decide), the connection's
// service is chosen by TLS SNI <service>.svc.<trust-domain>
// (pki.ServiceHost) or is the router's default, and the replicated
// policies must grant it to the session's identity or roles
// (crdt.Store.Access). When a service, policy or identity-roles change is
// applied, the live connections it may concern are judged again and those
// no longer granted closed (events.go).

// TLS alerts of an access refusal (RFC 8446 section 6).
const (
	alertAccessDenied     = 49
	alertUnrecognizedName = 112
)

// Values of certmesh_access_denied_total{reason}, besides
// crdt.UnknownService and crdt.NotGranted: a connection that names no
// service at a router without a default.
const accessNoService = "no_service"

// closeAccessRemoved is the certmesh_connections_closed_total{reason} of a
// live connection whose access a change removed.
const closeAccessRemoved = "access_removed"

// reasonAccessDenied is the certmesh_admissions_total{result} of a
// certificate admitted to a service it may not reach (the reason is in
// certmesh_access_denied_total).
const reasonAccessDenied = "access_denied"

// Access reports whether the session of f may reach service now. It is a
// pure function of the store and costs a few map lookups whatever the
// numbers of services, policies and roles. The store must not be modified
// concurrently (read it under the mesh's lock).
func Access(store *crdt.Store, f crdt.CertFacts, service string) crdt.AccessVerdict {
	return store.Access(f.Identity, f.Session, service)
}

// target is where an admitted connection is proxied.
type target struct {
	service string // the replicated service; empty for the local upstream
	address string
}

// route picks the connection's service from its SNI and answers the
// access question for it: the target, or the reason of the refusal and
// its alert.
func (r *Router) route(serverName string, f crdt.CertFacts) (target, string, byte) {
	name, named := pki.ServiceOfHost(serverName, r.cfg.TrustDomain)
	if !named {
		switch {
		case r.cfg.Upstream != "":
			// The old upstream: every admitted session may reach it.
			return target{address: r.cfg.Upstream}, "", 0
		case r.cfg.DefaultService != "":
			name = r.cfg.DefaultService
		default:
			return target{}, accessNoService, alertUnrecognizedName
		}
	}
	var v crdt.AccessVerdict
	var addr string
	r.mesh.View(func(s *crdt.Store) {
		if v = Access(s, f, name); v == crdt.AccessGranted {
			svc, _ := s.Service(name)
			addr = svc.Address
		}
	})
	switch v {
	case crdt.AccessGranted:
		return target{service: name, address: addr}, "", 0
	case crdt.UnknownService:
		return target{service: name}, v.String(), alertUnrecognizedName
	}
	return target{service: name}, v.String(), alertAccessDenied
}

// accessCandidates collects the live connections that the applied access
// records in recs may concern: of the identity whose roles changed, of
// the service that changed, and, for a policy, every connection to a
// replicated service (a policy's old selectors are not known here, and
// judging a connection is a few map lookups).
func (r *Router) accessCandidates(recs []crdt.Record) []*liveConn {
	var out []*liveConn
	for _, rec := range recs {
		switch rec := rec.(type) {
		case *crdt.PolicyRecord:
			return r.reg.services(nil)
		case *crdt.ServiceRecord:
			out = r.reg.service(rec.Name, out)
		case *crdt.IdentityRolesRecord:
			out = r.reg.identity(rec.Identity, out)
		}
	}
	return out
}

// stillGranted judges a live connection after an access change.
func stillGranted(s *crdt.Store, c *liveConn, _ crdt.Millis) string {
	if c.service == "" || Access(s, c.facts, c.service) == crdt.AccessGranted {
		return ""
	}
	return closeAccessRemoved
}

// stays judges a live connection after a revocation or at its session's
// expiry.
func stays(s *crdt.Store, c *liveConn, now crdt.Millis) string {
	if v := Stays(s, c.facts, now); v != crdt.Admit {
		return v.String()
	}
	return ""
}
