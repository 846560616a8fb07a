package issuer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/issuer/clockgate"
)

// A holder of the gossip key joins the mesh as a member that never proves
// who it is (issue 13, item 2). Clock samples count only from proven peers,
// so a controller that sees it alive and has heard no proven peer cannot
// compare its clock; it used to refuse every write (503 clock_skew) for as
// long as that lasted. Now it refuses for at most clockgate.FirstSampleWait
// after it starts, and then writes, as one alone does.
//
//	go test ./issuer/ -run TestSilentMemberStopsWritesOnlyBriefly -v
func TestSilentMemberStopsWritesOnlyBriefly(t *testing.T) {
	var ahead atomic.Int64 // how far the controller's clock has moved on since it started
	pkiDir := newPKI(t)
	oidc, err := devoidc.Start("127.0.0.1:0", devoidc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oidc.Close() })
	cfg := baseConfig(t, pkiDir, "c1")
	cfg.Auth.OIDC = []auth.OIDCConfig{{Issuer: oidc.URL(), Audience: "certmesh"}}
	c, err := Open(cfg, Options{Logger: testLogger(t), Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	mesh := newFakeMesh(c.Store())
	mesh.unheard(Member{Name: "c1", Role: "controller", Region: "default", State: "alive"},
		Member{Name: "silent", Role: "controller", Region: "default", State: "alive"})
	if err := c.Start(mesh); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	h := c.apiHandler()
	probe := func() (int, api.ErrorBody) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "https://controller/v1/sessions", bytes.NewReader([]byte(`{"token":"x","csr":"y"}`)))
		req.Header.Set("Content-Type", "application/json")
		req.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return rec.Code, eb
	}
	if status, eb := probe(); status != http.StatusServiceUnavailable || eb.Code != api.CodeClockSkew {
		t.Errorf("just started, a live peer unheard: %d %s, want 503 clock_skew", status, eb.Code)
	}
	ahead.Store(int64(clockgate.FirstSampleWait + time.Second))
	if status, eb := probe(); eb.Code == api.CodeClockSkew {
		t.Errorf("%v after it started, the silent member still stops writes: %d %s %q", clockgate.FirstSampleWait, status, eb.Code, eb.Error)
	}
	// A clock sample that shows this controller off still refuses writes.
	mesh.setOffset(time.Hour)
	if status, eb := probe(); status != http.StatusServiceUnavailable || eb.Code != api.CodeClockSkew {
		t.Errorf("an hour off: %d %s, want 503 clock_skew", status, eb.Code)
	}
}
