package issuer

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/crdt"
)

// The access API: services, policies and identity roles are records this
// controller signs and publishes like any other; every router decides on
// them (crdt.Store.Access).

func (c *Controller) accessRoutes(route func(string, map[string]handlerFunc)) {
	route(api.PathServices, map[string]handlerFunc{http.MethodGet: c.listServices})
	route(api.PathService, map[string]handlerFunc{http.MethodPut: c.putService, http.MethodDelete: c.deleteService})
	route(api.PathPolicies, map[string]handlerFunc{http.MethodGet: c.listPolicies})
	route(api.PathPolicy, map[string]handlerFunc{http.MethodPut: c.putPolicy, http.MethodDelete: c.deletePolicy})
	route(api.PathIdentityRoles, map[string]handlerFunc{http.MethodPut: c.putIdentityRoles, http.MethodGet: c.getIdentityRoles})
	route(api.PathAccess, map[string]handlerFunc{http.MethodGet: c.access})
}

// claimedRoles are the roles a login's token claimed that can name a role;
// the others are logged and left out, never refusing the login.
func (c *Controller) claimedRoles(id auth.Identity) []string {
	var roles []string
	for _, r := range id.Roles {
		if err := crdt.ValidRole(r); err != nil {
			c.log.Info("login: claimed role left out", "identity", id.ID, "err", err)
			continue
		}
		roles = append(roles, r)
	}
	roles = crdt.NormalizeList(roles)
	if len(roles) > crdt.MaxRoles {
		c.log.Info("login: claimed roles cut", "identity", id.ID, "claimed", len(roles), "kept", crdt.MaxRoles)
		roles = roles[:crdt.MaxRoles]
	}
	if len(roles) == 0 {
		return nil
	}
	return roles
}

func badRequest(format string, args ...any) *apiError {
	return fail(http.StatusBadRequest, api.CodeBadRequest, format, args...)
}

// checkAddress checks a service's address: host:port, a port number.
func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %.80q: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("address %.80q: want host:port with a port from 1 to 65535", addr)
	}
	if len(addr) > crdt.MaxAddressLen {
		return fmt.Errorf("address longer than %d bytes", crdt.MaxAddressLen)
	}
	return nil
}

func checkRoles(roles []string) ([]string, error) {
	for _, r := range roles {
		if err := crdt.ValidRole(r); err != nil {
			return nil, err
		}
	}
	roles = crdt.NormalizeList(roles)
	if len(roles) > crdt.MaxRoles {
		return nil, fmt.Errorf("%d roles, at most %d", len(roles), crdt.MaxRoles)
	}
	return roles, nil
}

func checkSelectors(what string, sels []string, services bool) ([]string, error) {
	if len(sels) == 0 {
		return nil, fmt.Errorf("%s: at least one selector (#all, #role or @name)", what)
	}
	for _, s := range sels {
		if _, _, err := crdt.ParseSelector(s, services); err != nil {
			return nil, fmt.Errorf("%s: %v", what, err)
		}
	}
	sels = crdt.NormalizeList(sels)
	if len(sels) > crdt.MaxSelectors {
		return nil, fmt.Errorf("%s: %d selectors, at most %d", what, len(sels), crdt.MaxSelectors)
	}
	return sels, nil
}

// writeAccess writes one access record for admin and logs it.
func (c *Controller) writeAccess(r *http.Request, admin string, rec crdt.Record, key string) *apiError {
	if e := c.checkClock(); e != nil {
		return e
	}
	if e := c.checkRevoked(); e != nil {
		return e
	}
	if err := c.w.write([]crdt.Record{rec}, nil); err != nil {
		return writeFailed(err)
	}
	c.log.Info("audit", "op", "access", "remote", clientIP(r), "admin", admin, "kind", rec.Kind().String(), "key", key,
		"dots", dots(rec), "hlc", rec.Head().HLC.String())
	return nil
}

func serviceInfo(r *crdt.ServiceRecord) api.ServiceInfo {
	return api.ServiceInfo{Name: r.Name, Address: r.Address, Roles: orEmpty(r.Roles), Deleted: r.Deleted,
		HLC: r.HLC.String(), Writer: r.Author.Name}
}

func policyInfo(r *crdt.PolicyRecord) api.PolicyInfo {
	return api.PolicyInfo{Name: r.Name, Identities: orEmpty(r.Identities), Services: orEmpty(r.Services),
		Deleted: r.Deleted, HLC: r.HLC.String(), Writer: r.Author.Name}
}

func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// writeNamed answers a PUT or DELETE of the service or policy named in the
// path: build makes the record from the name and the body, or refuses
// them (400), and answer is the body of the 200 once it is written.
func (c *Controller) writeNamed(w http.ResponseWriter, r *http.Request, what string,
	build func(name string) (crdt.Record, *apiError), answer func(crdt.Record) any) *apiError {
	admin, e := c.admin(r)
	if e != nil {
		return e
	}
	name := r.PathValue("name")
	if err := crdt.ValidServiceName(name); err != nil {
		return badRequest("%s name: %v", what, err)
	}
	rec, e := build(name)
	if e != nil {
		return e
	}
	if e := c.writeAccess(r, admin, rec, name); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, answer(rec))
	return nil
}

func serviceAnswer(rec crdt.Record) any { return serviceInfo(rec.(*crdt.ServiceRecord)) }
func policyAnswer(rec crdt.Record) any  { return policyInfo(rec.(*crdt.PolicyRecord)) }

// PUT /v1/services/{name}
func (c *Controller) putService(w http.ResponseWriter, r *http.Request) *apiError {
	return c.writeNamed(w, r, "service", func(name string) (crdt.Record, *apiError) {
		var req api.ServiceRequest
		if e := decodeJSON(r, &req); e != nil {
			return nil, e
		}
		if err := checkAddress(req.Address); err != nil {
			return nil, badRequest("%v", err)
		}
		roles, err := checkRoles(req.Roles)
		if err != nil {
			return nil, badRequest("roles: %v", err)
		}
		return &crdt.ServiceRecord{Name: name, Address: req.Address, Roles: roles}, nil
	}, serviceAnswer)
}

// DELETE /v1/services/{name}
func (c *Controller) deleteService(w http.ResponseWriter, r *http.Request) *apiError {
	return c.writeNamed(w, r, "service", func(name string) (crdt.Record, *apiError) {
		return &crdt.ServiceRecord{Name: name, Deleted: true}, nil
	}, serviceAnswer)
}

// GET /v1/services
func (c *Controller) listServices(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	out := api.ServiceList{Services: []api.ServiceInfo{}}
	c.mesh.View(func(s *crdt.Store) {
		for _, svc := range s.Services() {
			out.Services = append(out.Services, serviceInfo(svc))
		}
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// PUT /v1/policies/{name}
func (c *Controller) putPolicy(w http.ResponseWriter, r *http.Request) *apiError {
	return c.writeNamed(w, r, "policy", func(name string) (crdt.Record, *apiError) {
		var req api.PolicyRequest
		if e := decodeJSON(r, &req); e != nil {
			return nil, e
		}
		ids, err := checkSelectors("identities", req.Identities, false)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		svcs, err := checkSelectors("services", req.Services, true)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		return &crdt.PolicyRecord{Name: name, Identities: ids, Services: svcs}, nil
	}, policyAnswer)
}

// DELETE /v1/policies/{name}
func (c *Controller) deletePolicy(w http.ResponseWriter, r *http.Request) *apiError {
	return c.writeNamed(w, r, "policy", func(name string) (crdt.Record, *apiError) {
		return &crdt.PolicyRecord{Name: name, Deleted: true}, nil
	}, policyAnswer)
}

// GET /v1/policies
func (c *Controller) listPolicies(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	out := api.PolicyList{Policies: []api.PolicyInfo{}}
	c.mesh.View(func(s *crdt.Store) {
		for _, p := range s.Policies() {
			out.Policies = append(out.Policies, policyInfo(p))
		}
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

func identityParam(id string) (string, *apiError) {
	if err := crdt.ValidIdentity(id); err != nil || !utf8.ValidString(id) {
		return "", badRequest("identity is not UTF-8 of 1 to %d bytes", crdt.MaxIdentityLen)
	}
	return id, nil
}

// PUT /v1/identities/{identity}/roles
func (c *Controller) putIdentityRoles(w http.ResponseWriter, r *http.Request) *apiError {
	admin, e := c.admin(r)
	if e != nil {
		return e
	}
	id, e := identityParam(r.PathValue("identity"))
	if e != nil {
		return e
	}
	var req api.IdentityRolesRequest
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	roles, err := checkRoles(req.Roles)
	if err != nil {
		return badRequest("roles: %v", err)
	}
	if len(roles) == 0 {
		roles = nil
	}
	rec := &crdt.IdentityRolesRecord{Identity: id, Roles: roles}
	if e := c.writeAccess(r, admin, rec, id); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, api.IdentityRoles{Identity: id, Roles: orEmpty(roles), HLC: rec.HLC.String()})
	return nil
}

// GET /v1/identities/{identity}/roles
func (c *Controller) getIdentityRoles(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	id, e := identityParam(r.PathValue("identity"))
	if e != nil {
		return e
	}
	out := api.IdentityRoles{Identity: id, Roles: []string{}}
	c.mesh.View(func(s *crdt.Store) {
		roles, rec := s.IdentityRoles(id)
		out.Roles = orEmpty(slices.Clone(roles))
		if rec != nil {
			out.HLC = rec.HLC.String()
		}
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /v1/access?identity=ID: the services the identity may reach now,
// holding the roles an admin gave it and those its live sessions known
// here claimed at login. It scans the sessions, as GET /v1/sessions does.
func (c *Controller) access(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	id, e := identityParam(r.URL.Query().Get("identity"))
	if e != nil {
		return e
	}
	now := crdt.MillisOf(c.now())
	out := api.AccessList{Identity: id, Services: []api.AccessGrant{}}
	c.mesh.View(func(s *crdt.Store) {
		given, _ := s.IdentityRoles(id)
		out.Roles = orEmpty(slices.Clone(given))
		var claimed []string
		s.Range(func(rec crdt.Record) bool {
			if sess, ok := rec.(*crdt.SessionRecord); ok && sess.Identity == id && now < sess.Expires && len(sess.Roles) > 0 {
				if cur, ok := s.Session(sess.ID); ok && cur == sess {
					claimed = append(claimed, sess.Roles...)
				}
			}
			return true
		})
		out.SessionRoles = orEmpty(crdt.NormalizeList(claimed))
		for _, g := range s.AccessOf(id, out.SessionRoles) {
			svc, _ := s.Service(g.Service)
			out.Services = append(out.Services, api.AccessGrant{Service: g.Service, Address: svc.Address, Policies: g.Policies})
		}
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}
