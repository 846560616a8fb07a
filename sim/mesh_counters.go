package sim

// Counters implements strategyCounter: what the node's gossip core held,
// dropped, pulled and repaired (gossip.Core.Stats). A core restarted after
// a crash counts from its restart.
func (n *meshNode) Counters(add func(name string, v int64)) {
	add("held_at_end", int64(n.core.HeldCount()))
	st := n.core.Stats()
	add("repairs", int64(st.Repairs))
	for reason, v := range st.Rejected {
		add("rejected_"+reason, int64(v))
	}
	for result, v := range st.Pulls {
		add("pulls_"+result, int64(v))
	}
	n.cpuCounters(add)
}
