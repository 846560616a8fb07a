package router

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/certmesh/certmesh/crdt"
)

// MemberStatus is one mesh member as /v1/status shows it.
type MemberStatus struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Region string `json:"region"`
	State  string `json:"state"`
	// Lag is how many records the member lacked at the last exchange.
	Lag uint64 `json:"lag"`
}

// Status is the /v1/status document (SPEC.md section 3), with the
// router's live connection count added.
type Status struct {
	Node          string            `json:"node"`
	Role          string            `json:"role"`
	Region        string            `json:"region"`
	Members       []MemberStatus    `json:"members"`
	VersionVector map[string]uint64 `json:"version_vector"`
	Records       map[string]int    `json:"records"`
	Digest        string            `json:"digest"`
	Connections   int               `json:"connections"`
	Ready         bool              `json:"ready"`
}

// Status returns the router's status.
func (r *Router) Status() Status {
	st := Status{
		Node:          r.cfg.Name,
		Role:          "router",
		Region:        r.cfg.Region,
		Members:       []MemberStatus{},
		VersionVector: map[string]uint64{},
		Records:       map[string]int{},
		Connections:   r.Active(),
		Ready:         r.Ready(),
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		r.opts.Metrics.WritePrometheus(w)
		for _, write := range r.opts.MetricsWriters {
			write(w)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Status())
	})
	return mux
}
