package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/certmesh/certmesh/sim"
)

// override is one --set key=value.
type override struct{ key, value string }

// parseOverride splits a --set (or one --sweep value) at its first "=".
func parseOverride(flag, s string) (override, error) {
	k, v, ok := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" || v == "" {
		return override{}, usagef("%s: %q is not key=value, such as loss=5%% or mesh.fanout=8", flag, s)
	}
	return override{k, v}, nil
}

// checkApplies refuses a setting that no strategy of the run would read:
// a mesh setting when mesh does not run, any strategy setting in live mode
// (which runs real memberlist meshes with their own configuration).
func checkApplies(flag, key string, strategies []string, mode string) error {
	s, ok := settingByKey(key)
	if !ok {
		return usagef("%s: unknown setting %q (settings: %s)", flag, key, allKeys())
	}
	switch {
	case s.Strategy == "":
		return nil
	case mode == "live":
		return usagef("%s %s: strategy parameters apply in model mode only", flag, key)
	case !slices.Contains(strategies, s.Strategy):
		return usagef("%s %s: applies to the %s strategy, which --strategy %s does not run",
			flag, key, s.Strategy, strings.Join(strategies, ","))
	}
	return nil
}

func settingByKey(key string) (sim.Setting, bool) {
	for _, s := range sim.Settings() {
		if s.Key == key {
			return s, true
		}
	}
	return sim.Setting{}, false
}

func allKeys() string {
	var keys []string
	for _, s := range sim.Settings() {
		keys = append(keys, s.Key)
	}
	return strings.Join(keys, ", ")
}

// applyOverrides returns a copy of top and of its parameters with the
// overrides applied (raft.reconnect first, since it resets the other raft
// transport settings), validated.
func applyOverrides(flag string, top *sim.Topology, params sim.Params, ovs []override) (*sim.Topology, sim.Params, error) {
	t := *top
	ordered := slices.Clone(ovs)
	slices.SortStableFunc(ordered, func(a, b override) int {
		switch {
		case a.key == b.key || (a.key != "raft.reconnect" && b.key != "raft.reconnect"):
			return 0
		case a.key == "raft.reconnect":
			return -1
		}
		return 1
	})
	for _, o := range ordered {
		if err := sim.ApplySetting(&params, &t, o.key, o.value); err != nil {
			return nil, params, usagef("%s %w", flag, err)
		}
	}
	if len(ovs) > 0 {
		if err := t.Validate(); err != nil {
			return nil, params, usagef("%s %w", flag, err)
		}
	}
	if err := params.Validate(&t); err != nil {
		return nil, params, usagef("%s %w", flag, err)
	}
	return &t, params, nil
}

// describe formats overrides as key=value, comma-separated.
func describe(ovs []override) string {
	parts := make([]string, len(ovs))
	for i, o := range ovs {
		parts[i] = fmt.Sprintf("%s=%s", o.key, o.value)
	}
	return strings.Join(parts, ",")
}

// listSettings prints every setting with its strategy, default and help.
func listSettings(w io.Writer) error {
	top := sim.DefaultTopology()
	params := sim.DefaultParams()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "setting\tapplies to\tdefault\tmeaning")
	for _, s := range sim.Settings() {
		applies := s.Strategy
		if applies == "" {
			applies = "topology"
		}
		def := s.Value(&params, top)
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Key, applies, def, s.Help)
	}
	return tw.Flush()
}
