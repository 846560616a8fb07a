package issuer

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/auth/devoidc"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/testutil"
)

// flakyIssuer is a development OIDC issuer whose server can be taken down
// (connections refused) and brought back on the same address.
type flakyIssuer struct {
	*devoidc.Issuer
	addr string
	srv  atomic.Pointer[http.Server]
}

func startFlakyIssuer(t *testing.T) *flakyIssuer {
	t.Helper()
	addr := testutil.FreeAddr(t)
	iss, err := devoidc.New(devoidc.Config{Issuer: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyIssuer{Issuer: iss, addr: addr}
	f.up(t)
	t.Cleanup(f.down)
	return f
}

func (f *flakyIssuer) up(t *testing.T) {
	t.Helper()
	var l net.Listener
	testutil.Eventually(t, 5*time.Second, "the issuer's address to be free again", func() bool {
		var err error
		l, err = net.Listen("tcp", f.addr)
		return err == nil
	})
	srv := &http.Server{Handler: f.Issuer, ReadHeaderTimeout: 5 * time.Second}
	f.srv.Store(srv)
	go srv.Serve(l)
}

func (f *flakyIssuer) down() {
	if srv := f.srv.Swap(nil); srv != nil {
		srv.Close()
	}
}

func (f *flakyIssuer) token(t *testing.T, sub string) string {
	t.Helper()
	tok, err := f.Mint(sub, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func trustIssuer(url string) envOption {
	return func(c *config.Controller) {
		c.Auth.OIDC = []auth.OIDCConfig{{Issuer: url, Audience: "certmesh"}}
	}
}

// A reload (SIGHUP) while the provider is down keeps the verifier that
// works, with its cached keys: tokens that logged in before still do, and
// the new verifier takes over once the provider is back.
func TestReloadDuringProviderOutageKeepsTheWorkingVerifier(t *testing.T) {
	idp := startFlakyIssuer(t)
	e := newEnv(t, trustIssuer(idp.URL()))
	tok := idp.token(t, "alice")
	login := func() response {
		_, csr := newCSR(t)
		return do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": tok, "csr": csr})
	}
	if r := login(); r.status != http.StatusCreated {
		t.Fatalf("login before the outage: %d %s", r.status, r.body)
	}
	before := e.c.tokens.Load()

	idp.down()
	if err := e.c.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if r := login(); r.status != http.StatusCreated {
		t.Fatalf("login after a reload during the outage: %d %s, want 201 from the cached keys", r.status, r.body)
	}
	if e.c.tokens.Load() != before {
		t.Fatal("the verifier was replaced by one that has not discovered its issuer")
	}

	idp.up(t)
	testutil.Eventually(t, 10*time.Second, "the reloaded verifier to take over", func() bool { return e.c.tokens.Load() != before })
	if r := login(); r.status != http.StatusCreated {
		t.Fatalf("login after the provider came back: %d %s", r.status, r.body)
	}
}

// An OIDC issuer whose discovery document names another issuer string (a
// trailing slash) keeps the controller unready, and /v1/status and the
// metrics say which issuer and why; a healthy issuer shows as ready.
func TestIssuerHealthInStatusMetricsAndReadiness(t *testing.T) {
	idp := startFlakyIssuer(t)
	e := newEnv(t, trustIssuer(idp.URL()))
	_, csr := newCSR(t)
	if r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": idp.token(t, "alice"), "csr": csr}); r.status != http.StatusCreated {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	mon := "http://" + e.c.MetricsAddr()

	var st api.Status
	mustJSON(t, do(t, http.DefaultClient, "GET", mon+"/v1/status", nil).body, &st)
	if len(st.Issuers) != 1 || st.Issuers[0].State != auth.StateReady || !st.Issuers[0].Discovered || st.Issuers[0].LastKeyRefresh == "" || st.Issuers[0].Keys != 1 {
		t.Errorf("status issuers = %+v, want one ready, discovered, 1 key, with its last key refresh", st.Issuers)
	}
	m := string(do(t, http.DefaultClient, "GET", mon+"/metrics", nil).body)
	for _, want := range []string{
		`certmesh_auth_issuer_up{issuer="` + idp.URL() + `"} 1`,
		`certmesh_auth_issuer_discovered{issuer="` + idp.URL() + `"} 1`,
		`certmesh_auth_issuer_misconfigured{issuer="` + idp.URL() + `"} 0`,
		`certmesh_auth_issuer_keys{issuer="` + idp.URL() + `"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for name := range issuerMetricHelp {
		if !strings.Contains(m, name+"{") {
			t.Errorf("metric %s has help text but is not exposed", name)
		}
	}
	if r := do(t, http.DefaultClient, "GET", mon+"/readyz", nil); r.status != http.StatusOK {
		t.Errorf("readyz with a healthy issuer: %d", r.status)
	}

	// The same provider, configured with a trailing slash.
	cfg := baseConfig(t, newPKI(t), "c1")
	trustIssuer(idp.URL() + "/")(&cfg)
	c, err := Open(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(newFakeMesh(c.Store())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	testutil.Eventually(t, 10*time.Second, "the mismatch to be detected", func() bool { return c.authMisconfigured() != nil })
	if c.Ready() {
		t.Error("controller ready while its only OIDC issuer is misconfigured")
	}
	r := do(t, http.DefaultClient, "GET", "http://"+c.MetricsAddr()+"/readyz", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz with a misconfigured issuer: %d, want 503", r.status)
	}
	var st2 api.Status
	if err := json.Unmarshal(do(t, http.DefaultClient, "GET", "http://"+c.MetricsAddr()+"/v1/status", nil).body, &st2); err != nil {
		t.Fatal(err)
	}
	if len(st2.Issuers) != 1 || st2.Issuers[0].State != auth.StateMisconfigured ||
		!strings.Contains(st2.Issuers[0].LastError, `"`+idp.URL()+`/"`) || !strings.Contains(st2.Issuers[0].LastError, `"`+idp.URL()+`"`) {
		t.Errorf("status issuers = %+v, want misconfigured naming both issuer strings", st2.Issuers)
	}
	m = string(do(t, http.DefaultClient, "GET", "http://"+c.MetricsAddr()+"/metrics", nil).body)
	if want := `certmesh_auth_issuer_misconfigured{issuer="` + idp.URL() + `/"} 1`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %q", want)
	}
}
