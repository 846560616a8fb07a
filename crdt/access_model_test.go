package crdt

import (
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// The access part of the reference model: registers found by scanning
// every record, decisions by scanning every policy.

var (
	worldServices = []string{"echo", "db", "web"}
	worldRoles    = []string{"ops", "dev", "eng"}
)

func genRoles(t *rapid.T, label string) []string {
	var roles []string
	for _, r := range worldRoles {
		if rapid.IntRange(0, 2).Draw(t, label) == 0 {
			roles = append(roles, r)
		}
	}
	return NormalizeList(roles)
}

func genSelectors(t *rapid.T, label string, names []string) []string {
	var sels []string
	for len(sels) == 0 {
		n := rapid.IntRange(1, 3).Draw(t, label+" count")
		for range n {
			switch rapid.IntRange(0, 5).Draw(t, label) {
			case 0:
				sels = append(sels, SelectAll)
			case 1, 2:
				sels = append(sels, "#"+rapid.SampledFrom(worldRoles).Draw(t, label+" role"))
			default:
				sels = append(sels, "@"+rapid.SampledFrom(names).Draw(t, label+" name"))
			}
		}
	}
	return NormalizeList(sels)
}

// genAccessRecord writes a service, policy or identity-roles register, a
// third of the time a delete, over few names so that writes collide.
func genAccessRecord(t *rapid.T, h Header) Record {
	del := rapid.IntRange(0, 3).Draw(t, "delete") == 0
	switch rapid.IntRange(0, 2).Draw(t, "access kind") {
	case 0:
		r := &ServiceRecord{Header: h, Name: rapid.SampledFrom(worldServices).Draw(t, "service"), Deleted: del}
		if !del {
			r.Address = "127.0.0.1:" + rapid.SampledFrom([]string{"1", "2"}).Draw(t, "port")
			r.Roles = genRoles(t, "service roles")
		}
		return r
	case 1:
		r := &PolicyRecord{Header: h, Name: rapid.SampledFrom([]string{"p1", "p2", "p3"}).Draw(t, "policy"), Deleted: del}
		if !del {
			r.Identities = genSelectors(t, "identities", worldIdentities)
			r.Services = genSelectors(t, "services", worldServices)
		}
		return r
	default:
		r := &IdentityRolesRecord{Header: h, Identity: rapid.SampledFrom(worldIdentities).Draw(t, "identity")}
		if !del {
			r.Roles = genRoles(t, "identity roles")
		}
		return r
	}
}

// latest is the newest live record of one register, or nil.
func latest[R accessRecord](m *model, name string) R {
	var best R
	found := false
	for _, r := range m.liveRecords() {
		x, ok := r.(R)
		if !ok || x.accessName() != name {
			continue
		}
		if !found || earlier(best, x) {
			best, found = x, true
		}
	}
	return best
}

func (m *model) service(name string) *ServiceRecord {
	if r := latest[*ServiceRecord](m, name); r != nil && !r.Deleted {
		return r
	}
	return nil
}

func (m *model) policies() []*PolicyRecord {
	out := []*PolicyRecord{}
	for _, n := range []string{"p1", "p2", "p3"} {
		if r := latest[*PolicyRecord](m, n); r != nil && !r.Deleted {
			out = append(out, r)
		}
	}
	return out
}

func (m *model) identityRoles(id string) []string {
	if r := latest[*IdentityRolesRecord](m, id); r != nil {
		return r.Roles
	}
	return nil
}

func selects(sel, name string, roles []string) bool {
	switch {
	case sel == SelectAll:
		return true
	case strings.HasPrefix(sel, "#"):
		return slices.Contains(roles, sel[1:])
	}
	return sel[1:] == name
}

func anySelects(sels []string, name string, roles []string) bool {
	return slices.ContainsFunc(sels, func(sel string) bool { return selects(sel, name, roles) })
}

func (m *model) access(identity string, session SessionID, service string) AccessVerdict {
	svc := m.service(service)
	if svc == nil {
		return UnknownService
	}
	roles := slices.Clone(m.identityRoles(identity))
	if sess := m.session(session); sess != nil {
		roles = append(roles, sess.Roles...)
	}
	for _, p := range m.policies() {
		if anySelects(p.Identities, identity, roles) && anySelects(p.Services, svc.Name, svc.Roles) {
			return AccessGranted
		}
	}
	return NotGranted
}

func assertAccessMatchesModel(t *rapid.T, name string, s *Store, m *model) {
	for _, id := range worldIdentities {
		got, _ := s.IdentityRoles(id)
		if want := m.identityRoles(id); !slices.Equal(got, want) {
			t.Fatalf("%s: IdentityRoles(%s) = %v, model %v", name, id, got, want)
		}
		for i := 0; i <= worldSessions; i++ {
			for _, svc := range append(worldServices, "nope") {
				if got, want := s.Access(id, sid(i), svc), m.access(id, sid(i), svc); got != want {
					t.Fatalf("%s: Access(%s, session %d, %s) = %v, model %v", name, id, i, svc, got, want)
				}
			}
		}
	}
	var want []*ServiceRecord
	for _, n := range []string{"db", "echo", "web"} {
		if r := m.service(n); r != nil {
			want = append(want, r)
		}
	}
	if diff := cmp.Diff(want, s.Services(), equateEmpty); diff != "" {
		t.Fatalf("%s: Services (-model +store):\n%s", name, diff)
	}
	if diff := cmp.Diff(m.policies(), s.Policies(), equateEmpty); diff != "" {
		t.Fatalf("%s: Policies (-model +store):\n%s", name, diff)
	}
}
