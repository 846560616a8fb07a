package sim

import (
	"fmt"
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
		{"repeat without every", regions + "faults: [{at: 1s, partition: [[us-east], [eu-west]], for: 1s, repeat: 3}]",
			`faults[0].every: required with repeat`},
		{"every not longer than for", regions + "faults: [{at: 1s, partition: [[us-east], [eu-west]], for: 2s, repeat: 3, every: 2s}]",
			`faults[0].every: 2s must be longer than for (2s)`},
		{"every without repeat", regions + "faults: [{at: 1s, crash: router/us-east/1, for: 1s, every: 5s}]",
			`faults[0].every: needs repeat of 2 or more`},
		{"repeat zero", regions + "faults: [{at: 1s, crash: router/us-east/1, for: 1s, repeat: 0}]",
			`faults[0].repeat: 0 must be at least 1`},
		{"repeat past a day", regions + "faults: [{at: 1s, crash: router/us-east/1, for: 1s, repeat: 100000, every: 1h}]",
			`faults[0].repeat: 100000 repeats every 1h0m0s end after 24h0m0s`},
		{"repeat too many", regions + "faults: [{at: 1s, crash: router/us-east/1, for: 1ms, repeat: 2000000, every: 2ms}]",
			`faults[0]: expands the schedule to more than 100000 faults`},
		{"bad wildcard", regions + "faults: [{at: 1s, crash: controller/*/0, for: 1s}]",
			`faults[0].crash: "controller/*/0": a wildcard is controller/*, router/*, controller/<region>/* or router/<region>/*`},
		{"wildcard of unknown region", regions + "faults: [{at: 1s, crash: router/mars/*, for: 1s}]",
			`faults[0].crash: "router/mars/*": unknown region "mars"`},
		{"wildcard matching nothing", regions + "  - {name: edge, controllers: 0, routers: 1, location: {lat: 0, lon: 0}}\nfaults: [{at: 1s, crash: controller/edge/*, for: 1s}]",
			`faults[0].crash: "controller/edge/*" matches no node`},
		{"wildcard overlapping a crash", regions + "faults: [{at: 1s, crash: controller/us-east/0, for: 5s}, {at: 2s, crash: controller/*, for: 1s}]",
			`faults[1].crash: controller/us-east/0 is already crashed then by faults[0]`},
		{"clock of unknown node", regions + "clocks: [{node: controller/us-east/3, offset: 1s}]",
			`clocks[0].node: "controller/us-east/3" does not exist`},
		{"clock without offset", regions + "clocks: [{node: controller/us-east/0}]", `clocks[0].offset: required`},
		{"clock offset not a duration", regions + "clocks: [{node: controller/us-east/0, offset: 3}]",
			`clocks[0].offset: want a duration such as 3s or -500ms, got "3"`},
		{"clock listed twice", regions + "clocks: [{node: router/us-east/0, offset: 1s}, {node: router/us-east/0, offset: 2s}]",
			`clocks[1].node: router/us-east/0 already has an offset in clocks[0]`},
		{"clock offset too large", regions + "clocks: [{node: router/us-east/0, offset: -25h}]",
			`clocks[0].offset: -25h is out of range`},
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

func TestTopologyClocksAndFaultExpansion(t *testing.T) {
	top := mustTopology(t, `
regions:
  - {name: a, controllers: 2, routers: 2}
  - {name: b, controllers: 1, routers: 1}
latency: {links: [[a, b, 20ms]]}
clocks:
  - {node: controller/a/1, offset: 30s}
  - {node: router/b/0, offset: -1.5s}
faults:
  - {at: 10s, partition: [[a], [b]], for: 2s, repeat: 3, every: 5s}
  - {at: 40s, crash: controller/*, for: 4s}
  - {at: 50s, crash: router/a/*, for: 1s}
`)
	if got := top.ClockOffset("controller/a/1"); got != 30*time.Second {
		t.Errorf("controller/a/1 offset %v", got)
	}
	if got := top.ClockOffset("router/b/0"); got != -1500*time.Millisecond {
		t.Errorf("router/b/0 offset %v", got)
	}
	if got := top.ClockOffset("controller/a/0"); got != 0 {
		t.Errorf("unlisted node offset %v", got)
	}
	var got []string
	for _, f := range top.Faults {
		what := f.Crash
		if what == "" {
			what = fmt.Sprint(f.Partition)
		}
		got = append(got, fmt.Sprintf("%v+%v %s", f.At, f.For, what))
	}
	want := []string{
		"10s+2s [[a] [b]]", "15s+2s [[a] [b]]", "20s+2s [[a] [b]]",
		"40s+4s controller/a/0", "40s+4s controller/a/1", "40s+4s controller/b/0",
		"50s+1s router/a/0", "50s+1s router/a/1",
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("schedule\n  %s\nwant\n  %s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	if top.LastFaultEnd() != 51*time.Second {
		t.Errorf("last fault ends at %v", top.LastFaultEnd())
	}
	// A topology built in code has no file entries: errors name its own index.
	c := *top
	c.Faults = append([]Fault{{At: time.Second, For: time.Second, Crash: "router/z/0"}}, top.Faults...)
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "faults[0].crash:") {
		t.Errorf("validate: %v", err)
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
	f.Add([]byte("regions: [{name: a, controllers: 2, routers: 1}]\nclocks: [{node: controller/a/1, offset: -3s}]\n" +
		"faults: [{at: 1s, crash: controller/*, for: 1s, repeat: 3, every: 2s}]"))
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
