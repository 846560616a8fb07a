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
	// Ready says why the node cannot do its job correctly now (503 on
	// /readyz, with the reason as an ErrorBody), or nil when it can.
	Ready func() error
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
		if err := op.Ready(); err != nil {
			// A load balancer needs only the status; a person reading
			// it needs the reason.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(ErrorBody{Error: "not ready: " + err.Error(), Code: CodeUnavailable})
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
