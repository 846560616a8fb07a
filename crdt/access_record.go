package crdt

import (
	"fmt"
	"slices"
	"strings"
)

// Access records say what an admitted client may reach: the services a
// router proxies to, the policies that grant identities the right to reach
// them, and the roles an admin gave an identity. Each is a last-writer-wins
// register per name, ordered by (HLC, author, seq); a delete is a record
// too (a tombstone), which wins over older writes and is collected after
// TombstoneRetention.

// Limits on access records.
const (
	MaxServiceNameLen = 63  // a DNS label
	MaxRoleLen        = 128 // a role: an admin's word or a token claim's value
	MaxRoles          = 64  // roles of one service, identity or session
	MaxSelectors      = 256 // selectors on each side of a policy
	MaxAddressLen     = 261 // host:port, the host a DNS name
)

// ServiceRecord defines, or when Deleted removes, the service Name.
type ServiceRecord struct {
	Header
	Name    string
	Address string   // host:port a router dials, plain TCP; empty when Deleted
	Roles   []string // sorted, unique
	Deleted bool
}

// PolicyRecord defines, or when Deleted removes, the policy Name: its
// Identities may reach its Services. Both are lists of selectors (see
// ParseSelector), sorted and unique.
type PolicyRecord struct {
	Header
	Name       string
	Identities []string
	Services   []string
	Deleted    bool
}

// IdentityRolesRecord sets the roles an admin gave Identity. An empty list
// clears them and is a tombstone, collected like a delete.
type IdentityRolesRecord struct {
	Header
	Identity string
	Roles    []string // sorted, unique
}

func (r *ServiceRecord) Head() *Header       { return &r.Header }
func (r *PolicyRecord) Head() *Header        { return &r.Header }
func (r *IdentityRolesRecord) Head() *Header { return &r.Header }

func (*ServiceRecord) Kind() Kind       { return KindService }
func (*PolicyRecord) Kind() Kind        { return KindPolicy }
func (*IdentityRolesRecord) Kind() Kind { return KindIdentityRoles }

// An access record is current until a newer one for its name replaces it:
// its expiry is "never", and Retention collects it once superseded (or, a
// tombstone, after TombstoneRetention).
func (r *ServiceRecord) expiry() Millis       { return maxMillis }
func (r *PolicyRecord) expiry() Millis        { return maxMillis }
func (r *IdentityRolesRecord) expiry() Millis { return maxMillis }

// accessRecord is what the three kinds share: a name they are the register
// of, and whether they are a tombstone.
type accessRecord interface {
	Record
	accessName() string
	tombstone() bool
}

func (r *ServiceRecord) accessName() string       { return r.Name }
func (r *PolicyRecord) accessName() string        { return r.Name }
func (r *IdentityRolesRecord) accessName() string { return r.Identity }

func (r *ServiceRecord) tombstone() bool       { return r.Deleted }
func (r *PolicyRecord) tombstone() bool        { return r.Deleted }
func (r *IdentityRolesRecord) tombstone() bool { return len(r.Roles) == 0 }

// SelectAll is the selector that matches every identity or every service.
const SelectAll = "#all"

// ValidServiceName reports whether name is a service name: a DNS label of
// lower-case letters, digits and hyphens, 1 to 63 bytes.
func ValidServiceName(name string) error {
	if name == "" || len(name) > MaxServiceNameLen {
		return fmt.Errorf("service name %q: want 1 to %d characters", name, MaxServiceNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("service name %q: want only a-z, 0-9 and -", name)
		}
	}
	return nil
}

// ValidRole reports whether role may name a role: 1 to MaxRoleLen bytes,
// printable, no space or comma (the CLI separates roles by commas), and not
// "all", which SelectAll means.
func ValidRole(role string) error {
	if role == "" || len(role) > MaxRoleLen {
		return fmt.Errorf("role %q: want 1 to %d characters", role, MaxRoleLen)
	}
	if role == "all" {
		return fmt.Errorf("role %q is reserved: #all selects everyone", role)
	}
	for i := 0; i < len(role); i++ {
		if c := role[i]; c <= ' ' || c == ',' || c == 0x7f {
			return fmt.Errorf("role %q: no spaces, commas or control characters", role)
		}
	}
	return nil
}

// ValidIdentity reports whether id may name an identity in a record.
func ValidIdentity(id string) error {
	if id == "" || len(id) > MaxIdentityLen {
		return fmt.Errorf("identity of %d bytes: want 1 to %d", len(id), MaxIdentityLen)
	}
	return nil
}

// SelectorKind tells what a selector matches.
type SelectorKind uint8

const (
	SelectEveryone SelectorKind = iota + 1 // #all
	SelectRole                             // #role
	SelectName                             // @name
)

// ParseSelector parses a policy selector: "#all", "#role" (every identity
// or service with that role) or "@name" (one identity, or one service when
// services is set, by name). It returns the kind and the role or name.
func ParseSelector(sel string, services bool) (SelectorKind, string, error) {
	switch {
	case sel == SelectAll:
		return SelectEveryone, "", nil
	case strings.HasPrefix(sel, "#"):
		if err := ValidRole(sel[1:]); err != nil {
			return 0, "", fmt.Errorf("selector %q: %w", sel, err)
		}
		return SelectRole, sel[1:], nil
	case strings.HasPrefix(sel, "@"):
		var err error
		if services {
			err = ValidServiceName(sel[1:])
		} else {
			err = ValidIdentity(sel[1:])
		}
		if err != nil {
			return 0, "", fmt.Errorf("selector %q: %w", sel, err)
		}
		return SelectName, sel[1:], nil
	}
	return 0, "", fmt.Errorf("selector %q: want #all, #role or @name", sel)
}

// NormalizeList sorts a list of roles or selectors and drops duplicates,
// the form a record carries, so that equal lists are equal bytes.
func NormalizeList(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}

// sortedUnique reports whether l is in the form NormalizeList gives.
func sortedUnique(l []string) bool {
	for i := 1; i < len(l); i++ {
		if l[i-1] >= l[i] {
			return false
		}
	}
	return true
}

func validateRoles(what string, roles []string) error {
	if len(roles) > MaxRoles {
		return invalid("%s has %d roles, at most %d", what, len(roles), MaxRoles)
	}
	if !sortedUnique(roles) {
		return invalid("%s roles not sorted and unique", what)
	}
	for _, r := range roles {
		if err := ValidRole(r); err != nil {
			return invalid("%s: %v", what, err)
		}
	}
	return nil
}

func validateSelectors(what string, sels []string, services bool) error {
	if len(sels) > MaxSelectors {
		return invalid("%s has %d selectors, at most %d", what, len(sels), MaxSelectors)
	}
	if !sortedUnique(sels) {
		return invalid("%s selectors not sorted and unique", what)
	}
	for _, s := range sels {
		if _, _, err := ParseSelector(s, services); err != nil {
			return invalid("%s: %v", what, err)
		}
	}
	return nil
}

func (r *ServiceRecord) validate() error {
	if err := ValidServiceName(r.Name); err != nil {
		return invalid("%v", err)
	}
	if r.Deleted {
		if r.Address != "" || len(r.Roles) != 0 {
			return invalid("deleted service %q carries an address or roles", r.Name)
		}
		return nil
	}
	if r.Address == "" || len(r.Address) > MaxAddressLen {
		return invalid("service %q address length %d", r.Name, len(r.Address))
	}
	return validateRoles("service "+r.Name, r.Roles)
}

func (r *PolicyRecord) validate() error {
	if err := ValidServiceName(r.Name); err != nil {
		return invalid("policy name: %v", err)
	}
	if r.Deleted {
		if len(r.Identities) != 0 || len(r.Services) != 0 {
			return invalid("deleted policy %q carries selectors", r.Name)
		}
		return nil
	}
	if len(r.Identities) == 0 || len(r.Services) == 0 {
		return invalid("policy %q grants nothing: it needs identities and services", r.Name)
	}
	if err := validateSelectors("policy "+r.Name+" identities", r.Identities, false); err != nil {
		return err
	}
	return validateSelectors("policy "+r.Name+" services", r.Services, true)
}

func (r *IdentityRolesRecord) validate() error {
	if err := ValidIdentity(r.Identity); err != nil {
		return invalid("identity roles: %v", err)
	}
	return validateRoles("identity", r.Roles)
}

// The codec: lists are nested arrays, so each kind has a fixed number of
// body fields.

func (e *encoder) strs(l []string) {
	e.arrayLen(len(l))
	for _, s := range l {
		e.str(s)
	}
}

func (d *decoder) strs(maxN, maxLen int) []string {
	n := d.arrayLen(maxN)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		s := d.str(maxLen)
		if d.err != nil {
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (r *ServiceRecord) encodeBody(e *encoder) {
	e.str(r.Name)
	e.str(r.Address)
	e.strs(r.Roles)
	e.bool(r.Deleted)
}

func (r *ServiceRecord) decodeBody(d *decoder) error {
	r.Name = d.str(MaxServiceNameLen)
	r.Address = d.str(MaxAddressLen)
	r.Roles = d.strs(MaxRoles, MaxRoleLen)
	r.Deleted = d.bool()
	return d.err
}

func (r *PolicyRecord) encodeBody(e *encoder) {
	e.str(r.Name)
	e.strs(r.Identities)
	e.strs(r.Services)
	e.bool(r.Deleted)
}

func (r *PolicyRecord) decodeBody(d *decoder) error {
	r.Name = d.str(MaxServiceNameLen)
	r.Identities = d.strs(MaxSelectors, MaxIdentityLen+1)
	r.Services = d.strs(MaxSelectors, MaxRoleLen+1)
	r.Deleted = d.bool()
	return d.err
}

func (r *IdentityRolesRecord) encodeBody(e *encoder) {
	e.str(r.Identity)
	e.strs(r.Roles)
}

func (r *IdentityRolesRecord) decodeBody(d *decoder) error {
	r.Identity = d.str(MaxIdentityLen)
	r.Roles = d.strs(MaxRoles, MaxRoleLen)
	return d.err
}

func strsSize(l []string) int {
	n := 3
	for _, s := range l {
		n += 3 + len(s)
	}
	return n
}
