package crdt

import (
	"slices"
	"strings"
)

// AccessVerdict is the outcome of an access check. Its String is the
// reason word that routers log and count.
type AccessVerdict uint8

const (
	AccessGranted AccessVerdict = iota
	// UnknownService: no service of that name is defined.
	UnknownService
	// NotGranted: the service is defined, and no policy grants it to the
	// identity or any of its roles.
	NotGranted
)

func (v AccessVerdict) String() string {
	switch v {
	case AccessGranted:
		return "granted"
	case UnknownService:
		return "unknown_service"
	case NotGranted:
		return "not_granted"
	}
	return "unknown_access_verdict"
}

// subjects is who a set of policies grants, counted: each policy adds one
// per identity selector, so removing a policy takes away exactly what it
// added.
type subjects struct {
	all   int
	ids   map[string]int
	roles map[string]int
}

func bump(m *map[string]int, k string, n int) {
	if *m == nil {
		*m = make(map[string]int)
	}
	if c := (*m)[k] + n; c == 0 {
		delete(*m, k)
	} else {
		(*m)[k] = c
	}
}

// add counts the identity selectors sels n times (n may be negative).
func (g *subjects) add(sels []string, n int) {
	for _, sel := range sels {
		switch {
		case sel == SelectAll:
			g.all += n
		case strings.HasPrefix(sel, "#"):
			bump(&g.roles, sel[1:], n)
		default:
			bump(&g.ids, sel[1:], n)
		}
	}
}

// addAll counts every subject of o, n times.
func (g *subjects) addAll(o *subjects, n int) {
	g.all += o.all * n
	for k, c := range o.ids {
		bump(&g.ids, k, c*n)
	}
	for k, c := range o.roles {
		bump(&g.roles, k, c*n)
	}
}

func (g *subjects) empty() bool { return g.all == 0 && len(g.ids) == 0 && len(g.roles) == 0 }

// grants reports whether g grants identity, or any of the roles.
func (g *subjects) grants(identity string, roles ...[]string) bool {
	return g.grantsIdentity(identity) || g.grantsRole(roles...)
}

func (g *subjects) grantsIdentity(identity string) bool {
	return g.all > 0 || len(g.ids) > 0 && g.ids[identity] > 0
}

func (g *subjects) grantsRole(roles ...[]string) bool {
	if len(g.roles) == 0 {
		return false
	}
	for _, rs := range roles {
		for _, r := range rs {
			if g.roles[r] > 0 {
				return true
			}
		}
	}
	return false
}

// accessIndex holds the access registers and what they grant, kept exact
// as records come and go, so that a decision is a few map lookups and
// never a scan of the policies.
type accessIndex struct {
	services winners[string, *ServiceRecord]       // newest per name
	policies winners[string, *PolicyRecord]        // newest per name
	idRoles  winners[string, *IdentityRolesRecord] // newest per identity

	// Derived from the winners that are not tombstones.
	live   map[string]*ServiceRecord      // defined services
	byRole map[string]map[string]struct{} // service role -> services with it
	// pairs[σ] is what the policies naming service selector σ grant;
	// grants[s] the sum of pairs over the selectors that match service s
	// (@s, #all, #role for each of its roles): the answer for s.
	pairs  map[string]*subjects
	grants map[string]*subjects
}

func newAccessIndex() accessIndex {
	return accessIndex{
		services: newLatest[string, *ServiceRecord](),
		policies: newLatest[string, *PolicyRecord](),
		idRoles:  newLatest[string, *IdentityRolesRecord](),
		live:     make(map[string]*ServiceRecord),
		byRole:   make(map[string]map[string]struct{}),
		pairs:    make(map[string]*subjects),
		grants:   make(map[string]*subjects),
	}
}

// selectorsOf lists the service selectors that match svc.
func selectorsOf(svc *ServiceRecord) []string {
	out := make([]string, 0, 2+len(svc.Roles))
	out = append(out, "@"+svc.Name, SelectAll)
	for _, r := range svc.Roles {
		out = append(out, "#"+r)
	}
	return out
}

// eachService calls fn with every defined service that sel matches.
func (a *accessIndex) eachService(sel string, fn func(name string)) {
	switch {
	case sel == SelectAll:
		for name := range a.live {
			fn(name)
		}
	case strings.HasPrefix(sel, "#"):
		for name := range a.byRole[sel[1:]] {
			fn(name)
		}
	default:
		if _, ok := a.live[sel[1:]]; ok {
			fn(sel[1:])
		}
	}
}

// applyPolicy adds (n = 1) or takes away (n = -1) what p grants. Its cost
// is the number of services its selectors match times its identity
// selectors.
func (a *accessIndex) applyPolicy(p *PolicyRecord, n int) {
	for _, sel := range p.Services {
		pr := a.pairs[sel]
		if pr == nil {
			pr = &subjects{}
			a.pairs[sel] = pr
		}
		pr.add(p.Identities, n)
		if pr.empty() {
			delete(a.pairs, sel)
		}
		a.eachService(sel, func(name string) {
			a.grants[name].add(p.Identities, n)
		})
	}
}

// applyService defines (n = 1) or removes (n = -1) svc.
func (a *accessIndex) applyService(svc *ServiceRecord, n int) {
	if n < 0 {
		delete(a.live, svc.Name)
		delete(a.grants, svc.Name)
		for _, r := range svc.Roles {
			if set := a.byRole[r]; set != nil {
				delete(set, svc.Name)
				if len(set) == 0 {
					delete(a.byRole, r)
				}
			}
		}
		return
	}
	a.live[svc.Name] = svc
	for _, r := range svc.Roles {
		set := a.byRole[r]
		if set == nil {
			set = make(map[string]struct{})
			a.byRole[r] = set
		}
		set[svc.Name] = struct{}{}
	}
	g := &subjects{}
	for _, sel := range selectorsOf(svc) {
		if pr := a.pairs[sel]; pr != nil {
			g.addAll(pr, 1)
		}
	}
	a.grants[svc.Name] = g
}

// register updates one register after r was added to (add) or removed from
// it: when the winner changed, the old one's grants go and the new one's
// come.
func register[R accessRecord](w *winners[string, R], r R, add bool, apply func(R, int)) {
	k := r.accessName()
	old, had := w.m[k]
	if add {
		w.add(k, r)
	} else {
		w.remove(k, r)
	}
	now, has := w.m[k]
	if had == has && (!had || Record(old) == Record(now)) {
		return
	}
	if had && !old.tombstone() {
		apply(old, -1)
	}
	if has && !now.tombstone() {
		apply(now, 1)
	}
}

// index adds (add) or removes an access record.
func (a *accessIndex) index(r Record, add bool) {
	switch r := r.(type) {
	case *ServiceRecord:
		register(&a.services, r, add, a.applyService)
	case *PolicyRecord:
		register(&a.policies, r, add, a.applyPolicy)
	case *IdentityRolesRecord:
		register(&a.idRoles, r, add, func(*IdentityRolesRecord, int) {})
	}
}

// winner returns the current record of r's register, tombstone or not.
func (a *accessIndex) winner(r accessRecord) Record {
	var w Record
	var ok bool
	switch r := r.(type) {
	case *ServiceRecord:
		w, ok = a.services.m[r.Name]
	case *PolicyRecord:
		w, ok = a.policies.m[r.Name]
	case *IdentityRolesRecord:
		w, ok = a.idRoles.m[r.Identity]
	}
	if !ok {
		return nil
	}
	return w
}

// Access decides whether the session session of identity may reach
// service: some policy grants the service to the identity, to #all, or to
// one of the roles of the session (claimed at login) or of the identity
// (given by an admin). A few map lookups, whatever the numbers of
// services, policies and roles.
func (s *Store) Access(identity string, session SessionID, service string) AccessVerdict {
	g, ok := s.access.grants[service]
	if !ok {
		return UnknownService
	}
	if g.grantsIdentity(identity) {
		return AccessGranted
	}
	if len(g.roles) == 0 {
		return NotGranted // the roles need not be looked up
	}
	var claimed, given []string
	if sess := s.sessions.m[session]; sess != nil {
		claimed = sess.Roles
	}
	if ir := s.access.idRoles.m[identity]; ir != nil {
		given = ir.Roles
	}
	if g.grantsRole(claimed, given) {
		return AccessGranted
	}
	return NotGranted
}

// Service returns the defined service name.
func (s *Store) Service(name string) (*ServiceRecord, bool) {
	r, ok := s.access.live[name]
	return r, ok
}

// Services returns the defined services, sorted by name.
func (s *Store) Services() []*ServiceRecord {
	out := make([]*ServiceRecord, 0, len(s.access.live))
	for _, r := range s.access.live {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *ServiceRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Policies returns the defined policies (no tombstones), sorted by name.
func (s *Store) Policies() []*PolicyRecord {
	out := make([]*PolicyRecord, 0, len(s.access.policies.m))
	for _, r := range s.access.policies.m {
		if !r.Deleted {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *PolicyRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// IdentityRoles returns the roles an admin gave identity, and the record
// that set them (nil if none was ever written, or it was collected).
func (s *Store) IdentityRoles(identity string) ([]string, *IdentityRolesRecord) {
	r := s.access.idRoles.m[identity]
	if r == nil {
		return nil, nil
	}
	return r.Roles, r
}

// Grant is one service an identity may reach and the policies that grant
// it.
type Grant struct {
	Service  string
	Policies []string
}

// AccessOf lists the services identity may reach, holding the given roles
// (a session's claimed ones) besides those an admin gave it, and through
// which policies, sorted by service. It visits every policy once: it
// answers an admin, never an admission.
func (s *Store) AccessOf(identity string, roles []string) []Grant {
	given, _ := s.IdentityRoles(identity)
	by := make(map[string][]string)
	for _, p := range s.Policies() {
		var one subjects
		one.add(p.Identities, 1)
		if !one.grants(identity, roles, given) {
			continue
		}
		for _, sel := range p.Services {
			s.access.eachService(sel, func(name string) {
				if l := by[name]; len(l) == 0 || l[len(l)-1] != p.Name {
					by[name] = append(l, p.Name)
				}
			})
		}
	}
	out := make([]Grant, 0, len(by))
	for name, ps := range by {
		out = append(out, Grant{Service: name, Policies: ps})
	}
	slices.SortFunc(out, func(a, b Grant) int { return strings.Compare(a.Service, b.Service) })
	return out
}
