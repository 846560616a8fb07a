package sim

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Topology is a parsed and validated topology file (SPEC.md section 5). It is
// immutable once returned by ParseTopology, LoadTopology or DefaultTopology.
//
// Beyond SPEC.md section 5, a file may give (every SPEC file parses as before):
//
//	clocks:                              # wall-clock offsets; every other node's clock is exact
//	  - {node: controller/eu-west/0, offset: 3s}
//	  - {node: controller/us-east/0, offset: -3s}
//	faults:
//	  - {at: 10s, partition: [[a], [b]], for: 2s, repeat: 5, every: 6s}  # a flapping link
//	  - {at: 60s, crash: controller/*, for: 10s}                          # every controller at once
//
// A fault with repeat: N (default 1) happens N times, starting every
// `every` (which must be longer than `for`, so that it heals in between).
// A crash may name a node or a wildcard: controller/*, router/*,
// controller/<region>/* or router/<region>/*, one crash per matching node.
// Faults holds the expanded schedule, so that code reading it needs to know
// neither; errors still name the file's entry (faults[i]).
type Topology struct {
	Name     string        // report name; defaults to the file's base name
	Seed     int64         // default seed of a run; --seed overrides it
	Duration time.Duration // simulated workload time; a quiet drain follows
	Regions  []Region      // in file order; node ids follow this order
	Latency  Latency
	Jitter   float64 // fraction: each packet's one-way delay is multiplied by uniform(1, 1+Jitter)
	Loss     float64 // fraction in [0, 1): independent per packet
	// Detection is how long, in model mode, until a node learns that a peer
	// crashed or was cut off by a partition (membership.detection, default 2s).
	Detection time.Duration
	Workload  Workload
	// Faults is the fault schedule: the file's entries in order, each
	// expanded into the faults it stands for (repeat, crash wildcards).
	Faults []Fault
	// Clocks lists the nodes whose wall clock is off (clocks); a node not
	// listed has an exact clock. Strategies that model clocks (mesh) shift
	// the wall time each node sees by its offset; the baselines ignore it.
	Clocks []ClockSkew

	// faultEntry[i] is the index, in the file's faults list, of the entry
	// that Faults[i] comes from; nil for a topology not parsed from a file.
	faultEntry []int
}

// ClockSkew is a node whose wall clock is off by Offset: it reads virtual
// time + Offset (negative: behind).
type ClockSkew struct {
	Node   string // such as "controller/eu-west/0"
	Offset time.Duration
}

// Region is one region of a topology.
type Region struct {
	Name        string
	Controllers int
	Routers     int
	Location    *Location // nil when absent
}

// Location is a point on Earth in degrees.
type Location struct {
	Lat, Lon float64
}

// Latency holds the one-way base delays of a topology.
type Latency struct {
	Intra time.Duration // one-way inside a region; default 1ms
	Links []Link        // explicit one-way delays between regions
}

// Link is an explicit one-way delay between two regions, both ways.
type Link struct {
	A, B   string
	OneWay time.Duration
}

// Workload is the certificate workload of a run.
type Workload struct {
	Rate         float64       // certificate events per second over all controllers; default 50
	Issue        float64       // weights of the mix; default 70/20/10
	Rotate       float64       //
	Revoke       float64       //
	ConnectDelay time.Duration // a new cert's client connects this long after it has its cert
}

// Fault is one fault of the schedule: a partition or a crash from At for
// For. A file entry with repeat or a crash wildcard stands for several.
type Fault struct {
	At, For time.Duration
	// Partition lists groups of region names; traffic between nodes of
	// different groups is blocked both ways. A region listed in no group is
	// cut off from nobody. Nil for a crash.
	Partition [][]string
	// Crash names the crashed node, such as "router/us-east/7"; empty for a
	// partition. A crashed node neither sends nor receives; it restarts at
	// At+For.
	Crash string
}

// End returns the time at which the fault heals.
func (f Fault) End() time.Duration { return f.At + f.For }

// Defaults of fields a topology file may omit.
const (
	DefaultDetection = 2 * time.Second      // membership.detection
	DefaultIntra     = time.Millisecond     // latency.intra
	DefaultDuration  = 60 * time.Second     // duration
	DefaultRate      = 50.0                 // workload.rate, events per second
	maxJitter        = 10.0                 // 1000%: beyond this a "jitter" is a typo
	maxFaults        = 100000               // faults after expansion (repeat, wildcards): bounds memory on any input
	maxDuration      = 24 * time.Hour       // upper bound of any duration in a topology
	earthRadiusKm    = 6371.0               // mean radius, for great-circle distances
	rttBase          = 4 * time.Millisecond // RTT = 4ms + km/75 (fly.io's Corrosion simulator)
	kmPerRTTms       = 75.0                 //
)

//go:embed default.yaml
var defaultTopologyYAML []byte

// DefaultTopologyYAML returns the text of the built-in default topology
// (SPEC.md section 1).
func DefaultTopologyYAML() []byte { return bytes.Clone(defaultTopologyYAML) }

// DefaultTopology returns the built-in default topology of SPEC.md section 1:
// three regions of one controller and 100 routers, no faults.
func DefaultTopology() *Topology {
	t, err := ParseTopology("default", defaultTopologyYAML)
	if err != nil {
		panic("sim: built-in default topology: " + err.Error())
	}
	return t
}

// LoadTopology reads and validates the topology file at path.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: topology: %w", err)
	}
	return ParseTopology(path, data)
}

// ParseTopology parses and validates a topology file's contents. file names
// the source in errors and gives the default name.
func ParseTopology(file string, data []byte) (*Topology, error) {
	t, err := parseTopology(file, data)
	if err != nil {
		return nil, fmt.Errorf("sim: topology %s: %w", file, err)
	}
	return t, nil
}

// raw* mirror the file; scalars stay yaml.Nodes so that every error can name
// its field and line.
type rawTopology struct {
	Name       yaml.Node   `yaml:"name"`
	Seed       yaml.Node   `yaml:"seed"`
	Duration   yaml.Node   `yaml:"duration"`
	Regions    []rawRegion `yaml:"regions"`
	Latency    rawLatency  `yaml:"latency"`
	Jitter     yaml.Node   `yaml:"jitter"`
	Loss       yaml.Node   `yaml:"loss"`
	Membership struct {
		Detection yaml.Node `yaml:"detection"`
	} `yaml:"membership"`
	Workload struct {
		Rate yaml.Node `yaml:"rate"`
		Mix  struct {
			Issue  yaml.Node `yaml:"issue"`
			Rotate yaml.Node `yaml:"rotate"`
			Revoke yaml.Node `yaml:"revoke"`
		} `yaml:"mix"`
		ConnectDelay yaml.Node `yaml:"connect_delay"`
	} `yaml:"workload"`
	Faults []rawFault `yaml:"faults"`
	Clocks []rawClock `yaml:"clocks"`
}

type rawClock struct {
	Node   yaml.Node `yaml:"node"`
	Offset yaml.Node `yaml:"offset"`
	line   int
}

func (c *rawClock) UnmarshalYAML(n *yaml.Node) error {
	type plain rawClock
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = rawClock(p)
	c.line = n.Line
	return nil
}

type rawRegion struct {
	Name        yaml.Node `yaml:"name"`
	Controllers yaml.Node `yaml:"controllers"`
	Routers     yaml.Node `yaml:"routers"`
	Location    *struct {
		Lat yaml.Node `yaml:"lat"`
		Lon yaml.Node `yaml:"lon"`
	} `yaml:"location"`
}

type rawLatency struct {
	Intra yaml.Node   `yaml:"intra"`
	Links []yaml.Node `yaml:"links"`
}

type rawFault struct {
	At        yaml.Node `yaml:"at"`
	For       yaml.Node `yaml:"for"`
	Partition yaml.Node `yaml:"partition"`
	Crash     yaml.Node `yaml:"crash"`
	Repeat    yaml.Node `yaml:"repeat"`
	Every     yaml.Node `yaml:"every"`
	line      int
}

func (f *rawFault) UnmarshalYAML(n *yaml.Node) error {
	type plain rawFault
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*f = rawFault(p)
	f.line = n.Line
	return nil
}

func parseTopology(file string, data []byte) (*Topology, error) {
	var raw rawTopology
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, oneLineYAMLError(err)
	}
	p := &fieldParser{}
	t := &Topology{
		Name:      p.str("name", &raw.Name, strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))),
		Seed:      p.i64("seed", &raw.Seed, 1),
		Duration:  p.duration("duration", &raw.Duration, DefaultDuration),
		Jitter:    p.percent("jitter", &raw.Jitter, 0),
		Loss:      p.percent("loss", &raw.Loss, 0),
		Detection: p.duration("membership.detection", &raw.Membership.Detection, DefaultDetection),
	}
	t.Latency.Intra = p.duration("latency.intra", &raw.Latency.Intra, DefaultIntra)
	w := &raw.Workload
	t.Workload = Workload{
		Rate:         p.rate("workload.rate", &w.Rate, DefaultRate),
		Issue:        p.float("workload.mix.issue", &w.Mix.Issue, 70),
		Rotate:       p.float("workload.mix.rotate", &w.Mix.Rotate, 20),
		Revoke:       p.float("workload.mix.revoke", &w.Mix.Revoke, 10),
		ConnectDelay: p.duration("workload.connect_delay", &w.ConnectDelay, 0),
	}
	for i := range raw.Regions {
		r := &raw.Regions[i]
		path := fmt.Sprintf("regions[%d]", i)
		reg := Region{
			Name:        p.str(path+".name", &r.Name, ""),
			Controllers: p.integer(path+".controllers", &r.Controllers, 0),
			Routers:     p.integer(path+".routers", &r.Routers, 0),
		}
		if r.Location != nil {
			reg.Location = &Location{
				Lat: p.float(path+".location.lat", &r.Location.Lat, math.NaN()),
				Lon: p.float(path+".location.lon", &r.Location.Lon, math.NaN()),
			}
		}
		t.Regions = append(t.Regions, reg)
	}
	for i := range raw.Latency.Links {
		n := &raw.Latency.Links[i]
		path := fmt.Sprintf("latency.links[%d]", i)
		if n.Kind != yaml.SequenceNode || len(n.Content) != 3 {
			p.fail(path, n, "want [region, region, one-way delay], such as [us-east, eu-west, 40ms]")
			continue
		}
		t.Latency.Links = append(t.Latency.Links, Link{
			A:      p.str(path+"[0]", n.Content[0], ""),
			B:      p.str(path+"[1]", n.Content[1], ""),
			OneWay: p.duration(path+"[2]", n.Content[2], 0),
		})
	}
	for i := range raw.Faults {
		f := &raw.Faults[i]
		path := fmt.Sprintf("faults[%d]", i)
		fault := Fault{
			At:    p.duration(path+".at", &f.At, -1),
			For:   p.duration(path+".for", &f.For, -1),
			Crash: p.str(path+".crash", &f.Crash, ""),
		}
		if f.At.Kind == 0 {
			p.failLine(path+".at", f.line, "required")
		}
		if f.For.Kind == 0 {
			p.failLine(path+".for", f.line, "required (how long the fault lasts)")
		} else if fault.For == 0 {
			p.fail(path+".for", &f.For, "must be positive")
		}
		if f.Partition.Kind != 0 {
			if err := f.Partition.Decode(&fault.Partition); err != nil {
				p.fail(path+".partition", &f.Partition, "want a list of groups of regions, such as [[us-east], [eu-west, ap-southeast]]")
			}
		}
		switch {
		case f.Partition.Kind != 0 && f.Crash.Kind != 0:
			p.failLine(path, f.line, "has both partition and crash; give one per fault")
		case f.Partition.Kind == 0 && f.Crash.Kind == 0:
			p.failLine(path, f.line, "needs partition or crash")
		}
		repeat := p.integer(path+".repeat", &f.Repeat, 1)
		every := p.duration(path+".every", &f.Every, 0)
		switch {
		case repeat < 1:
			p.fail(path+".repeat", &f.Repeat, fmt.Sprintf("%d must be at least 1", repeat))
		case repeat > 1 && f.Every.Kind == 0:
			p.failLine(path+".every", f.line, "required with repeat (the time from one start to the next)")
		case repeat == 1 && f.Every.Kind != 0:
			p.fail(path+".every", &f.Every, "needs repeat of 2 or more")
		case repeat > 1 && every <= fault.For:
			p.fail(path+".every", &f.Every, fmt.Sprintf("%v must be longer than for (%v), so that the fault heals between repeats", every, fault.For))
		case repeat > 1 && (fault.At+fault.For+time.Duration(repeat-1)*every > maxDuration || int64(repeat-1) > int64(maxDuration/max(every, 1))):
			p.fail(path+".repeat", &f.Repeat, fmt.Sprintf("%d repeats every %v end after %v", repeat, every, maxDuration))
		}
		crashes := []string{fault.Crash}
		if strings.Contains(fault.Crash, "*") {
			var err error
			if crashes, err = t.expandCrash(fault.Crash); err != nil {
				p.fail(path+".crash", &f.Crash, err.Error())
			}
		}
		if p.err != nil {
			continue
		}
		if n := len(t.Faults) + repeat*len(crashes); n > maxFaults || repeat > maxFaults {
			p.failLine(path, f.line, fmt.Sprintf("expands the schedule to more than %d faults", maxFaults))
			continue
		}
		for k := range repeat {
			for _, name := range crashes {
				g := fault
				g.At += time.Duration(k) * every
				g.Crash = name
				t.Faults = append(t.Faults, g)
				t.faultEntry = append(t.faultEntry, i)
			}
		}
	}
	for i := range raw.Clocks {
		c := &raw.Clocks[i]
		path := fmt.Sprintf("clocks[%d]", i)
		if c.Node.Kind == 0 {
			p.failLine(path+".node", c.line, "required, such as controller/eu-west/0")
		}
		if c.Offset.Kind == 0 {
			p.failLine(path+".offset", c.line, "required, such as 3s or -500ms")
		}
		t.Clocks = append(t.Clocks, ClockSkew{
			Node:   p.str(path+".node", &c.Node, ""),
			Offset: p.signedDuration(path+".offset", &c.Offset),
		})
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// Validate checks the topology's values and their consistency. The error
// names the field at fault.
func (t *Topology) Validate() error {
	if t.Duration <= 0 || t.Duration > maxDuration {
		return fmt.Errorf("duration: %v is out of range (0, %v]", t.Duration, maxDuration)
	}
	if len(t.Regions) == 0 {
		return errors.New("regions: at least one region is required")
	}
	controllers := 0
	index := make(map[string]int, len(t.Regions))
	for i, r := range t.Regions {
		path := fmt.Sprintf("regions[%d]", i)
		switch {
		case r.Name == "":
			return fmt.Errorf("%s.name: required", path)
		case strings.ContainsAny(r.Name, "/ \t\n"):
			return fmt.Errorf("%s.name: %q must not contain '/' or spaces", path, r.Name)
		case r.Controllers < 0:
			return fmt.Errorf("%s.controllers: %d is negative", path, r.Controllers)
		case r.Routers < 0:
			return fmt.Errorf("%s.routers: %d is negative", path, r.Routers)
		}
		if j, dup := index[r.Name]; dup {
			return fmt.Errorf("%s.name: %q already names regions[%d]", path, r.Name, j)
		}
		index[r.Name] = i
		if l := r.Location; l != nil {
			if !(l.Lat >= -90 && l.Lat <= 90) {
				return fmt.Errorf("%s.location.lat: %v is not in [-90, 90]", path, l.Lat)
			}
			if !(l.Lon >= -180 && l.Lon <= 180) {
				return fmt.Errorf("%s.location.lon: %v is not in [-180, 180]", path, l.Lon)
			}
		}
		controllers += r.Controllers
	}
	if controllers == 0 {
		return errors.New("regions: at least one region needs a controller")
	}
	if t.Latency.Intra < 0 {
		return fmt.Errorf("latency.intra: %v is negative", t.Latency.Intra)
	}
	seen := make(map[[2]int]int)
	for i, l := range t.Latency.Links {
		path := fmt.Sprintf("latency.links[%d]", i)
		a, okA := index[l.A]
		b, okB := index[l.B]
		switch {
		case !okA:
			return fmt.Errorf("%s: unknown region %q (regions: %s)", path, l.A, t.regionList())
		case !okB:
			return fmt.Errorf("%s: unknown region %q (regions: %s)", path, l.B, t.regionList())
		case a == b:
			return fmt.Errorf("%s: links %q to itself; use latency.intra", path, l.A)
		case l.OneWay < 0:
			return fmt.Errorf("%s: negative latency %v", path, l.OneWay)
		}
		key := [2]int{min(a, b), max(a, b)}
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%s: %s-%s is already given by latency.links[%d]", path, l.A, l.B, j)
		}
		seen[key] = i
	}
	for a := range t.Regions {
		for b := a + 1; b < len(t.Regions); b++ {
			if _, ok := seen[[2]int{a, b}]; ok {
				continue
			}
			for _, r := range []int{a, b} {
				if t.Regions[r].Location == nil {
					return fmt.Errorf("latency.links: no link between %s and %s, and regions[%d] (%s) has no location to derive it from",
						t.Regions[a].Name, t.Regions[b].Name, r, t.Regions[r].Name)
				}
			}
		}
	}
	if t.Jitter < 0 || t.Jitter > maxJitter {
		return fmt.Errorf("jitter: %v%% is out of range [0%%, %v%%]", pct(t.Jitter), pct(maxJitter))
	}
	if t.Loss < 0 || t.Loss >= 1 {
		return fmt.Errorf("loss: %v%% is out of range [0%%, 100%%)", pct(t.Loss))
	}
	if t.Detection < 0 {
		return fmt.Errorf("membership.detection: %v is negative", t.Detection)
	}
	w := t.Workload
	switch {
	case !(w.Rate >= 0) || w.Rate > 1e6:
		return fmt.Errorf("workload.rate: %v/s is out of range [0, 1000000]", w.Rate)
	case w.Issue < 0:
		return fmt.Errorf("workload.mix.issue: %v is negative", w.Issue)
	case w.Rotate < 0:
		return fmt.Errorf("workload.mix.rotate: %v is negative", w.Rotate)
	case w.Revoke < 0:
		return fmt.Errorf("workload.mix.revoke: %v is negative", w.Revoke)
	case w.Issue <= 0 && w.Rate > 0:
		return errors.New("workload.mix.issue: must be positive (rotations and revocations need issued sessions)")
	case w.ConnectDelay < 0:
		return fmt.Errorf("workload.connect_delay: %v is negative", w.ConnectDelay)
	}
	crashes := make(map[string][]int) // node -> indexes of its crash faults
	for i, f := range t.Faults {
		path := t.faultPath(i)
		if f.At < 0 {
			return fmt.Errorf("%s.at: %v is negative", path, f.At)
		}
		if f.For <= 0 {
			return fmt.Errorf("%s.for: %v must be positive", path, f.For)
		}
		if (f.Crash == "") == (f.Partition == nil) {
			return fmt.Errorf("%s: needs exactly one of partition or crash", path)
		}
		if f.Crash != "" {
			if _, _, _, err := t.parseNodeName(f.Crash); err != nil {
				return fmt.Errorf("%s.crash: %w", path, err)
			}
			for _, j := range crashes[f.Crash] {
				if g := t.Faults[j]; f.At < g.End() && g.At < f.End() {
					return fmt.Errorf("%s.crash: %s is already crashed then by %s", path, f.Crash, t.faultPath(j))
				}
			}
			crashes[f.Crash] = append(crashes[f.Crash], i)
			continue
		}
		if len(f.Partition) < 2 {
			return fmt.Errorf("%s.partition: needs at least two groups", path)
		}
		in := make(map[string]bool)
		for g, group := range f.Partition {
			if len(group) == 0 {
				return fmt.Errorf("%s.partition[%d]: empty group", path, g)
			}
			for _, name := range group {
				if _, ok := index[name]; !ok {
					return fmt.Errorf("%s.partition[%d]: unknown region %q (regions: %s)", path, g, name, t.regionList())
				}
				if in[name] {
					return fmt.Errorf("%s.partition[%d]: region %q is in more than one group", path, g, name)
				}
				in[name] = true
			}
		}
	}
	skewed := make(map[string]int)
	for i, c := range t.Clocks {
		path := fmt.Sprintf("clocks[%d]", i)
		if _, _, _, err := t.parseNodeName(c.Node); err != nil {
			return fmt.Errorf("%s.node: %w", path, err)
		}
		if j, dup := skewed[c.Node]; dup {
			return fmt.Errorf("%s.node: %s already has an offset in clocks[%d]", path, c.Node, j)
		}
		skewed[c.Node] = i
		if c.Offset < -maxDuration || c.Offset > maxDuration {
			return fmt.Errorf("%s.offset: %v is out of range [-%v, %v]", path, c.Offset, maxDuration, maxDuration)
		}
	}
	return nil
}

// faultPath names Faults[i] in errors: the file's entry it comes from.
func (t *Topology) faultPath(i int) string {
	if len(t.faultEntry) == len(t.Faults) {
		i = t.faultEntry[i]
	}
	return fmt.Sprintf("faults[%d]", i)
}

// expandCrash returns the nodes a crash wildcard names: controller/*,
// router/*, controller/<region>/* or router/<region>/*.
func (t *Topology) expandCrash(pattern string) ([]string, error) {
	parts := strings.Split(pattern, "/")
	role := parts[0]
	bad := fmt.Errorf("%q: a wildcard is controller/*, router/*, controller/<region>/* or router/<region>/*", pattern)
	if (role != "controller" && role != "router") || parts[len(parts)-1] != "*" || len(parts) < 2 || len(parts) > 3 {
		return nil, bad
	}
	region := ""
	if len(parts) == 3 {
		region = parts[1]
		if strings.Contains(region, "*") {
			return nil, bad
		}
		if !slices.ContainsFunc(t.Regions, func(r Region) bool { return r.Name == region }) {
			return nil, fmt.Errorf("%q: unknown region %q (regions: %s)", pattern, region, t.regionList())
		}
	}
	total := 0
	for _, r := range t.Regions {
		if region == "" || r.Name == region {
			n := r.Controllers
			if role == "router" {
				n = r.Routers
			}
			if n < 0 || total+n > maxFaults {
				return nil, fmt.Errorf("%q matches more than %d nodes", pattern, maxFaults)
			}
			total += n
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("%q matches no node", pattern)
	}
	names := make([]string, 0, total)
	for _, r := range t.Regions {
		if region == "" || r.Name == region {
			n := r.Controllers
			if role == "router" {
				n = r.Routers
			}
			for i := range n {
				names = append(names, fmt.Sprintf("%s/%s/%d", role, r.Name, i))
			}
		}
	}
	return names, nil
}

// ClockOffset returns the offset of the named node's wall clock, 0 unless
// clocks lists it.
func (t *Topology) ClockOffset(node string) time.Duration {
	for _, c := range t.Clocks {
		if c.Node == node {
			return c.Offset
		}
	}
	return 0
}

func pct(f float64) float64 { return math.Round(f*1e6) / 1e4 }

func (t *Topology) regionList() string {
	names := make([]string, len(t.Regions))
	for i, r := range t.Regions {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

// parseNodeName resolves "controller/<region>/<i>" or "router/<region>/<i>".
func (t *Topology) parseNodeName(name string) (role Role, region, index int, err error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%q is not a node name like controller/<region>/<i> or router/<region>/<i>", name)
	}
	switch parts[0] {
	case "controller":
		role = RoleController
	case "router":
		role = RoleRouter
	default:
		return 0, 0, 0, fmt.Errorf("%q: role %q is neither controller nor router", name, parts[0])
	}
	region = -1
	for i, r := range t.Regions {
		if r.Name == parts[1] {
			region = i
		}
	}
	if region < 0 {
		return 0, 0, 0, fmt.Errorf("%q: unknown region %q (regions: %s)", name, parts[1], t.regionList())
	}
	index, convErr := strconv.Atoi(parts[2])
	count := t.Regions[region].Controllers
	if role == RoleRouter {
		count = t.Regions[region].Routers
	}
	if convErr != nil || index < 0 || index >= count || parts[2] != strconv.Itoa(index) {
		return 0, 0, 0, fmt.Errorf("%q does not exist: region %s has %d %ss (indexes 0 to %d)",
			name, parts[1], count, role, count-1)
	}
	return role, region, index, nil
}

// RegionDelay returns the one-way base delay (no jitter) between regions a
// and b, indexes into Regions: latency.intra inside a region, the explicit
// link if any, else half of RTT = 4ms + great-circle km / 75.
func (t *Topology) RegionDelay(a, b int) time.Duration {
	if a == b {
		return t.Latency.Intra
	}
	ra, rb := t.Regions[a].Name, t.Regions[b].Name
	for _, l := range t.Latency.Links {
		if (l.A == ra && l.B == rb) || (l.A == rb && l.B == ra) {
			return l.OneWay
		}
	}
	km := greatCircleKm(*t.Regions[a].Location, *t.Regions[b].Location)
	rtt := rttBase + time.Duration(km/kmPerRTTms*float64(time.Millisecond))
	return rtt / 2
}

// greatCircleKm is the haversine distance between two points.
func greatCircleKm(a, b Location) float64 {
	rad := math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h)))
}

// NumNodes returns the number of controllers and routers.
func (t *Topology) NumNodes() (controllers, routers int) {
	for _, r := range t.Regions {
		controllers += r.Controllers
		routers += r.Routers
	}
	return controllers, routers
}

// LastFaultEnd returns when the last fault heals, 0 without faults.
func (t *Topology) LastFaultEnd() time.Duration {
	var end time.Duration
	for _, f := range t.Faults {
		end = max(end, f.End())
	}
	return end
}

// fieldParser converts scalar nodes, remembering the first error.
type fieldParser struct{ err error }

func (p *fieldParser) fail(path string, n *yaml.Node, msg string) {
	p.failLine(path, n.Line, msg)
}

func (p *fieldParser) failLine(path string, line int, msg string) {
	if p.err == nil {
		if line > 0 {
			p.err = fmt.Errorf("line %d: %s: %s", line, path, msg)
		} else {
			p.err = fmt.Errorf("%s: %s", path, msg)
		}
	}
}

func (p *fieldParser) scalar(path string, n *yaml.Node) (string, bool) {
	if n.Kind == 0 {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(path, n, "want a single value")
		return "", false
	}
	return n.Value, true
}

func (p *fieldParser) str(path string, n *yaml.Node, def string) string {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	return s
}

func (p *fieldParser) i64(path string, n *yaml.Node, def int64) int64 {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.fail(path, n, fmt.Sprintf("want an integer, got %q", s))
	}
	return v
}

func (p *fieldParser) integer(path string, n *yaml.Node, def int) int {
	v := p.i64(path, n, int64(def))
	if v > math.MaxInt32 || v < math.MinInt32 {
		p.fail(path, n, fmt.Sprintf("%d is out of range", v))
	}
	return int(v)
}

func (p *fieldParser) float(path string, n *yaml.Node, def float64) float64 {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(path, n, fmt.Sprintf("want a number, got %q", s))
	}
	return v
}

// duration parses Go durations such as 1ms, 60s or 1m30s; a bare 0 is zero.
func (p *fieldParser) duration(path string, n *yaml.Node, def time.Duration) time.Duration {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(path, n, fmt.Sprintf("want a duration such as 1ms or 60s, got %q", s))
		return 0
	}
	if d < 0 {
		p.fail(path, n, fmt.Sprintf("negative duration %s", s))
	} else if d > maxDuration {
		p.fail(path, n, fmt.Sprintf("%s is longer than %v", s, maxDuration))
	}
	return d
}

// signedDuration parses a duration that may be negative, such as -3s.
func (p *fieldParser) signedDuration(path string, n *yaml.Node) time.Duration {
	s, ok := p.scalar(path, n)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(path, n, fmt.Sprintf("want a duration such as 3s or -500ms, got %q", s))
		return 0
	}
	if d < -maxDuration || d > maxDuration {
		p.fail(path, n, fmt.Sprintf("%s is out of range [-%v, %v]", s, maxDuration, maxDuration))
	}
	return d
}

// percent parses "10%" as 0.1; a bare 0 is accepted too.
func (p *fieldParser) percent(path string, n *yaml.Node, def float64) float64 {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	num, isPct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || (!isPct && v != 0) {
		p.fail(path, n, fmt.Sprintf("want a percentage such as 10%%, got %q", s))
		return 0
	}
	return v / 100
}

// rate parses "50/s", "3000/m", "100000/h", or a bare number of events per second.
func (p *fieldParser) rate(path string, n *yaml.Node, def float64) float64 {
	s, ok := p.scalar(path, n)
	if !ok {
		return def
	}
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	per := 1.0
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s":
		case "m":
			per = 60
		case "h":
			per = 3600
		default:
			p.fail(path, n, fmt.Sprintf("want a rate such as 50/s, got %q", s))
			return 0
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(path, n, fmt.Sprintf("want a rate such as 50/s, got %q", s))
		return 0
	}
	return v / per
}

// oneLineYAMLError turns yaml.v3's multi-line errors into one line without
// Go type names.
func oneLineYAMLError(err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if j := strings.Index(m, " in type sim."); j >= 0 {
			m = m[:j]
		}
		m = strings.ReplaceAll(m, "into sim.", "into ")
		msgs[i] = strings.Join(strings.Fields(m), " ")
	}
	return errors.New(strings.Join(msgs, "; "))
}
