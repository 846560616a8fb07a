package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/internal/testutil"
)

// A node whose client, API or metrics port is taken fails before it joins
// the mesh: exit 2, one line naming the setting, and no member of the
// running mesh ever lists it.
func TestNodeWithATakenPortExits2BeforeJoining(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := newCluster(t)
	c.run("controller", "c1")
	for _, tc := range []struct{ mode, name, setting, addr string }{
		{"router", "r1", "listen", c.router},
		{"router", "r1", "metrics.listen", c.mons["r1"]},
		{"controller", "c2", "api.listen", strings.TrimPrefix(c.apis["c2"], "https://")},
		{"controller", "c2", "metrics.listen", c.mons["c2"]},
	} {
		t.Run(tc.name+" "+tc.setting, func(t *testing.T) {
			taken, err := net.Listen("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			p := start(t, tc.mode, "--config", filepath.Join(c.base, "etc", tc.name+".yaml"))
			if code := p.wait(t, 20*time.Second); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			out := p.out.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "certmesh: ") ||
				!strings.Contains(out, " "+tc.setting+": ") || !strings.Contains(out, "address already in use") {
				t.Errorf("output is not one line naming %s and the taken address:\n%s", tc.setting, out)
			}
		})
	}
	var st api.Status
	getJSON(t, "http://"+c.mons["c1"]+api.PathStatus, http.StatusOK, &st)
	for _, m := range st.Members {
		if m.Name == "r1" || m.Name == "c2" {
			t.Errorf("c1 saw a node that could not listen: %+v", m)
		}
	}
}

// /readyz of a router is 503 with the reason while it has nothing to
// admit from (no snapshot, no controller reached), then 200 once it has
// exchanged with a controller.
func TestRouterIsReadyOnlyWithState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := newCluster(t)
	start(t, "router", "--config", filepath.Join(c.base, "etc", "r1.yaml"))
	readyz := "http://" + c.mons["r1"] + api.PathReadyz
	hc := &http.Client{Timeout: 2 * time.Second}
	get := func() (int, string) {
		resp, err := hc.Get(readyz)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.Eventually(t, 10*time.Second, "the router's metrics listener", func() bool { code, _ := get(); return code != 0 })
	// Until well past mesh.join_timeout (300ms), when a lone controller
	// would be ready, the router, with no seed answering, is not.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		code, b := get()
		var body api.ErrorBody
		if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(b), &body) != nil ||
			body.Code != api.CodeUnavailable || !strings.Contains(body.Error, "no snapshot") {
			t.Fatalf("readyz of a router without state: %d %s", code, b)
		}
	}
	c.run("controller", "c1")
	testutil.Eventually(t, 20*time.Second, "the router ready once a controller is up", func() bool {
		code, _ := get()
		return code == http.StatusOK
	})
}

// getJSON GETs url, checks the status and decodes the body into v.
func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, status)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, b)
	}
}
