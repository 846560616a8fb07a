package sim

import (
	"fmt"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Policy changes (docs/meshsim-model.md, "Policy changes"). With
// workload.mix.policy above 0, every client reaches one service, "sim",
// through the policy of its access group: at login its session claims the
// group's role ("g-<k>", the session record carries it, so that a router
// that pulls the session knows it), and policy "g-<k>" grants that role the
// service. Those policies exist before the workload starts (every node
// holds them, as it would an admin's configuration), so no grant races a
// login. A policy change picks a live client and deletes its group's
// policy: every session of the group loses its access, is no longer live,
// and tries its certificate once more at a router, as a revoked one does;
// an admission after the change was reachable for revokedGrace counts in
// unauthorized_accepts. New logins join the newest group that no change
// has removed; a group holds at most policyGroupSize sessions.

// policyGroupSize is how many sessions share an access group.
const policyGroupSize = 16

// policyService is the one service of the workload.
const policyService = "sim"

// policyMode reports whether the workload makes policy changes.
func policyMode(w Workload) bool { return w.Policy > 0 }

// policyGroups is how many access groups are written before the workload
// starts: enough for the logins and the removals the workload is expected
// to make, with room to spare.
func policyGroups(w Workload, d time.Duration) int {
	if !policyMode(w) {
		return 0
	}
	writes := w.Rate * d.Seconds()
	all := w.Issue + w.Rotate + w.Revoke + w.Policy
	return int(writes*w.Issue/all)/policyGroupSize + 4*int(writes*w.Policy/all) + 64
}

// groupName is the role and the policy of group k (0-based).
func groupName(k int32) string { return fmt.Sprintf("g-%d", k) }

// groupOf is the role a session of Write.Group g claims: none for 0.
func groupOf(g int32) []string {
	if g <= 0 {
		return nil
	}
	return []string{groupName(g - 1)}
}

// policySeedAuthor writes the records every node holds from the start.
var policySeedAuthor = crdt.Author{Name: "sim-admin", Incarnation: 1}

// policySeed returns the service and the groups' policies, stamped by
// policySeedAuthor at t. Every store merges the same objects.
func policySeed(groups int, t time.Time) []crdt.Record {
	recs := []crdt.Record{&crdt.ServiceRecord{Name: policyService, Address: "127.0.0.1:1"}}
	for k := range groups {
		g := groupName(int32(k))
		recs = append(recs, &crdt.PolicyRecord{Name: g, Identities: []string{"#" + g}, Services: []string{"@" + policyService}})
	}
	crdt.Stamp(recs, policySeedAuthor, 1, func() crdt.Timestamp { return crdt.NewTimestamp(crdt.MillisOf(t), 0) })
	return recs
}

// policyState is the run's side of the groups.
type policyState struct {
	on        bool
	groups    int           // written before the start
	current   int32         // the group new logins join
	members   [][]SessionID // by group
	removedBy []EventID     // by group: the change that removed it, or -1
}

func (p *policyState) init(w Workload, d time.Duration) {
	p.on = policyMode(w)
	p.groups = policyGroups(w, d)
	p.members = make([][]SessionID, p.groups)
	p.removedBy = make([]EventID, p.groups)
	for i := range p.removedBy {
		p.removedBy[i] = -1
	}
}

// join returns the Write.Group of a new session: 1 + the group it joins,
// or 0 without policy changes.
func (p *policyState) join(s SessionID) int32 {
	if !p.on {
		return 0
	}
	for p.current < int32(p.groups-1) && (p.removedBy[p.current] >= 0 || len(p.members[p.current]) >= policyGroupSize) {
		p.current++
	}
	p.members[p.current] = append(p.members[p.current], s)
	return p.current + 1
}

// removeGroup records that change id removes group g (a Write.Group):
// its sessions lose their access.
func (r *run) removeGroup(g int32, id EventID) {
	k := g - 1
	p := &r.policy
	p.removedBy[k] = id
	for _, s := range p.members[k] {
		ss := &r.sessions[s]
		if ss.deniedAt == 0 {
			ss.deniedAt = r.now + 1 // 0 is "never"
			r.removeLive(s)
		}
	}
}

// restoreGroup undoes removeGroup for a change no controller accepted.
func (r *run) restoreGroup(g int32, id EventID, at time.Duration) {
	k := g - 1
	p := &r.policy
	if p.removedBy[k] != id {
		return
	}
	p.removedBy[k] = -1
	for _, s := range p.members[k] {
		ss := &r.sessions[s]
		if ss.deniedAt != at+1 {
			continue
		}
		ss.deniedAt = 0
		if ss.cert >= 0 && ss.revokeAt < 0 && ss.livePos < 0 {
			ss.livePos = int32(len(r.live))
			r.live = append(r.live, s)
		}
	}
}

// denied reports whether a policy change removed session s's access at or
// before at.
func (r *run) denied(s SessionID, at time.Duration) bool {
	d := r.sessions[s].deniedAt
	return d > 0 && d-1 <= at
}
