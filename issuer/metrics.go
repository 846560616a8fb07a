package issuer

import (
	"fmt"
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
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

// ctrlHelp is the help text of every family a controller exports itself.
var ctrlHelp = api.Help(map[string]string{
	"certmesh_certs_issued_total":          "Client certificates issued by this controller: logins and rotations.",
	"certmesh_auth_failures_total":         "Logins refused for their token, by error code (token_expired, audience_mismatch, issuer_unavailable, ...).",
	"certmesh_api_requests_total":          "Requests to the controller's HTTPS API, by route and status code.",
	"certmesh_store_commits_total":         "Commits to the durable store (bbolt); concurrent writes share one.",
	"certmesh_store_records_written_total": "Records committed to the durable store, written here (origin=local) or received from peers (origin=peer).",
	"certmesh_store_commit_seconds":        "Duration of a durable store commit, fsync included.",
})

var authCodes = []auth.Code{
	auth.CodeTokenExpired, auth.CodeTokenNotYetValid, auth.CodeTokenInvalid,
	auth.CodeAudienceMismatch, auth.CodeIssuerUnknown, auth.CodeIssuerUnavailable,
}

func newMetrics() *ctrlMetrics {
	// Process-wide: # TYPE and # HELP lines, which writeMetrics fills.
	metrics.ExposeMetadata(true)
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

// writeMetrics writes the controller's own series with their help.
func (m *ctrlMetrics) writeMetrics(w io.Writer) { api.WriteMetrics(w, ctrlHelp, m.set.WritePrometheus) }

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
