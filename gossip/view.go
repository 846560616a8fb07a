package gossip

import (
	"slices"
	"sort"
)

// View is a node's membership view: who is in the mesh, in which region,
// with which role, and whether this node currently believes them alive. The
// core asks it for every path decision, so each method must be cheap.
//
// A Core keeps its own view, fed by SetMember and RemoveMember, unless
// Config.View supplies one; the simulator shares one immutable view of the
// cluster among thousands of simulated nodes and answers Alive per node,
// which keeps membership O(N) rather than O(N²) in memory.
type View interface {
	// Regions returns the region names, sorted.
	Regions() []string
	// Region returns the names of a region's members, sorted, this node
	// included. Members believed dead may be listed; paths skip them.
	Region(region string) []string
	// Member returns a member's description.
	Member(name string) (Member, bool)
	// Controllers returns the controllers' names, sorted.
	Controllers() []string
	// Alive reports whether this node believes name is up.
	Alive(name string) bool
}

// memberView is the core's own View: the live members memberlist reports.
type memberView struct {
	self        Member
	members     map[string]Member
	regions     map[string][]string
	regionNames []string
	controllers []string
}

func newMemberView(self Member) *memberView {
	v := &memberView{self: self, members: map[string]Member{self.Name: self}, regions: map[string][]string{}}
	v.add(self)
	return v
}

func (v *memberView) Regions() []string             { return v.regionNames }
func (v *memberView) Region(region string) []string { return v.regions[region] }
func (v *memberView) Controllers() []string         { return v.controllers }
func (v *memberView) Alive(name string) bool        { _, ok := v.members[name]; return ok }
func (v *memberView) Member(name string) (Member, bool) {
	m, ok := v.members[name]
	return m, ok
}

func (v *memberView) set(m Member) {
	if old, ok := v.members[m.Name]; ok {
		if old == m {
			return
		}
		v.remove(m.Name)
	}
	v.members[m.Name] = m
	v.add(m)
}

func (v *memberView) add(m Member) {
	l := v.regions[m.Region]
	if i, found := slices.BinarySearch(l, m.Name); !found {
		v.regions[m.Region] = slices.Insert(l, i, m.Name)
	}
	if m.Role == RoleController {
		if i, found := slices.BinarySearch(v.controllers, m.Name); !found {
			v.controllers = slices.Insert(v.controllers, i, m.Name)
		}
	}
	v.sortRegions()
}

func (v *memberView) remove(name string) {
	m, ok := v.members[name]
	if !ok || name == v.self.Name {
		return
	}
	delete(v.members, name)
	l := v.regions[m.Region]
	if i, found := slices.BinarySearch(l, name); found {
		l = slices.Delete(l, i, i+1)
		if len(l) == 0 {
			delete(v.regions, m.Region)
		} else {
			v.regions[m.Region] = l
		}
	}
	if i, found := slices.BinarySearch(v.controllers, name); found {
		v.controllers = slices.Delete(v.controllers, i, i+1)
	}
	v.sortRegions()
}

func (v *memberView) sortRegions() {
	v.regionNames = v.regionNames[:0]
	for r := range v.regions {
		v.regionNames = append(v.regionNames, r)
	}
	sort.Strings(v.regionNames)
}
