package api

// Routes of the access API (admin certificate; JSON). A service or policy
// name is a DNS label ([a-z0-9-]{1,63}); an identity in a path is escaped
// as one path segment (url.PathEscape). Writes answer 200 with the record
// written and its hlc; a bad name, address, role or selector is 400
// CodeBadRequest.
const (
	// PathServices: GET lists the services (ServiceList).
	PathServices = "/v1/services"
	// PathService: PUT defines or replaces a service (ServiceRequest →
	// ServiceInfo); DELETE removes it (→ ServiceInfo with deleted set).
	PathService = "/v1/services/{name}"
	// PathPolicies: GET lists the policies (PolicyList).
	PathPolicies = "/v1/policies"
	// PathPolicy: PUT defines or replaces a policy (PolicyRequest →
	// PolicyInfo); DELETE removes it (→ PolicyInfo with deleted set).
	PathPolicy = "/v1/policies/{name}"
	// PathIdentityRoles: PUT sets the roles an admin gives an identity
	// (IdentityRolesRequest → IdentityRoles; an empty list clears them);
	// GET reads them.
	PathIdentityRoles = "/v1/identities/{identity}/roles"
	// PathAccess: GET ?identity=ID lists the services the identity may
	// reach now, and through which policies (AccessList).
	PathAccess = "/v1/access"
)

// Selectors of a policy: SelectorAll matches every identity or service, a
// "#" prefix a role, an "@" prefix one identity or service by name.
const (
	SelectorAll    = "#all"
	SelectorRole   = "#"
	SelectorByName = "@"
)

// ServiceRequest is the body of PUT PathService.
type ServiceRequest struct {
	Address string   `json:"address"` // host:port a router dials, plain TCP
	Roles   []string `json:"roles,omitempty"`
}

// ServiceInfo is one service, as written or listed.
type ServiceInfo struct {
	Name    string   `json:"name"`
	Address string   `json:"address,omitempty"`
	Roles   []string `json:"roles"`
	Deleted bool     `json:"deleted,omitempty"`
	HLC     string   `json:"hlc"`
	Writer  string   `json:"writer"` // the controller that wrote the record
}

// ServiceList answers GET PathServices.
type ServiceList struct {
	Services []ServiceInfo `json:"services"`
}

// PolicyRequest is the body of PUT PathPolicy: both lists are selectors,
// and neither may be empty.
type PolicyRequest struct {
	Identities []string `json:"identities"`
	Services   []string `json:"services"`
}

// PolicyInfo is one policy, as written or listed.
type PolicyInfo struct {
	Name       string   `json:"name"`
	Identities []string `json:"identities"`
	Services   []string `json:"services"`
	Deleted    bool     `json:"deleted,omitempty"`
	HLC        string   `json:"hlc"`
	Writer     string   `json:"writer"`
}

// PolicyList answers GET PathPolicies.
type PolicyList struct {
	Policies []PolicyInfo `json:"policies"`
}

// IdentityRolesRequest is the body of PUT PathIdentityRoles.
type IdentityRolesRequest struct {
	Roles []string `json:"roles"`
}

// IdentityRoles answers PUT and GET PathIdentityRoles: the roles an admin
// gave the identity (HLC empty when none was ever set here).
type IdentityRoles struct {
	Identity string   `json:"identity"`
	Roles    []string `json:"roles"`
	HLC      string   `json:"hlc,omitempty"`
}

// AccessList answers GET PathAccess: what the identity may reach now, with
// the roles an admin gave it and those its live sessions claimed at login.
type AccessList struct {
	Identity     string        `json:"identity"`
	Roles        []string      `json:"roles"`
	SessionRoles []string      `json:"session_roles"`
	Services     []AccessGrant `json:"services"`
}

// AccessGrant is one service an identity may reach.
type AccessGrant struct {
	Service  string   `json:"service"`
	Address  string   `json:"address"`
	Policies []string `json:"policies"` // the policies that grant it, sorted
}
