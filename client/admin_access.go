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

// adminCall sends one access API request to the controllers, hedged as
// Revoke is, and returns the first answer. A PUT or DELETE that two
// controllers both apply writes the same value twice: last writer wins.
func adminCall[T any](ctx context.Context, a *Admin, method, path string, in any) (*T, error) {
	out, _, err := hedged(ctx, &a.cfg, "", retryable, func(ctx context.Context, base string) (*T, error) {
		var out T
		return &out, call(ctx, a.hc, method, base, path, in, &out)
	})
	return out, err
}

func withName(pattern, wildcard, name string) string {
	return strings.Replace(pattern, "{"+wildcard+"}", url.PathEscape(name), 1)
}

// PutService defines or replaces a service.
func (a *Admin) PutService(ctx context.Context, name string, req api.ServiceRequest) (*api.ServiceInfo, error) {
	return adminCall[api.ServiceInfo](ctx, a, http.MethodPut, withName(api.PathService, "name", name), req)
}

// DeleteService removes a service.
func (a *Admin) DeleteService(ctx context.Context, name string) (*api.ServiceInfo, error) {
	return adminCall[api.ServiceInfo](ctx, a, http.MethodDelete, withName(api.PathService, "name", name), nil)
}

// Services lists the services.
func (a *Admin) Services(ctx context.Context) (*api.ServiceList, error) {
	return adminCall[api.ServiceList](ctx, a, http.MethodGet, api.PathServices, nil)
}

// PutPolicy defines or replaces a policy.
func (a *Admin) PutPolicy(ctx context.Context, name string, req api.PolicyRequest) (*api.PolicyInfo, error) {
	return adminCall[api.PolicyInfo](ctx, a, http.MethodPut, withName(api.PathPolicy, "name", name), req)
}

// DeletePolicy removes a policy.
func (a *Admin) DeletePolicy(ctx context.Context, name string) (*api.PolicyInfo, error) {
	return adminCall[api.PolicyInfo](ctx, a, http.MethodDelete, withName(api.PathPolicy, "name", name), nil)
}

// Policies lists the policies.
func (a *Admin) Policies(ctx context.Context) (*api.PolicyList, error) {
	return adminCall[api.PolicyList](ctx, a, http.MethodGet, api.PathPolicies, nil)
}

// SetIdentityRoles sets the roles an admin gives identity (none clears
// them).
func (a *Admin) SetIdentityRoles(ctx context.Context, identity string, roles []string) (*api.IdentityRoles, error) {
	if roles == nil {
		roles = []string{}
	}
	return adminCall[api.IdentityRoles](ctx, a, http.MethodPut, withName(api.PathIdentityRoles, "identity", identity), api.IdentityRolesRequest{Roles: roles})
}

// IdentityRoles reads the roles an admin gave identity.
func (a *Admin) IdentityRoles(ctx context.Context, identity string) (*api.IdentityRoles, error) {
	return adminCall[api.IdentityRoles](ctx, a, http.MethodGet, withName(api.PathIdentityRoles, "identity", identity), nil)
}

// AccessOf lists the services identity may reach now.
func (a *Admin) AccessOf(ctx context.Context, identity string) (*api.AccessList, error) {
	return adminCall[api.AccessList](ctx, a, http.MethodGet, api.PathAccess+"?identity="+url.QueryEscape(identity), nil)
}
