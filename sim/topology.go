package sim

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Topology is a parsed and validated topology file (docs/meshsim-model.md). It is
// immutable once returned by ParseTopology, LoadTopology or DefaultTopology.
//
// Beyond regions, latency, workload and faults, a file may give:
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
	// Net holds the network options beyond uniform jitter and independent
	// loss (the network section, netmodel.go).
	Net NetModel
	// Params are the strategies' parameters: DefaultParams with the
	// file's parameters section applied (params.go).
	Params Params
	// Source is the file's text as read, for the report's provenance; nil
	// for a topology not parsed from a file.
	Source []byte

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
	Policy       float64       // default 0: no policy changes (policy.go)
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
	defaultDetection = 2 * time.Second      // membership.detection
	defaultIntra     = time.Millisecond     // latency.intra
	defaultDuration  = 60 * time.Second     // duration
	defaultRate      = 50.0                 // workload.rate, events per second
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
// (its --help).
func DefaultTopologyYAML() []byte { return bytes.Clone(defaultTopologyYAML) }

// DefaultTopology returns the built-in default topology (default.yaml):
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
	t.Source = bytes.Clone(data)
	return t, nil
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
