package router

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
)

// Reasons for refusals that happen before the replicated state is asked,
// next to the crdt.Verdict words; all are values of
// certmesh_admissions_total{result}.
const (
	reasonNoCertificate   = "no_certificate"
	reasonUntrustedChain  = "untrusted_chain"
	reasonNotClientCert   = "not_client_cert"
	reasonHandshakeFailed = "handshake_failed"
)

// Reasons for closing a live connection, values of
// certmesh_connections_closed_total{reason}, next to the revoking
// crdt.Verdict words and session_expired.
const (
	closeClient   = "client_closed"
	closeUpstream = "upstream_closed"
	closeNoDial   = "upstream_unreachable"
	closeShutdown = "shutdown"
)

// routerHelp is the help text of every family a router exports itself.
var routerHelp = api.Help(map[string]string{
	"certmesh_access_denied_total":      "Admitted certificates refused a service, by reason: not_granted (no policy grants it to the session's identity or roles), unknown_service (SNI names no defined service), no_service (no SNI and no default service).",
	"certmesh_admissions_total":         "Client connections admitted (result=admitted) or refused, by reason (result=unknown_cert, session_revoked, untrusted_chain, ...).",
	"certmesh_pull_total":               "Admissions of a certificate this router did not know (strict mode) that pulled it from peers, by how the pull ended: found, not_found (its issuer says it never issued it), timeout (admission.pull_timeout passed: the client was refused), refused (known, but refused for another reason), canceled (shutdown).",
	"certmesh_connections_active":       "Live client connections, admitted and proxied.",
	"certmesh_connections_closed_total": "Live client connections closed, by reason: the client or upstream closed, a revocation, expiry, shutdown.",
	"certmesh_handshakes_pending":       "Connections in their TLS handshake, not yet admitted or refused.",
	"certmesh_handshakes_shed_total":    "Pending handshakes closed to make room for newer ones, by reason: too many from one source, or too many in all.",
})

// routerMetrics are the router's series (docs/deploy.md, "What to watch") in one set.
// certmesh_pull_total{result} counts the pulls of its handshakes by how
// they ended (found, not_found, timeout, refused, canceled), gossip
// arriving during a pull included: what a client saw. The mesh's own
// requests, several per pull, are its business (mesh.StatsSnapshot.Pulls).
type routerMetrics struct {
	set *metrics.Set
}

func newRouterMetrics(set *metrics.Set, active, pending func() float64) *routerMetrics {
	// Process-wide: # TYPE and # HELP lines, which HTTPHandler fills.
	metrics.ExposeMetadata(true)
	m := &routerMetrics{set: set}
	set.NewGauge(`certmesh_connections_active`, active)
	set.NewGauge(`certmesh_handshakes_pending`, pending)
	// Create the usual series up front so that dashboards see zeros.
	for _, r := range []string{crdt.Admit.String(), crdt.UnknownCert.String(), crdt.SessionRevoked.String(),
		crdt.SerialRevoked.String(), crdt.IdentityRevoked.String(), crdt.CertExpired.String(), reasonUntrustedChain} {
		m.admission(r)
	}
	for _, r := range []string{"found", "not_found", "timeout"} {
		m.pull(r)
	}
	for _, r := range []string{shedSource, shedPending} {
		m.shed(r)
	}
	for _, r := range []string{closeClient, crdt.SessionRevoked.String(), crdt.IdentityRevoked.String(),
		crdt.SerialRevoked.String(), crdt.SessionExpired.String(), closeShutdown, closeAccessRemoved} {
		m.closed(r)
	}
	for _, r := range []string{crdt.NotGranted.String(), crdt.UnknownService.String(), accessNoService} {
		m.accessDenied(r)
	}
	return m
}

func (m *routerMetrics) admission(result string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_admissions_total{result=%q}`, result))
}

// shed counts pending handshakes closed to make room for newer ones
// (pendingPool), by reason.
func (m *routerMetrics) shed(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_handshakes_shed_total{reason=%q}`, reason))
}

func (m *routerMetrics) pull(result string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_pull_total{result=%q}`, result))
}

// accessDenied counts admitted certificates refused their service, by
// reason (access.go).
func (m *routerMetrics) accessDenied(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_access_denied_total{reason=%q}`, reason))
}

func (m *routerMetrics) closed(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_connections_closed_total{reason=%q}`, reason))
}

func millisDuration(m crdt.Millis) time.Duration { return time.Duration(m) * time.Millisecond }
