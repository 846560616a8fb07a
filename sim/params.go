package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certmesh/certmesh/gossip"
)

// Params are the strategies' parameters: the knobs of gossip.Config that
// the mesh strategy runs with, and those of the baselines. A topology file
// may set them in its parameters section and meshsim's --set overrides
// them; both go through the same table of settings (Settings), so a
// parameter has one name, one parser and one error message wherever it is
// given. DefaultParams holds the values every published figure uses.
type Params struct {
	Mesh   MeshParams
	Gossip GossipParams
	Raft   RaftParams
}

// MeshParams are the gossip.Config knobs of the mesh strategy.
type MeshParams struct {
	Fanout              int           // children per node in a region tree
	Trees               int           // trees per region
	EagerTrees          int           // trees that carry records; the others are lazy
	LazyDelay           time.Duration // a lazy tree's wait before pulling announced dots
	RepairDelay         time.Duration // a gap's wait for a reordered packet
	RepairTimeout       time.Duration // before a repair is asked again
	WantTimeout         time.Duration // one wave of a pull
	AntiEntropyInterval time.Duration // one sync with one peer every this
	CPU                 CPUParams     // the nodes' CPU (cpu.go); off by default
}

// GossipParams are memberlist's and Serf's knobs of the gossip baseline.
type GossipParams struct {
	Interval         time.Duration // GossipInterval
	Nodes            int           // GossipNodes: peers per round
	RetransmitMult   int           // RetransmitMult: copies = mult * ceil(log10(n+1))
	PushPullInterval time.Duration // push-pull with one peer every this
}

// RaftParams are the raft baseline's knobs.
type RaftParams struct {
	// Leader is the controller that leads while it qualifies: a node name
	// (controller/eu-west/0) or a region (its first controller); empty,
	// the first controller of the first region.
	Leader    string
	Reconnect ReconnectPolicy
}

// DefaultParams returns the parameters of every documented figure:
// gossip.DefaultConfig for mesh, memberlist's LAN defaults for gossip,
// hashicorp/raft's transport for raft.
func DefaultParams() Params {
	g := gossip.DefaultConfig()
	return Params{
		Mesh: MeshParams{
			Fanout: g.Fanout, Trees: g.Trees, EagerTrees: g.EagerTrees, LazyDelay: g.LazyDelay,
			RepairDelay: g.RepairDelay, RepairTimeout: g.RepairTimeout, WantTimeout: g.WantTimeout,
			AntiEntropyInterval: g.AntiEntropyInterval, CPU: defaultCPU(),
		},
		Gossip: GossipParams{
			Interval: gossipInterval, Nodes: gossipNodes, RetransmitMult: retransmitMult, PushPullInterval: pushPullInterval,
		},
		Raft: RaftParams{Reconnect: defaultReconnect(ReconnectHashicorp)},
	}
}

// gossipConfig applies the mesh parameters to a gossip.Config.
func (p MeshParams) gossipConfig(c gossip.Config) gossip.Config {
	c.Fanout, c.Trees, c.EagerTrees = p.Fanout, p.Trees, p.EagerTrees
	c.LazyDelay, c.RepairDelay, c.RepairTimeout = p.LazyDelay, p.RepairDelay, p.RepairTimeout
	c.WantTimeout, c.AntiEntropyInterval = p.WantTimeout, p.AntiEntropyInterval
	return c
}

// Validate checks the parameters against each other and the topology;
// errors name the setting.
func (p Params) Validate(t *Topology) error {
	m := p.Mesh
	switch {
	case m.EagerTrees > m.Trees:
		return fmt.Errorf("mesh.eager_trees: %d is more than mesh.trees (%d)", m.EagerTrees, m.Trees)
	case m.AntiEntropyInterval <= 0:
		return fmt.Errorf("mesh.anti_entropy_interval: %v must be positive", m.AntiEntropyInterval)
	}
	if err := p.Raft.Reconnect.Validate(); err != nil {
		return fmt.Errorf("raft.%w", err)
	}
	if l := p.Raft.Leader; l != "" && t != nil {
		if _, err := t.raftLeader(l); err != nil {
			return fmt.Errorf("raft.leader: %w", err)
		}
	}
	return nil
}

// raftLeader resolves raft.leader: a controller's name or a region's.
func (t *Topology) raftLeader(v string) (string, error) {
	for _, r := range t.Regions {
		if r.Name == v {
			if r.Controllers == 0 {
				return "", fmt.Errorf("region %s has no controller", v)
			}
			return fmt.Sprintf("controller/%s/0", v), nil
		}
	}
	role, _, _, err := t.parseNodeName(v)
	if err != nil {
		return "", fmt.Errorf("%s (want a controller or a region: %s)", err, t.regionList())
	}
	if role != RoleController {
		return "", fmt.Errorf("%q is not a controller", v)
	}
	return v, nil
}

// A Setting is one parameter that a topology file's parameters section or
// --set can give: a strategy's (mesh.fanout) or the topology's (loss).
type Setting struct {
	Key string // mesh.fanout, raft.reconnect, loss
	// Strategy is the strategy the setting applies to, empty for the
	// topology's settings, which apply to every strategy.
	Strategy string
	Help     string
	set      func(p *Params, t *Topology, v string) error
	get      func(p *Params, t *Topology) string
}

// Settings lists every setting, in the order the report gives them.
func Settings() []Setting { return slices.Clone(settings) }

var settings = []Setting{
	// The topology's network and workload.
	{Key: "loss", Help: "packet loss, such as 1%", set: func(_ *Params, t *Topology, v string) (err error) {
		t.Loss, err = parsePercent(v)
		return err
	}, get: func(_ *Params, t *Topology) string { return fmtPercent(t.Loss) }},
	{Key: "jitter", Help: "jitter, such as 10%", set: func(_ *Params, t *Topology, v string) (err error) {
		t.Jitter, err = parsePercent(v)
		return err
	}, get: func(_ *Params, t *Topology) string { return fmtPercent(t.Jitter) }},
	durationSetting("latency.intra", "", "one-way delay inside a region",
		func(_ *Params, t *Topology) *time.Duration { return &t.Latency.Intra }),
	durationSetting("duration", "", "simulated workload time",
		func(_ *Params, t *Topology) *time.Duration { return &t.Duration }),
	durationSetting("membership.detection", "", "model mode: time until peers learn of a crash or cut",
		func(_ *Params, t *Topology) *time.Duration { return &t.Detection }),
	{Key: "workload.rate", Help: "certificate events per second, such as 50/s", set: func(_ *Params, t *Topology, v string) (err error) {
		t.Workload.Rate, err = parseRate(v)
		return err
	}, get: func(_ *Params, t *Topology) string { return strconv.FormatFloat(t.Workload.Rate, 'g', -1, 64) + "/s" }},
	durationSetting("workload.connect_delay", "", "a new certificate's client connects this long after it has it",
		func(_ *Params, t *Topology) *time.Duration { return &t.Workload.ConnectDelay }),

	// The network options (netmodel.go).
	{Key: "network.loss_model", Help: "uniform (independent per packet) or gilbert-elliott (bursts)", set: func(_ *Params, t *Topology, v string) error {
		if v != LossUniform && v != LossGilbertElliott {
			return fmt.Errorf("%q is neither uniform nor gilbert-elliott", v)
		}
		t.Net.LossModel = v
		return nil
	}, get: func(_ *Params, t *Topology) string { return t.Net.LossModel }},
	{Key: "network.loss_burst", Help: "gilbert-elliott: mean packets lost in a row", set: func(_ *Params, t *Topology, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 1) || f > 1e6 {
			return fmt.Errorf("want a number of packets in [1, 1000000], got %q", v)
		}
		t.Net.LossBurst = f
		return nil
	}, get: func(_ *Params, t *Topology) string { return strconv.FormatFloat(t.Net.LossBurst, 'g', -1, 64) }},
	{Key: "network.jitter_model", Help: "uniform or pareto (heavy tail, same mean)", set: func(_ *Params, t *Topology, v string) error {
		if v != JitterUniform && v != JitterPareto {
			return fmt.Errorf("%q is neither uniform nor pareto", v)
		}
		t.Net.JitterModel = v
		return nil
	}, get: func(_ *Params, t *Topology) string { return t.Net.JitterModel }},
	{Key: "network.jitter_alpha", Help: "pareto: tail index, > 1 (smaller: heavier tail)", set: func(_ *Params, t *Topology, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 1) || f > 100 {
			return fmt.Errorf("want a tail index in (1, 100], got %q", v)
		}
		t.Net.JitterAlpha = f
		return nil
	}, get: func(_ *Params, t *Topology) string { return strconv.FormatFloat(t.Net.JitterAlpha, 'g', -1, 64) }},
	{Key: "network.bandwidth", Help: "each node's egress link, such as 100Mbit/s; 0: unlimited", set: func(_ *Params, t *Topology, v string) (err error) {
		t.Net.Bandwidth, err = parseBandwidth(v)
		return err
	}, get: func(_ *Params, t *Topology) string { return fmtBandwidth(t.Net.Bandwidth) }},
	{Key: "network.queue", Help: "bytes an egress queue holds before it drops datagrams, such as 1MB; 0: unbounded", set: func(_ *Params, t *Topology, v string) (err error) {
		t.Net.Queue, err = parseBytes(v)
		return err
	}, get: func(_ *Params, t *Topology) string { return fmtBytes(t.Net.Queue) }},

	// mesh: gossip.Config.
	intSetting("mesh.fanout", "mesh", "children per node in a region tree (gossip.Config.Fanout)", 1, 1024,
		func(p *Params) *int { return &p.Mesh.Fanout }),
	intSetting("mesh.trees", "mesh", "trees per region, every node one copy per eager tree", 1, 4,
		func(p *Params) *int { return &p.Mesh.Trees }),
	intSetting("mesh.eager_trees", "mesh", "trees that carry the records; the others are lazy", 1, 4,
		func(p *Params) *int { return &p.Mesh.EagerTrees }),
	durationSetting("mesh.lazy_delay", "mesh", "a lazy tree's wait before pulling announced dots",
		func(p *Params, _ *Topology) *time.Duration { return &p.Mesh.LazyDelay }),
	durationSetting("mesh.repair_delay", "mesh", "a gap's wait for a reordered packet before it is asked for",
		func(p *Params, _ *Topology) *time.Duration { return &p.Mesh.RepairDelay }),
	positiveDurationSetting("mesh.repair_timeout", "mesh", "before a repair is asked again",
		func(p *Params) *time.Duration { return &p.Mesh.RepairTimeout }),
	positiveDurationSetting("mesh.want_timeout", "mesh", "one wave of a router's pull",
		func(p *Params) *time.Duration { return &p.Mesh.WantTimeout }),
	positiveDurationSetting("mesh.anti_entropy_interval", "mesh", "one anti-entropy sync with one peer every this",
		func(p *Params) *time.Duration { return &p.Mesh.AntiEntropyInterval }),

	// gossip: memberlist and Serf.
	positiveDurationSetting("gossip.interval", "gossip", "memberlist GossipInterval",
		func(p *Params) *time.Duration { return &p.Gossip.Interval }),
	intSetting("gossip.nodes", "gossip", "memberlist GossipNodes: peers per round", 1, 1000,
		func(p *Params) *int { return &p.Gossip.Nodes }),
	intSetting("gossip.retransmit_mult", "gossip", "memberlist RetransmitMult", 1, 1000,
		func(p *Params) *int { return &p.Gossip.RetransmitMult }),
	positiveDurationSetting("gossip.push_pull_interval", "gossip", "push-pull with one random peer every this",
		func(p *Params) *time.Duration { return &p.Gossip.PushPullInterval }),

	// raft.
	{Key: "raft.leader", Strategy: "raft", Help: "the leader while it qualifies: a controller or a region",
		set: func(p *Params, t *Topology, v string) error {
			if _, err := t.raftLeader(v); err != nil {
				return err
			}
			p.Raft.Leader = v
			return nil
		}, get: func(p *Params, t *Topology) string {
			if p.Raft.Leader == "" && len(t.Regions) > 0 {
				for _, r := range t.Regions {
					if r.Controllers > 0 {
						return "controller/" + r.Name + "/0"
					}
				}
			}
			return p.Raft.Leader
		}},
	{Key: "raft.reconnect", Strategy: "raft", Help: "how streams get through a partition: hashicorp, etcd or tcp (resets the other raft.* transport settings to its defaults)",
		set: func(p *Params, _ *Topology, v string) error {
			switch v {
			case ReconnectTCP, ReconnectHashicorp, ReconnectEtcd:
				p.Raft.Reconnect = defaultReconnect(v)
				return nil
			}
			return fmt.Errorf("%q is none of hashicorp, etcd, tcp", v)
		}, get: func(p *Params, _ *Topology) string { return p.Raft.Reconnect.Kind }},
	reconnectSetting("raft.rpc_timeout", "hashicorp: RPC and dial timeout; etcd: read timeout of a stream",
		func(rp *ReconnectPolicy) *time.Duration { return &rp.Timeout }, ReconnectHashicorp, ReconnectEtcd),
	reconnectSetting("raft.backoff_base", "hashicorp: wait after a failed RPC (failureWait)",
		func(rp *ReconnectPolicy) *time.Duration { return &rp.BackoffBase }, ReconnectHashicorp),
	reconnectSetting("raft.backoff_max", "hashicorp: longest wait after failed RPCs",
		func(rp *ReconnectPolicy) *time.Duration { return &rp.BackoffMax }, ReconnectHashicorp),
	reconnectSetting("raft.redial_interval", "etcd: time between two dials of a broken stream",
		func(rp *ReconnectPolicy) *time.Duration { return &rp.RedialInterval }, ReconnectEtcd),
}

func lookupSetting(key string) (Setting, bool) {
	for _, s := range settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

func settingKeys(strategy string) string {
	var keys []string
	for _, s := range settings {
		if strategy == "*" || s.Strategy == strategy {
			keys = append(keys, s.Key)
		}
	}
	return strings.Join(keys, ", ")
}

// Apply sets key to value in p, or in t for the topology's settings; t
// must be a copy the caller owns. The error names neither the key nor its
// source: the caller adds them.
func (s Setting) Apply(p *Params, t *Topology, value string) error {
	return s.set(p, t, strings.TrimSpace(value))
}

// Value returns the setting's current value, formatted as it is given.
func (s Setting) Value(p *Params, t *Topology) string { return s.get(p, t) }

// ApplySetting sets key=value; an unknown key is an error that lists the
// known ones.
func ApplySetting(p *Params, t *Topology, key, value string) error {
	s, ok := lookupSetting(key)
	if !ok {
		return fmt.Errorf("unknown setting %q (settings: %s)", key, settingKeys("*"))
	}
	if err := s.Apply(p, t, value); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// SettingValues returns every setting's value, for the report.
func SettingValues(p *Params, t *Topology) map[string]string {
	out := make(map[string]string, len(settings))
	for _, s := range settings {
		out[s.Key] = s.get(p, t)
	}
	return out
}

func intSetting(key, strategy, help string, lo, hi int, field func(*Params) *int) Setting {
	return Setting{Key: key, Strategy: strategy, Help: help,
		set: func(p *Params, _ *Topology, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want an integer, got %q", v)
			}
			if n < lo || n > hi {
				return fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
			}
			*field(p) = n
			return nil
		}, get: func(p *Params, _ *Topology) string { return strconv.Itoa(*field(p)) }}
}

func durationSetting(key, strategy, help string, field func(*Params, *Topology) *time.Duration) Setting {
	return Setting{Key: key, Strategy: strategy, Help: help,
		set: func(p *Params, t *Topology, v string) error {
			d, err := parseDurationValue(v)
			if err != nil {
				return err
			}
			*field(p, t) = d
			return nil
		}, get: func(p *Params, t *Topology) string { return field(p, t).String() }}
}

func positiveDurationSetting(key, strategy, help string, field func(*Params) *time.Duration) Setting {
	return Setting{Key: key, Strategy: strategy, Help: help,
		set: func(p *Params, _ *Topology, v string) error {
			d, err := parseDurationValue(v)
			if err != nil {
				return err
			}
			if d <= 0 {
				return fmt.Errorf("%s must be positive", v)
			}
			*field(p) = d
			return nil
		}, get: func(p *Params, _ *Topology) string { return field(p).String() }}
}

// reconnectSetting is a raft transport setting that applies to the given
// reconnect policies only.
func reconnectSetting(key, help string, field func(*ReconnectPolicy) *time.Duration, kinds ...string) Setting {
	return Setting{Key: key, Strategy: "raft", Help: help,
		set: func(p *Params, _ *Topology, v string) error {
			if !slices.Contains(kinds, p.Raft.Reconnect.Kind) {
				return fmt.Errorf("applies to raft.reconnect %s, not %s", strings.Join(kinds, " or "), p.Raft.Reconnect.Kind)
			}
			d, err := parseDurationValue(v)
			if err != nil {
				return err
			}
			if d <= 0 {
				return fmt.Errorf("%s must be positive", v)
			}
			*field(&p.Raft.Reconnect) = d
			return nil
		}, get: func(p *Params, _ *Topology) string {
			if !slices.Contains(kinds, p.Raft.Reconnect.Kind) {
				return ""
			}
			return field(&p.Raft.Reconnect).String()
		}}
}

func parseDurationValue(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("want a duration such as 5ms or 10s, got %q", v)
	case d < 0:
		return 0, fmt.Errorf("negative duration %s", v)
	case d > maxDuration:
		return 0, fmt.Errorf("%s is longer than %v", v, maxDuration)
	}
	return d, nil
}

func parsePercent(v string) (float64, error) {
	num, isPct := strings.CutSuffix(strings.TrimSpace(v), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (!isPct && f != 0) {
		return 0, fmt.Errorf("want a percentage such as 10%%, got %q", v)
	}
	return f / 100, nil
}

func fmtPercent(f float64) string { return strconv.FormatFloat(pct(f), 'g', -1, 64) + "%" }

func parseRate(v string) (float64, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(v), "/")
	per := 1.0
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
		case "m":
			per = 60
		case "h":
			per = 3600
		default:
			return 0, fmt.Errorf("want a rate such as 50/s, got %q", v)
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want a rate such as 50/s, got %q", v)
	}
	return f / per, nil
}

// parseParameters applies a topology file's parameters section:
//
//	parameters:
//	  mesh: {fanout: 8, eager_trees: 1}
//	  gossip: {interval: 100ms}
//	  raft: {leader: eu-west, reconnect: etcd, redial_interval: 50ms}
//
// Every key must be a known setting of its strategy; raft.reconnect is
// applied before the other raft settings, whatever the file's order.
func (t *Topology) parseParameters(n *yaml.Node) error {
	if n.Kind == 0 {
		return nil
	}
	fail := func(line int, path, msg string) error {
		return fmt.Errorf("line %d: %s: %s", line, path, msg)
	}
	if n.Kind != yaml.MappingNode {
		return fail(n.Line, "parameters", "want a map of strategies (mesh, gossip, raft) to their settings")
	}
	type kv struct {
		key, path, value string
		line             int
	}
	var all []kv
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, body := n.Content[i], n.Content[i+1]
		path := "parameters." + name.Value
		if !slices.Contains([]string{"mesh", "gossip", "raft"}, name.Value) {
			return fail(name.Line, path, "unknown strategy (parameters are given for mesh, gossip, raft; loss, jitter and the workload have their own keys)")
		}
		if body.Kind != yaml.MappingNode {
			return fail(body.Line, path, "want a map of settings, such as {fanout: 8}")
		}
		for j := 0; j+1 < len(body.Content); j += 2 {
			k, v := body.Content[j], body.Content[j+1]
			key := name.Value + "." + k.Value
			if _, ok := lookupSetting(key); !ok {
				return fail(k.Line, path+"."+k.Value, fmt.Sprintf("unknown %s parameter (%s parameters: %s)", name.Value, name.Value, settingKeys(name.Value)))
			}
			if v.Kind != yaml.ScalarNode {
				return fail(v.Line, path+"."+k.Value, "want a single value")
			}
			all = append(all, kv{key, path + "." + k.Value, v.Value, v.Line})
		}
	}
	slices.SortStableFunc(all, func(a, b kv) int {
		return cmpBool(b.key == "raft.reconnect", a.key == "raft.reconnect")
	})
	for _, s := range all {
		set, _ := lookupSetting(s.key)
		if err := set.Apply(&t.Params, t, s.value); err != nil {
			return fail(s.line, s.path, err.Error())
		}
	}
	if err := t.Params.Validate(t); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	return nil
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
