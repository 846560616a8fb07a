package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

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
	if err := t.validatePhysical(); err != nil {
		return err
	}
	if t.Net != (NetModel{}) { // a Topology built in code may leave it zero: the defaults
		if err := t.Net.validate(); err != nil {
			return err
		}
		if b := t.Net.LossBurst; t.Net.LossModel == LossGilbertElliott && t.Loss > b/(b+1) {
			return fmt.Errorf("loss: %v%% is more than gilbert-elliott bursts of %v packets allow (%v%%)", pct(t.Loss), b, pct(b/(b+1)))
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
	case w.Policy < 0:
		return fmt.Errorf("workload.mix.policy: %v is negative", w.Policy)
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
