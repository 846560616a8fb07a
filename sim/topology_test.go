package sim

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultTopology(t *testing.T) {
	top := DefaultTopology()
	if top.Name != "default-three-regions" || top.Seed != 1 || top.Duration != time.Minute {
		t.Fatalf("header: %+v", top)
	}
	if c, r := top.NumNodes(); c != 3 || r != 300 {
		t.Fatalf("nodes: %d controllers, %d routers", c, r)
	}
	if top.Jitter != 0.1 || top.Loss != 0.01 || top.Latency.Intra != time.Millisecond || top.Detection != 2*time.Second {
		t.Fatalf("network: %+v", top)
	}
	if w := top.Workload; w.Rate != 50 || w.Issue != 70 || w.Rotate != 20 || w.Revoke != 10 || w.ConnectDelay != 0 {
		t.Fatalf("workload: %+v", w)
	}
	// RTT = 4ms + km/75, one-way = RTT/2: Washington-Dublin is about 5,450 km.
	d := top.RegionDelay(0, 1)
	km := greatCircleKm(*top.Regions[0].Location, *top.Regions[1].Location)
	if math.Abs(km-5450) > 100 {
		t.Errorf("us-east to eu-west: %.0f km", km)
	}
	want := (4*time.Millisecond + time.Duration(km/75*float64(time.Millisecond))) / 2
	if d != want || d < 37*time.Millisecond || d > 39*time.Millisecond {
		t.Errorf("one-way us-east to eu-west = %v, want %v (about 38ms)", d, want)
	}
	if top.RegionDelay(1, 0) != d || top.RegionDelay(2, 2) != time.Millisecond {
		t.Error("delays are not symmetric or intra is wrong")
	}
}

func TestTopologyUnits(t *testing.T) {
	top := mustTopology(t, `
name: units
duration: 1m30s
regions:
  - {name: a, controllers: 2, routers: 3}
  - {name: b, controllers: 0, routers: 1}
latency: {intra: 500us, links: [[a, b, 25ms]]}
jitter: 0
loss: 0.5%
membership: {detection: 750ms}
workload: {rate: 600/m, mix: {issue: 1, rotate: 0, revoke: 0}, connect_delay: 20ms}
faults:
  - {at: 10s, crash: controller/a/1, for: 1s}
  - {at: 20s, partition: [[a], [b]], for: 2s}
`)
	if top.Duration != 90*time.Second || top.Latency.Intra != 500*time.Microsecond || top.Loss != 0.005 ||
		top.Detection != 750*time.Millisecond || top.Workload.Rate != 10 || top.Workload.ConnectDelay != 20*time.Millisecond {
		t.Fatalf("%+v", top)
	}
	if top.RegionDelay(0, 1) != 25*time.Millisecond || top.LastFaultEnd() != 22*time.Second {
		t.Fatalf("links or faults: %v %v", top.RegionDelay(0, 1), top.LastFaultEnd())
	}
	if top.Seed != 1 {
		t.Errorf("default seed %d", top.Seed)
	}
}

func TestTopologyErrors(t *testing.T) {
	const regions = `
regions:
  - {name: us-east, controllers: 1, routers: 2, location: {lat: 38.9, lon: -77.0}}
  - {name: eu-west, controllers: 1, routers: 2, location: {lat: 53.3, lon: -6.3}}
`
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown region in link", regions + "latency: {links: [[us-east, eu-wets, 40ms]]}",
			`latency.links[0]: unknown region "eu-wets" (regions: us-east, eu-west)`},
		{"negative latency", regions + "latency: {links: [[us-east, eu-west, -5ms]]}",
			`latency.links[0][2]: negative duration -5ms`},
		{"negative intra", regions + "latency: {intra: -1ms}", `latency.intra: negative duration -1ms`},
		{"link shape", regions + "latency: {links: [[us-east, eu-west]]}", `latency.links[0]: want [region, region, one-way delay]`},
		{"duplicate link", regions + "latency: {links: [[us-east, eu-west, 1ms], [eu-west, us-east, 2ms]]}",
			`latency.links[1]: eu-west-us-east is already given by latency.links[0]`},
		{"loss 100%", regions + "loss: 100%", `loss: 100% is out of range [0%, 100%)`},
		{"loss 150%", regions + "loss: 150%", `loss: 150% is out of range`},
		{"loss without percent", regions + "loss: 0.01", `loss: want a percentage such as 10%, got "0.01"`},
		{"bad jitter", regions + "jitter: lots", `jitter: want a percentage such as 10%, got "lots"`},
		{"bad duration", regions + "duration: 60", `duration: want a duration such as 1ms or 60s, got "60"`},
		{"bad rate", regions + "workload: {rate: 50/day}", `workload.rate: want a rate such as 50/s, got "50/day"`},
		{"crash of unknown node", regions + "faults: [{at: 1s, crash: router/us-east/7, for: 1s}]",
			`faults[0].crash: "router/us-east/7" does not exist: region us-east has 2 routers (indexes 0 to 1)`},
		{"crash of unknown region", regions + "faults: [{at: 1s, crash: controller/mars/0, for: 1s}]",
			`faults[0].crash: "controller/mars/0": unknown region "mars"`},
		{"crash not a node name", regions + "faults: [{at: 1s, crash: ctrl-us, for: 1s}]",
			`faults[0].crash: "ctrl-us" is not a node name like controller/<region>/<i>`},
		{"partition of unknown region", regions + "faults: [{at: 1s, partition: [[us-east], [mars]], for: 1s}]",
			`faults[0].partition[1]: unknown region "mars"`},
		{"partition one group", regions + "faults: [{at: 1s, partition: [[us-east, eu-west]], for: 1s}]",
			`faults[0].partition: needs at least two groups`},
		{"fault without for", regions + "faults: [{at: 1s, crash: router/us-east/1}]", `faults[0].for: required`},
		{"fault with both", regions + "faults: [{at: 1s, crash: router/us-east/1, partition: [[us-east], [eu-west]], for: 1s}]",
			`faults[0]: has both partition and crash`},
		{"overlapping crashes", regions + "faults: [{at: 1s, crash: router/us-east/1, for: 5s}, {at: 7s, crash: router/us-east/1, for: 1s}, {at: 2s, crash: router/us-east/1, for: 1s}]",
			`faults[2].crash: router/us-east/1 is already crashed then by faults[0]`},
		{"missing location and link", `
regions:
  - {name: a, controllers: 1, routers: 1}
  - {name: b, controllers: 1, routers: 1, location: {lat: 0, lon: 0}}
`, `latency.links: no link between a and b, and regions[0] (a) has no location to derive it from`},
		{"duplicate region", `
regions:
  - {name: a, controllers: 1, routers: 1}
  - {name: a, controllers: 1, routers: 1}
`, `regions[1].name: "a" already names regions[0]`},
		{"no controller", "regions: [{name: a, controllers: 0, routers: 3}]", `regions: at least one region needs a controller`},
		{"no regions", "name: x", `regions: at least one region is required`},
		{"negative routers", "regions: [{name: a, controllers: 1, routers: -3}]", `regions[0].routers: -3 is negative`},
		{"bad latitude", "regions: [{name: a, controllers: 1, routers: 1, location: {lat: 91, lon: 0}}]",
			`regions[0].location.lat: 91 is not in [-90, 90]`},
		{"unknown field", regions + "latencies: {intra: 1ms}", `line 5: field latencies not found`},
		{"wrong type", regions + "workload: {mix: {issue: many}}", `workload.mix.issue: want a number, got "many"`},
		{"empty", "", "empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTopology("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "sim: topology bad.yaml: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error\n  %s\nwant one line starting with %q and containing\n  %s", msg, "sim: topology bad.yaml: ", tc.want)
			}
		})
	}
}

func TestTopologyErrorLines(t *testing.T) {
	_, err := ParseTopology("x.yaml", []byte("regions:\n  - {name: a, controllers: 1, routers: 1}\njitter: 10\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: jitter:") {
		t.Fatalf("got %v, want the line of jitter", err)
	}
}

func TestExampleTopologiesParse(t *testing.T) {
	for _, path := range exampleTopologies(t) {
		if _, err := LoadTopology(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func FuzzParseTopology(f *testing.F) {
	f.Add(DefaultTopologyYAML())
	f.Add([]byte("regions: [{name: a, controllers: 1, routers: 1}]\nfaults: [{at: 1s, crash: router/a/0, for: 1s}]"))
	f.Add([]byte("latency: {links: [[a, b, 1ms]]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := ParseTopology("fuzz.yaml", data)
		if err != nil {
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("parsed topology fails validation: %v", err)
		}
		for a := range top.Regions {
			for b := range top.Regions {
				if d := top.RegionDelay(a, b); d < 0 {
					t.Fatalf("negative delay %v", d)
				}
			}
		}
	})
}

// exampleTopologies lists the shipped example topologies.
func exampleTopologies(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("../examples/topologies/*.yaml")
	if err != nil || len(paths) < 4 {
		t.Fatalf("example topologies: %v %v", paths, err)
	}
	return paths
}
