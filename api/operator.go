package api

import (
	"encoding/json"
	"io"
	"net/http"
)

// Operator is what a node's operator endpoints report: /healthz, /readyz,
// /metrics and /v1/status, served alike by controllers and routers.
type Operator struct {
	// Healthy returns why the node cannot serve (503 on /healthz), or nil.
	// Nil: always healthy.
	Healthy func() error
	// Ready reports whether the node can do its job now (/readyz).
	Ready func() bool
	// Metrics writes the Prometheus text exposition (/metrics).
	Metrics func(io.Writer)
	// Status is the /v1/status document (Status or RouterStatus).
	Status func() any
}

// Handler serves op's endpoints.
func (op Operator) Handler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		if op.Healthy != nil {
			if err := op.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if !op.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET "+PathMetrics, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		op.Metrics(w)
	})
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(op.Status()) // a write error means the client left
	})
	return mux
}
