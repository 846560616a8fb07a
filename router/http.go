package router

import (
	"fmt"
	"io"
	"net/http"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
)

// Status returns the router's status: the /v1/status document (package api), with the router's live connection count and readiness.
func (r *Router) Status() api.RouterStatus {
	st := api.RouterStatus{
		Status: api.Status{
			Node:          r.cfg.Name,
			Role:          "router",
			Region:        r.cfg.Region,
			Members:       []api.MemberStatus{},
			VersionVector: map[string]uint64{},
			Records:       map[string]int{},
		},
		Connections: r.Active(),
		Ready:       r.Ready(),
	}
	if r.opts.Members != nil {
		st.Members = append(st.Members, r.opts.Members()...)
	}
	r.mesh.View(func(s *crdt.Store) {
		for a, seq := range s.VersionVector() {
			st.VersionVector[a.String()] = seq
		}
		for k, n := range s.Counts() {
			st.Records[k.String()] = n
		}
		st.Digest = fmt.Sprintf("%016x", s.Digest())
	})
	return st
}

// HTTPHandler serves /metrics, /healthz, /readyz and /v1/status.
func (r *Router) HTTPHandler() http.Handler {
	return api.Operator{
		Ready: r.Readiness,
		Metrics: func(w io.Writer) {
			api.WriteMetrics(w, routerHelp, r.opts.Metrics.WritePrometheus)
			for _, write := range r.opts.MetricsWriters {
				write(w)
			}
		},
		Status: func() any { return r.Status() },
	}.Handler()
}
