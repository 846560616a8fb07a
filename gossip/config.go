package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Role is a node's role in the mesh, as announced in its metadata. It
// steers paths only; trust comes from signatures.
type Role uint8

const (
	RoleController Role = 1
	RoleRouter     Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleController:
		return "controller"
	case RoleRouter:
		return "router"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses "controller" or "router".
func ParseRole(s string) (Role, error) {
	switch s {
	case "controller":
		return RoleController, nil
	case "router":
		return RoleRouter, nil
	}
	return 0, fmt.Errorf("gossip: unknown role %q", s)
}

// Config configures a Core. A Config is frozen once passed to NewCore.
type Config struct {
	Name   string // this node's name, unique in the mesh
	Role   Role
	Region string

	// Fanout is how many children a node has in a region tree. Higher
	// means fewer hops inside a region and more packets per relay.
	Fanout int
	// Trees is how many independent trees a batch travels in each region;
	// every node receives one copy per tree. Two survive any single loss.
	Trees int
	// EagerTrees is how many of them carry the records inside a region.
	// The others are lazy (Plumtree's lazy push): across regions their
	// root gets the records, so a lost cross-region packet costs no
	// cross-region round trip, but inside the region they carry only the
	// batch's dots, and a node that lacks them after LazyDelay asks the
	// neighbour that announced them, one intra-region round trip away.
	// The roots pass each batch to one another (passToOtherRoots), so
	// all trees start within a hop of each other and LazyDelay need only
	// cover the jitter between a node's paths in two trees.
	EagerTrees int
	LazyDelay  time.Duration
	// PacketBudget is the largest message sent best-effort, in bytes;
	// larger ones go reliably. memberlist's UDP budget after label and
	// encryption is about 1,300.
	PacketBudget int
	// AntiEntropyInterval is how often a node syncs with one peer.
	AntiEntropyInterval time.Duration
	// AntiEntropyBudget caps the records in one anti-entropy or repair
	// answer, in bytes; a peer further behind asks again at once.
	AntiEntropyBudget int
	// RepairDelay is how long a gap may wait for a reordered packet before
	// it is asked for; RepairTimeout, how long before asking again.
	RepairDelay   time.Duration
	RepairTimeout time.Duration
	// WantTimeout is how long one wave of a pull waits for answers.
	WantTimeout time.Duration
	// NegativeTTL is how long an authoritative "not issued" is cached.
	NegativeTTL time.Duration
	// MaxHeld caps records held for an unknown signer or a future HLC;
	// HeldTTL is how long one waits before it is dropped and counted.
	MaxHeld int
	HeldTTL time.Duration
	// MaxOffset is the clock offset beyond which a record is held.
	MaxOffset time.Duration
	// View, if set, replaces the core's own membership view (SetMember and
	// RemoveMember then do nothing). The simulator uses it.
	View View
	// EncodeLater leaves encoding to the driver, which frames every
	// message it sends anyway, after the lock under which it steps the
	// core: the core then neither encodes what it sends (a delta's or a
	// sync request's causal context is long in a store with many gaps),
	// nor counts Stats.BytesOut, nor sets Output.Reliable; the driver
	// sends over a stream what exceeds PacketBudget. gossip/mesh sets it.
	EncodeLater bool
}

// DefaultConfig returns the defaults for a node; the caller sets Name,
// Role and Region.
func DefaultConfig() Config {
	return Config{
		Fanout:              16,                     // 16 and 256 nodes within 1 and 2 hops
		Trees:               2,                      // survives one lost packet per node
		EagerTrees:          2,                      // 1 receives ~35% fewer bytes for ~1ms more excess p99 (docs/meshsim.md, "Bytes")
		LazyDelay:           5 * time.Millisecond,   // above the jitter between two trees' paths to a node
		PacketBudget:        DefaultPacketBudget,    // memberlist UDP budget after label+GCM
		AntiEntropyInterval: time.Second,            // ~0.04 msgs/event/node at 50 events/s
		AntiEntropyBudget:   256 << 10,              // ~1,000 records per answer
		RepairDelay:         5 * time.Millisecond,   // lets the second tree's copy arrive
		RepairTimeout:       300 * time.Millisecond, // above one cross-region round trip
		WantTimeout:         300 * time.Millisecond, // above one cross-region round trip
		NegativeTTL:         time.Second,
		MaxHeld:             10000,
		HeldTTL:             time.Minute,
		MaxOffset:           crdt.DefaultMaxOffset,
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("gossip: config: empty name")
	case c.Role != RoleController && c.Role != RoleRouter:
		return fmt.Errorf("gossip: config: role %v", c.Role)
	case c.Fanout < 1:
		return fmt.Errorf("gossip: config: fanout %d < 1", c.Fanout)
	case c.Trees < 1 || c.Trees > 4:
		return fmt.Errorf("gossip: config: trees %d not in [1, 4]", c.Trees)
	case c.EagerTrees < 1 || c.EagerTrees > c.Trees:
		return fmt.Errorf("gossip: config: eager trees %d not in [1, trees]", c.EagerTrees)
	case c.LazyDelay < 0 || c.RepairDelay < 0:
		return errors.New("gossip: config: negative delay")
	case c.PacketBudget < 512:
		return fmt.Errorf("gossip: config: packet budget %d < 512", c.PacketBudget)
	case c.AntiEntropyInterval <= 0:
		return fmt.Errorf("gossip: config: anti-entropy interval %v", c.AntiEntropyInterval)
	case c.AntiEntropyBudget < c.PacketBudget:
		return fmt.Errorf("gossip: config: anti-entropy budget %d below packet budget", c.AntiEntropyBudget)
	case c.WantTimeout <= 0 || c.RepairTimeout <= 0 || c.HeldTTL <= 0:
		return errors.New("gossip: config: timeouts must be positive")
	case c.MaxHeld < 0:
		return errors.New("gossip: config: negative max held")
	}
	return nil
}
