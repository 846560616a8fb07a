package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/certmesh/certmesh/api"
)

// The admin calls of the access API: services, policies and the roles an
// admin gives identities (package api, PathServices and after).

// adminCall sends one access API request to the first controller that
// answers.
func (a *Admin) adminCall(ctx context.Context, method, path string, in, out any) error {
	_, err := eachController(&a.cfg, "", nil, func(base string) error {
		return call(ctx, a.hc, method, base, path, in, out)
	})
	return err
}

func withName(pattern, wildcard, name string) string {
	return strings.Replace(pattern, "{"+wildcard+"}", url.PathEscape(name), 1)
}

// PutService defines or replaces a service.
func (a *Admin) PutService(ctx context.Context, name string, req api.ServiceRequest) (*api.ServiceInfo, error) {
	var out api.ServiceInfo
	return &out, a.adminCall(ctx, http.MethodPut, withName(api.PathService, "name", name), req, &out)
}

// DeleteService removes a service.
func (a *Admin) DeleteService(ctx context.Context, name string) (*api.ServiceInfo, error) {
	var out api.ServiceInfo
	return &out, a.adminCall(ctx, http.MethodDelete, withName(api.PathService, "name", name), nil, &out)
}

// Services lists the services.
func (a *Admin) Services(ctx context.Context) (*api.ServiceList, error) {
	var out api.ServiceList
	return &out, a.adminCall(ctx, http.MethodGet, api.PathServices, nil, &out)
}

// PutPolicy defines or replaces a policy.
func (a *Admin) PutPolicy(ctx context.Context, name string, req api.PolicyRequest) (*api.PolicyInfo, error) {
	var out api.PolicyInfo
	return &out, a.adminCall(ctx, http.MethodPut, withName(api.PathPolicy, "name", name), req, &out)
}

// DeletePolicy removes a policy.
func (a *Admin) DeletePolicy(ctx context.Context, name string) (*api.PolicyInfo, error) {
	var out api.PolicyInfo
	return &out, a.adminCall(ctx, http.MethodDelete, withName(api.PathPolicy, "name", name), nil, &out)
}

// Policies lists the policies.
func (a *Admin) Policies(ctx context.Context) (*api.PolicyList, error) {
	var out api.PolicyList
	return &out, a.adminCall(ctx, http.MethodGet, api.PathPolicies, nil, &out)
}

// SetIdentityRoles sets the roles an admin gives identity (none clears
// them).
func (a *Admin) SetIdentityRoles(ctx context.Context, identity string, roles []string) (*api.IdentityRoles, error) {
	if roles == nil {
		roles = []string{}
	}
	var out api.IdentityRoles
	return &out, a.adminCall(ctx, http.MethodPut, withName(api.PathIdentityRoles, "identity", identity), api.IdentityRolesRequest{Roles: roles}, &out)
}

// IdentityRoles reads the roles an admin gave identity.
func (a *Admin) IdentityRoles(ctx context.Context, identity string) (*api.IdentityRoles, error) {
	var out api.IdentityRoles
	return &out, a.adminCall(ctx, http.MethodGet, withName(api.PathIdentityRoles, "identity", identity), nil, &out)
}

// AccessOf lists the services identity may reach now.
func (a *Admin) AccessOf(ctx context.Context, identity string) (*api.AccessList, error) {
	var out api.AccessList
	return &out, a.adminCall(ctx, http.MethodGet, api.PathAccess+"?identity="+url.QueryEscape(identity), nil, &out)
}
