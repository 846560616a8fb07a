package api

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOperatorEndpoints(t *testing.T) {
	var failed error
	notReady := errors.New("no exchange with a controller yet")
	h := Operator{
		Healthy: func() error { return failed },
		Ready:   func() error { return notReady },
		Metrics: func(w io.Writer) { io.WriteString(w, "certmesh_up 1\n") },
		Status:  func() any { return Status{Node: "c1"} },
	}.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get(PathHealthz); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
	failed = errors.New("durable store failed: disk full")
	if rec := get(PathHealthz); rec.Code != 503 || !strings.Contains(rec.Body.String(), "disk full") {
		t.Errorf("healthz of a failed node: %d %q", rec.Code, rec.Body)
	}
	if rec := get(PathReadyz); rec.Code != 503 || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Body.String() != `{"error":"not ready: no exchange with a controller yet","code":"unavailable"}`+"\n" {
		t.Errorf("readyz of a node not ready: %d %q", rec.Code, rec.Body)
	}
	notReady = nil
	if rec := get(PathReadyz); rec.Code != 200 || rec.Body.String() != "ready\n" {
		t.Errorf("readyz: %d %q", rec.Code, rec.Body)
	}
	if rec := get(PathMetrics); rec.Body.String() != "certmesh_up 1\n" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("metrics: %q %q", rec.Header().Get("Content-Type"), rec.Body)
	}
	rec := get(PathStatus)
	if rec.Header().Get("Cache-Control") != "no-store" || !strings.Contains(rec.Body.String(), `"node":"c1"`) {
		t.Errorf("status: %q %q", rec.Header().Get("Cache-Control"), rec.Body)
	}
}
