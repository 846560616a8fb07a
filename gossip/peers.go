package gossip

import (
	"slices"
	"time"
)

// Member is another node as membership sees it.
type Member struct {
	Name   string
	Role   Role
	Region string
}

// peer is what a core remembers of a member it synced with. Entries exist
// only for live members of the view (RemoveMember drops them), at most
// maxPeers.
type peer struct {
	lastSync time.Time
	asked    time.Time // when this node last asked it for records (see syncedWith)
	lag      uint64    // records it lacked when it last told us its context
	lagKnown bool
}

// maxPeers caps the per-peer entries, whatever membership claims: a mesh
// of 10,000 routers has a tenth of it.
const maxPeers = 1 << 17

// peer returns the entry of name, a live member, creating it; nil when
// maxPeers are held.
func (c *Core) peer(name string) *peer {
	p, ok := c.peers[name]
	if !ok {
		if len(c.peers) >= maxPeers {
			return nil
		}
		p = &peer{}
		c.peers[name] = p
	}
	return p
}

// View returns the membership view the core uses.
func (c *Core) View() View { return c.view }

// Members returns the known members other than this node, sorted by name.
func (c *Core) Members() []Member {
	var ms []Member
	for _, r := range c.view.Regions() {
		for _, name := range c.view.Region(r) {
			if m, ok := c.view.Member(name); ok && name != c.cfg.Name && c.view.Alive(name) {
				ms = append(ms, m)
			}
		}
	}
	slices.SortFunc(ms, func(a, b Member) int { return compareStrings(a.Name, b.Name) })
	return ms
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SetMember adds or updates a member of the core's own view.
func (c *Core) SetMember(m Member) {
	if c.own == nil || m.Name == c.cfg.Name || m.Name == "" {
		return
	}
	c.own.set(m)
}

// RemoveMember forgets a member that left or failed.
func (c *Core) RemoveMember(name string) {
	if name == c.cfg.Name {
		return
	}
	if c.own != nil {
		c.own.remove(name)
	}
	delete(c.peers, name)
	delete(c.exchanging, name)
}

// isMember reports whether name is a live member of the view other than
// this node.
func (c *Core) isMember(name string) bool {
	return name != c.cfg.Name && name != "" && c.view.Alive(name)
}

// PeerLag returns how many records member name lacked, compared with this
// node, when it last told this node its causal context.
func (c *Core) PeerLag(name string) (uint64, bool) {
	p, ok := c.peers[name]
	if !ok || !p.lagKnown {
		return 0, false
	}
	return p.lag, true
}
