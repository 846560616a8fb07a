package issuer

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A controller that refuses writes for its clock (503 clock_skew) cannot
// do its job: /readyz says so, so that a load balancer sends logins to
// another controller, and says it again once the clock is back.
func TestNotReadyWhileTheClockRefusesWrites(t *testing.T) {
	e := newEnv(t)
	readyz := "http://" + e.c.MetricsAddr() + "/readyz"
	if r := do(t, http.DefaultClient, "GET", readyz, nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	e.mesh.setOffset(6 * time.Second) // more than half the 10s max offset
	r := do(t, http.DefaultClient, "GET", readyz, nil)
	if r.status != 503 || r.code() != "unavailable" || !strings.Contains(string(r.body), "off from the mesh") {
		t.Errorf("readyz with the clock 6s off: %d %s", r.status, r.body)
	}
	e.mesh.setOffset(-4 * time.Second)
	if r := do(t, http.DefaultClient, "GET", readyz, nil); r.status != 200 {
		t.Errorf("readyz with the clock back within the limit: %d %s", r.status, r.body)
	}
}
