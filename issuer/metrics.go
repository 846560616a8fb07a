package issuer

import (
	"fmt"
	"io"
	"maps"
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

// ctrlHelp is the help text of every family a controller exports itself:
// its own and those of its token issuers.
var ctrlHelp = func() map[string]api.MetricFamily {
	fams := api.Help(ctrlOwnHelp)
	maps.Copy(fams, api.Help(issuerMetricHelp))
	return fams
}()

var ctrlOwnHelp = map[string]string{
	"certmesh_certs_issued_total":          "Client certificates issued by this controller: logins and rotations.",
	"certmesh_auth_failures_total":         "Logins refused for their token, by error code (token_expired, audience_mismatch, issuer_unavailable, ...).",
	"certmesh_api_requests_total":          "Requests to the controller's HTTPS API, by route and status code.",
	"certmesh_store_commits_total":         "Commits to the durable store (bbolt); concurrent writes share one.",
	"certmesh_store_records_written_total": "Records committed to the durable store, written here (origin=local) or received from peers (origin=peer).",
	"certmesh_store_commit_seconds":        "Duration of a durable store commit, fsync included.",
}

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

// The per-issuer metrics, with their help text. Each is read from the
// verifier's Health at scrape time, labelled with the issuer URL.
const (
	metricIssuerUp           = "certmesh_auth_issuer_up"
	metricIssuerDiscovered   = "certmesh_auth_issuer_discovered"
	metricIssuerMisconfig    = "certmesh_auth_issuer_misconfigured"
	metricIssuerKeyRefreshed = "certmesh_auth_issuer_key_refresh_timestamp_seconds"
	metricIssuerKeys         = "certmesh_auth_issuer_keys"
)

var issuerMetricHelp = map[string]string{
	metricIssuerUp:           "1 when the token issuer is discovered and its latest key fetch succeeded (state ready), else 0",
	metricIssuerDiscovered:   "1 once the OIDC issuer's discovery document and keys have been fetched (always 1 for a JWT signer)",
	metricIssuerMisconfig:    "1 while the OIDC issuer's discovery document contradicts the config (e.g. an issuer string that differs); the controller is not ready",
	metricIssuerKeyRefreshed: "Unix time of the latest successful fetch of the issuer's keys; 0 if never",
	metricIssuerKeys:         "number of the issuer's verification keys cached",
}

// issuerGauges registers the per-issuer gauges of the issuers health
// lists now (the config's, which Reload keeps).
func (m *ctrlMetrics) issuerGauges(initial []auth.Health, health func() []auth.Health) {
	for _, h := range initial {
		iss := h.Issuer
		read := func(f func(auth.Health) float64) func() float64 {
			return func() float64 {
				for _, h := range health() {
					if h.Issuer == iss {
						return f(h)
					}
				}
				return 0
			}
		}
		one := func(b bool) float64 {
			if b {
				return 1
			}
			return 0
		}
		label := fmt.Sprintf(`{issuer=%q}`, iss)
		m.set.NewGauge(metricIssuerUp+label, read(func(h auth.Health) float64 { return one(h.State == auth.StateReady) }))
		m.set.NewGauge(metricIssuerDiscovered+label, read(func(h auth.Health) float64 { return one(h.Discovered) }))
		m.set.NewGauge(metricIssuerMisconfig+label, read(func(h auth.Health) float64 { return one(h.State == auth.StateMisconfigured) }))
		m.set.NewGauge(metricIssuerKeyRefreshed+label, read(func(h auth.Health) float64 {
			if h.LastKeyRefresh.IsZero() {
				return 0
			}
			return float64(h.LastKeyRefresh.Unix())
		}))
		m.set.NewGauge(metricIssuerKeys+label, read(func(h auth.Health) float64 { return float64(h.Keys) }))
	}
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
