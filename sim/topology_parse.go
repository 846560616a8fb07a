package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

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
			Policy yaml.Node `yaml:"policy"`
		} `yaml:"mix"`
		ConnectDelay yaml.Node `yaml:"connect_delay"`
	} `yaml:"workload"`
	Faults     []rawFault `yaml:"faults"`
	Clocks     []rawClock `yaml:"clocks"`
	Parameters yaml.Node  `yaml:"parameters"`
	Network    struct {
		LossModel   yaml.Node `yaml:"loss_model"`
		LossBurst   yaml.Node `yaml:"loss_burst"`
		JitterModel yaml.Node `yaml:"jitter_model"`
		JitterAlpha yaml.Node `yaml:"jitter_alpha"`
		Bandwidth   yaml.Node `yaml:"bandwidth"`
		Queue       yaml.Node `yaml:"queue"`
	} `yaml:"network"`
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
		Duration:  p.duration("duration", &raw.Duration, defaultDuration),
		Jitter:    p.percent("jitter", &raw.Jitter, 0),
		Loss:      p.percent("loss", &raw.Loss, 0),
		Detection: p.duration("membership.detection", &raw.Membership.Detection, defaultDetection),
	}
	t.Latency.Intra = p.duration("latency.intra", &raw.Latency.Intra, defaultIntra)
	t.Net = defaultNetModel()
	for _, f := range []struct {
		key string
		n   *yaml.Node
	}{{"network.loss_model", &raw.Network.LossModel}, {"network.loss_burst", &raw.Network.LossBurst},
		{"network.jitter_model", &raw.Network.JitterModel}, {"network.jitter_alpha", &raw.Network.JitterAlpha},
		{"network.bandwidth", &raw.Network.Bandwidth}, {"network.queue", &raw.Network.Queue}} {
		if v, ok := p.scalar(f.key, f.n); ok {
			s, _ := lookupSetting(f.key)
			if err := s.Apply(nil, t, v); err != nil {
				p.fail(f.key, f.n, err.Error())
			}
		}
	}
	w := &raw.Workload
	t.Workload = Workload{
		Rate:         p.rate("workload.rate", &w.Rate, defaultRate),
		Issue:        p.float("workload.mix.issue", &w.Mix.Issue, 70),
		Rotate:       p.float("workload.mix.rotate", &w.Mix.Rotate, 20),
		Revoke:       p.float("workload.mix.revoke", &w.Mix.Revoke, 10),
		Policy:       p.float("workload.mix.policy", &w.Mix.Policy, 0),
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
	t.Params = DefaultParams()
	if err := t.parseParameters(&raw.Parameters); err != nil {
		return nil, err
	}
	return t, nil
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
	v, err := parseRate(s)
	if err != nil {
		p.fail(path, n, err.Error())
		return 0
	}
	return v
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
