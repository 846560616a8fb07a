package issuer

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/crdt"
)

// The access API writes services, policies and identity roles as records
// every router decides on, answers with the record and its hlc, and
// refuses bad names and selectors with 400 bad_request, writing nothing.
func TestAccessAPI(t *testing.T) {
	e := newEnv(t, func(c *config.Controller) { c.Auth.OIDC[0].RolesClaim = "groups" })
	admin := e.client(e.admin)
	put := func(path string, body any) response {
		t.Helper()
		return do(t, admin, "PUT", e.url+path, body)
	}
	ok := func(r response, v any) {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		mustJSON(t, r.body, v)
	}
	var svc api.ServiceInfo
	ok(put("/v1/services/echo", api.ServiceRequest{Address: "127.0.0.1:7000", Roles: []string{"web", "public", "web"}}), &svc)
	if svc.Name != "echo" || !slices.Equal(svc.Roles, []string{"public", "web"}) || svc.HLC == "" || svc.Writer != "c1" {
		t.Fatalf("service answer %+v", svc)
	}
	ok(put("/v1/services/db", api.ServiceRequest{Address: "db.internal:5432"}), &svc)
	var pol api.PolicyInfo
	ok(put("/v1/policies/web-ops", api.PolicyRequest{Identities: []string{"#ops", "@carol"}, Services: []string{"#web"}}), &pol)
	if pol.HLC == "" || !slices.Equal(pol.Identities, []string{"#ops", "@carol"}) {
		t.Fatalf("policy answer %+v", pol)
	}
	var roles api.IdentityRoles
	ok(put("/v1/identities/"+url.PathEscape("team/bob")+"/roles", api.IdentityRolesRequest{Roles: []string{"ops"}}), &roles)
	ok(do(t, admin, "GET", e.url+"/v1/identities/"+url.PathEscape("team/bob")+"/roles", nil), &roles)
	if roles.Identity != "team/bob" || !slices.Equal(roles.Roles, []string{"ops"}) || roles.HLC == "" {
		t.Fatalf("roles %+v", roles)
	}
	var acc api.AccessList
	ok(do(t, admin, "GET", e.url+"/v1/access?identity="+url.QueryEscape("team/bob"), nil), &acc)
	if len(acc.Services) != 1 || acc.Services[0].Service != "echo" || !slices.Equal(acc.Services[0].Policies, []string{"web-ops"}) ||
		acc.Services[0].Address != "127.0.0.1:7000" {
		t.Fatalf("access %+v", acc)
	}

	// A login's roles claim becomes the session's roles.
	tok, err := e.oidc.MintClaims(map[string]any{"iss": e.oidc.URL(), "aud": "certmesh", "sub": "dora",
		"exp": time.Now().Add(time.Hour).Unix(), "groups": []string{"ops", "not a role"}})
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": tok, "csr": csr})
	var sr api.SessionResponse
	if r.status != http.StatusCreated {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	mustJSON(t, r.body, &sr)
	sid, _ := crdt.ParseSessionID(sr.SessionID)
	e.mesh.View(func(s *crdt.Store) {
		if sess, _ := s.Session(sid); sess == nil || !slices.Equal(sess.Roles, []string{"ops"}) {
			t.Fatalf("session roles %+v", sess)
		}
		if v := s.Access("dora", sid, "echo"); v != crdt.AccessGranted {
			t.Fatalf("dora through her claimed role: %v", v)
		}
		if v := s.Access("team/bob", crdt.SessionID{}, "db"); v != crdt.NotGranted {
			t.Fatalf("bob at db: %v", v)
		}
	})
	ok(do(t, admin, "GET", e.url+"/v1/access?identity=dora", nil), &acc)
	if !slices.Equal(acc.SessionRoles, []string{"ops"}) || len(acc.Services) != 1 {
		t.Fatalf("dora's access %+v", acc)
	}

	// Deletes are records too, and win.
	ok(do(t, admin, "DELETE", e.url+"/v1/policies/web-ops", nil), &pol)
	if !pol.Deleted {
		t.Fatalf("delete answer %+v", pol)
	}
	var pl api.PolicyList
	ok(do(t, admin, "GET", e.url+"/v1/policies", nil), &pl)
	if len(pl.Policies) != 0 {
		t.Fatalf("policies after the delete: %+v", pl)
	}
	var sl api.ServiceList
	ok(do(t, admin, "GET", e.url+"/v1/services", nil), &sl)
	if len(sl.Services) != 2 || sl.Services[0].Name != "db" {
		t.Fatalf("services %+v", sl)
	}

	var before int
	e.mesh.View(func(s *crdt.Store) { before = s.Len() })
	for _, bad := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/v1/services/Echo", api.ServiceRequest{Address: "h:1"}},
		{"PUT", "/v1/services/echo", api.ServiceRequest{Address: "no-port"}},
		{"PUT", "/v1/services/echo", api.ServiceRequest{Address: "h:1", Roles: []string{"all"}}},
		{"PUT", "/v1/policies/p", api.PolicyRequest{Identities: []string{"alice"}, Services: []string{"#all"}}},
		{"PUT", "/v1/policies/p", api.PolicyRequest{Identities: []string{"#all"}, Services: []string{"@Bad"}}},
		{"PUT", "/v1/policies/p", api.PolicyRequest{Identities: []string{"#all"}}},
		{"PUT", "/v1/identities/bob/roles", api.IdentityRolesRequest{Roles: []string{"a,b"}}},
		{"GET", "/v1/access", nil},
	} {
		if r := do(t, admin, bad.method, e.url+bad.path, bad.body); r.status != http.StatusBadRequest || r.code() != api.CodeBadRequest {
			t.Errorf("%s %s %+v: %d %s", bad.method, bad.path, bad.body, r.status, r.body)
		}
	}
	e.mesh.View(func(s *crdt.Store) {
		if s.Len() != before {
			t.Errorf("refused writes changed the store: %d records, were %d", s.Len(), before)
		}
	})
	// A client certificate is not an admin's.
	if r := do(t, e.client(e.login("eve").cert), "PUT", e.url+"/v1/services/x", api.ServiceRequest{Address: "h:1"}); r.status != http.StatusForbidden {
		t.Errorf("non-admin write: %d %s", r.status, r.body)
	}
}
