package issuer

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/auth"
)

// ctrlMetrics are the controller's own metrics (docs/deploy.md, "What to watch":
// certmesh_certs_issued_total and certmesh_auth_failures_total{code}), in
// a set of their own: no globals.
type ctrlMetrics struct {
	set      *metrics.Set
	issued   *metrics.Counter
	commits  *metrics.Counter
	ownRecs  *metrics.Counter
	recvRecs *metrics.Counter
	commitS  *metrics.PrometheusHistogram
}

var authCodes = []auth.Code{
	auth.CodeTokenExpired, auth.CodeTokenNotYetValid, auth.CodeTokenInvalid,
	auth.CodeAudienceMismatch, auth.CodeIssuerUnknown, auth.CodeIssuerUnavailable,
}

func newMetrics() *ctrlMetrics {
	s := metrics.NewSet()
	m := &ctrlMetrics{
		set:      s,
		issued:   s.NewCounter("certmesh_certs_issued_total"),
		commits:  s.NewCounter("certmesh_store_commits_total"),
		ownRecs:  s.NewCounter(`certmesh_store_records_written_total{origin="local"}`),
		recvRecs: s.NewCounter(`certmesh_store_records_written_total{origin="peer"}`),
		commitS:  s.NewPrometheusHistogram("certmesh_store_commit_seconds"),
	}
	for _, c := range authCodes {
		m.authFailure(string(c)) // listed from the start, at 0
	}
	return m
}

func (m *ctrlMetrics) authFailure(code string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_auth_failures_total{code=%q}`, code))
}

func (m *ctrlMetrics) request(route string, status int) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_api_requests_total{route=%q,status="%d"}`, route, status)).Inc()
}

func (m *ctrlMetrics) commit(own, received int, took time.Duration) {
	m.commits.Inc()
	m.ownRecs.Add(own)
	m.recvRecs.Add(received)
	m.commitS.Update(took.Seconds())
}
