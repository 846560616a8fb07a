package mesh

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// Config configures a Mesh. A Config is frozen once passed to
// New.
type Config struct {
	// Core is the protocol's configuration: Name, Role and Region, and
	// its tuning (gossip.DefaultConfig).
	Core gossip.Config
	// Bind is the host:port memberlist listens on, TCP and UDP; port 0
	// picks a free one (see Addr). Ignored with Transport.
	Bind string
	// Advertise is the host:port announced to peers; default: the bound
	// address.
	Advertise string
	// Join lists seeds (host:port). They are tried in the background,
	// with backoff, until one answers, and again whenever this node has
	// lost every peer; listing this node itself is harmless.
	Join []string
	// JoinTimeout: a controller none of whose seeds (other than itself)
	// answers within it is ready on its own (Readiness). Default 5s.
	JoinTimeout time.Duration
	// ReconnectInterval is how often the node tries to rejoin a few
	// members that failed (not left), and its seeds while it sees no
	// controller alive: memberlist gives up on a dead member after
	// GossipToTheDeadTime, so without this a longer partition, or a
	// restart of every controller, would leave the mesh split for good.
	// Default 3s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is retried before it
	// is given up for removed. Default 72h, as Serf's.
	ReconnectTimeout time.Duration
	// Keys is the gossip keyring (AES-GCM): the first key encrypts, all of
	// them decrypt. Empty: no encryption, for tests only.
	Keys [][]byte
	// Label is memberlist's label; clusters with different labels ignore
	// each other. Default "certmesh".
	Label string
	// APIAddr is announced in the node's metadata.
	APIAddr string
	// Preset is "lan" (default, memberlist.DefaultLANConfig) or "wan"
	// (memberlist.DefaultWANConfig).
	Preset string
	// Transport, if set, replaces memberlist's UDP/TCP transport (the
	// simulator's live mode).
	Transport memberlist.NodeAwareTransport
	// Logger receives the mesh's and memberlist's logs; default discards.
	Logger *slog.Logger
	// Clock is the wall clock; default time.Now.
	Clock func() time.Time

	// Memberlist, if set, adjusts the memberlist configuration derived from
	// Preset before memberlist starts (tests and the simulator shorten its
	// timers). It must not replace the delegates, the keyring or the name.
	Memberlist func(*memberlist.Config)
	// MaxQueued caps the messages received and not yet processed; beyond
	// it they are dropped and counted (reason "queue_full"). Default 8192.
	MaxQueued int
	// CollectInterval is how often the store drops records that can no
	// longer matter (crdt.Store.Collect), keeping them CollectGrace past
	// their expiry plus the max clock offset. Defaults 1m and 1h; a
	// negative interval disables collection.
	CollectInterval time.Duration
	CollectGrace    time.Duration
	// Seed seeds the core's random source; zero draws one at random.
	Seed uint64
	// Auth proves this node's frames to its peers and checks theirs: a
	// gossip.NodeAuth for this node's name and role, trusting the root of the
	// trust domain, with the node's certificate and key (SetIdentity) as
	// `pki init` wrote them. Without an identity the node sends unproven
	// frames; without Auth it proves nothing and no sender is proven to
	// it, so clock samples, an issuer's "not issued" and the rest of what
	// trusts a sender's word never count (tests only).
	Auth *gossip.NodeAuth

	// protocol, tests only, replaces the protocol version (major<<4 |
	// minor) this node announces in its metadata and writes at the head
	// of its frames, to rehearse a rolling upgrade against real peers.
	// Zero: ProtocolMajor.ProtocolMinor.
	protocol uint8
}

// Defaults of Config.
const (
	DefaultJoinTimeout       = 5 * time.Second
	DefaultReconnectInterval = 3 * time.Second
	DefaultReconnectTimeout  = 72 * time.Hour
	DefaultLabel             = "certmesh"
	DefaultMaxQueued         = 8192
	DefaultCollectInterval   = time.Minute
	DefaultCollectGrace      = time.Hour
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = DefaultReconnectInterval
	}
	if cfg.ReconnectTimeout <= 0 {
		cfg.ReconnectTimeout = DefaultReconnectTimeout
	}
	if cfg.Label == "" {
		cfg.Label = DefaultLabel
	}
	if cfg.Preset == "" {
		cfg.Preset = "lan"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.CollectInterval == 0 {
		cfg.CollectInterval = DefaultCollectInterval
	}
	if cfg.CollectGrace == 0 {
		cfg.CollectGrace = DefaultCollectGrace
	}
	if cfg.protocol == 0 {
		cfg.protocol = gossip.ProtocolVersion
	}
	cfg.Join = slices.Clone(cfg.Join)
	cfg.Keys = slices.Clone(cfg.Keys)
	if err := cfg.Core.Validate(); err != nil {
		return cfg, err
	}
	switch {
	case cfg.Core.Region == "" || len(cfg.Core.Region) > gossip.MaxRegionLen:
		return cfg, fmt.Errorf("gossip: mesh config: region of %d bytes, want 1 to %d", len(cfg.Core.Region), gossip.MaxRegionLen)
	case len(cfg.Core.Name) > crdt.MaxNameLen:
		return cfg, fmt.Errorf("gossip: mesh config: name of %d bytes, more than %d", len(cfg.Core.Name), crdt.MaxNameLen)
	case cfg.Preset != "lan" && cfg.Preset != "wan":
		return cfg, fmt.Errorf("gossip: mesh config: preset %q, want lan or wan", cfg.Preset)
	case cfg.Bind == "" && cfg.Transport == nil:
		return cfg, errors.New("gossip: mesh config: no bind address")
	case cfg.JoinTimeout < 0:
		return cfg, fmt.Errorf("gossip: mesh config: join timeout %v", cfg.JoinTimeout)
	case len(cfg.Label) > memberlist.LabelMaxSize:
		return cfg, fmt.Errorf("gossip: mesh config: label longer than %d bytes", memberlist.LabelMaxSize)
	case len(cfg.APIAddr) > maxAPIAddrLen:
		return cfg, fmt.Errorf("gossip: mesh config: API address longer than %d bytes", maxAPIAddrLen)
	case cfg.MaxQueued < 1:
		return cfg, fmt.Errorf("gossip: mesh config: max queued %d", cfg.MaxQueued)
	case cfg.Auth != nil && (cfg.Auth.Name() != cfg.Core.Name || cfg.Auth.Role() != cfg.Core.Role):
		return cfg, fmt.Errorf("gossip: mesh config: node auth of %v %q for %v %q", cfg.Auth.Role(), cfg.Auth.Name(), cfg.Core.Role, cfg.Core.Name)
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return cfg, fmt.Errorf("gossip: mesh config: key %d: %v", i+1, err)
		}
	}
	return cfg, nil
}

func (m *Mesh) memberlistConfig() (*memberlist.Config, error) {
	cfg := m.cfg
	var mc *memberlist.Config
	if cfg.Preset == "wan" {
		mc = memberlist.DefaultWANConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Core.Name
	if cfg.Bind != "" {
		host, port, err := splitHostPort(cfg.Bind)
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: bind: %w", err)
		}
		mc.BindAddr, mc.BindPort = host, port
	}
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: advertise: %w", err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	mc.Label = cfg.Label
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip: mesh config: keys: %w", err)
		}
		mc.Keyring = kr
	}
	d := delegate{m}
	mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d
	mc.Logger = log.New(&slogWriter{log: m.log, foreign: func() { m.met.drop("foreign") }, clock: m.clock}, "", 0)
	mc.LogOutput = nil
	if cfg.Memberlist != nil {
		cfg.Memberlist(mc)
		if mc.Name != cfg.Core.Name {
			return nil, errors.New("gossip: mesh config: the memberlist hook changed the node name")
		}
		mc.Delegate, mc.Events, mc.Alive, mc.Conflict = d, d, d, d
	}
	return mc, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", ps)
	}
	return host, port, nil
}

// packetOverhead is what memberlist adds to a user message sent as a
// packet: its message type, a CRC, the label and the encryption.
func packetOverhead(mc *memberlist.Config) int {
	n := 1 + 5 // user message type, CRC header
	if mc.Label != "" {
		n += 2 + len(mc.Label)
	}
	if mc.Keyring != nil {
		n += 1 + 12 + 16 + 2 // version, nonce, GCM tag, padding slack
	}
	return n
}
