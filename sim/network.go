package sim

import (
	"math"
	"sort"
	"time"
)

// MaxDatagram is the largest datagram a node may send: memberlist's
// UDPBufferSize in its LAN configuration. Reliable messages are counted as
// ceil(Size/MaxDatagram) packets.
const MaxDatagram = 1400

// Stream retransmission: Linux's minimum RTO, doubling per lost attempt up
// to maxRTO; a stream blocked by a partition for longer than streamGiveUp
// (about Linux's tcp_retries2) breaks and its data is dropped.
const (
	minRTO       = 200 * time.Millisecond
	maxRTO       = 60 * time.Second
	streamGiveUp = 15 * time.Minute
)

// streamRetry returns when a stream transfer first sent at sent and blocked
// by a partition until heal gets through: at its first retransmission at or
// after heal, or never if the stream gives up first.
func streamRetry(sent, heal time.Duration) time.Duration {
	if heal == never {
		return never
	}
	t, rto := sent, minRTO
	for t < heal {
		t += rto
		rto = min(2*rto, maxRTO)
	}
	if t-sent > streamGiveUp {
		return never
	}
	return t
}

// healAt returns the first time at or after t at which no partition
// separates a and b (crashes do not count), or never.
func (n *network) healAt(a, b NodeID, t time.Duration) time.Duration {
	for k := n.segAt(t); k < len(n.segs); k++ {
		if !n.regionsCut(&n.segs[k], n.region[a], n.region[b]) {
			return max(t, n.bounds[k])
		}
	}
	return never
}

// never is a time after every run.
const never = time.Duration(math.MaxInt64)

// network holds the fault timeline of a run and answers reachability
// questions. The fault schedule is known in advance, so the timeline is cut
// into segments between fault transitions, each with the set of crashed
// nodes and the region pairs that a partition cuts.
type network struct {
	cl        *Cluster
	nR        int
	region    []int32 // node -> region, a copy of Cluster.Nodes[i].Region for locality
	detection time.Duration
	faults    []faultInfo     // in topology order
	bounds    []time.Duration // bounds[k] is where segment k starts; bounds[0] == 0
	segs      []segment
	cur       int // segment of the run's current time; advanced by evFault
}

type segment struct {
	faulty  bool     // false: nothing crashed, nothing cut
	crashed []uint64 // bitset over nodes; nil when no node is crashed
	cut     []bool   // by region pair; nil when no partition is active
}

type faultInfo struct {
	at, end time.Duration
	crash   NodeID // -1 for a partition
	group   []int8 // partition: group of each region, -1 for a region in no group
}

func newNetwork(cl *Cluster) *network {
	t := cl.Topology
	n := &network{cl: cl, nR: len(t.Regions), detection: t.Detection}
	n.region = make([]int32, len(cl.Nodes))
	for i, info := range cl.Nodes {
		n.region[i] = int32(info.Region)
	}
	times := []time.Duration{0}
	for _, f := range t.Faults {
		fi := faultInfo{at: f.At, end: f.End(), crash: -1}
		if f.Crash != "" {
			id, _ := cl.NodeByName(f.Crash) // validated by Topology.Validate
			fi.crash = id
		} else {
			fi.group = make([]int8, n.nR)
			for i := range fi.group {
				fi.group[i] = -1
			}
			for g, names := range f.Partition {
				for _, name := range names {
					for ri, r := range t.Regions {
						if r.Name == name {
							fi.group[ri] = int8(g)
						}
					}
				}
			}
		}
		n.faults = append(n.faults, fi)
		times = append(times, fi.at, fi.end)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i, tm := range times {
		if i == 0 || tm != times[i-1] {
			n.bounds = append(n.bounds, tm)
		}
	}
	words := (len(cl.Nodes) + 63) / 64
	for _, start := range n.bounds {
		var s segment
		for _, f := range n.faults {
			if f.at > start || f.end <= start {
				continue
			}
			s.faulty = true
			if f.crash >= 0 {
				if s.crashed == nil {
					s.crashed = make([]uint64, words)
				}
				s.crashed[f.crash/64] |= 1 << (uint(f.crash) % 64)
				continue
			}
			if s.cut == nil {
				s.cut = make([]bool, n.nR*n.nR)
			}
			for a := range n.nR {
				for b := range n.nR {
					if f.cuts(a, b) {
						s.cut[a*n.nR+b] = true
					}
				}
			}
		}
		n.segs = append(n.segs, s)
	}
	return n
}

// cuts reports whether partition f separates regions a and b.
func (f *faultInfo) cuts(a, b int) bool {
	return f.crash < 0 && f.group[a] >= 0 && f.group[b] >= 0 && f.group[a] != f.group[b]
}

// affects reports whether f crashes ctrl or router or cuts the path between them.
func (f *faultInfo) affects(n *network, ctrl, router NodeID) bool {
	if f.crash >= 0 {
		return f.crash == ctrl || f.crash == router
	}
	return f.cuts(int(n.region[ctrl]), int(n.region[router]))
}

// segAt returns the segment that covers time t (segment 0 for t < 0).
func (n *network) segAt(t time.Duration) int {
	k := sort.Search(len(n.bounds), func(i int) bool { return n.bounds[i] > t }) - 1
	return max(k, 0)
}

func (s *segment) isCrashed(id NodeID) bool {
	return s.crashed != nil && s.crashed[id/64]&(1<<(uint(id)%64)) != 0
}

func (n *network) regionsCut(s *segment, a, b int32) bool {
	return s.cut != nil && s.cut[int(a)*n.nR+int(b)]
}

// reachableIn reports whether a and b can exchange packets in segment k.
func (n *network) reachableIn(k int, a, b NodeID) bool {
	s := &n.segs[k]
	if !s.faulty {
		return true
	}
	return !s.isCrashed(a) && !s.isCrashed(b) && !n.regionsCut(s, n.region[a], n.region[b])
}

// cutNow reports whether a partition separates a and b at the current time.
func (n *network) cutNow(a, b NodeID) bool {
	s := &n.segs[n.cur]
	return s.cut != nil && s.cut[int(n.region[a])*n.nR+int(n.region[b])]
}

// regionCutNow reports whether a partition separates regions a and b now.
func (n *network) regionCutNow(a, b int) bool {
	return n.regionsCut(&n.segs[n.cur], int32(a), int32(b))
}

// reachableAt reports whether a and b can exchange packets at time t.
func (n *network) reachableAt(a, b NodeID, t time.Duration) bool {
	return n.reachableIn(n.segAt(t), a, b)
}

// seenUp is the oracle membership view: obs holds peer as up unless peer
// has been unreachable from obs (crashed, or cut off by a partition) for
// the whole of the last detection interval. obs's own crashes do not count:
// a restarted node learns the current membership when it rejoins.
func (n *network) seenUp(obs, peer NodeID, now time.Duration) bool {
	return n.seenUpWithin(obs, peer, now, now)
}

// seenUpWithin reports whether obs held peer as up at some time in
// [from, to].
func (n *network) seenUpWithin(obs, peer NodeID, from, to time.Duration) bool {
	if obs == peer || len(n.faults) == 0 {
		return true
	}
	for k := n.segAt(from - n.detection); k < len(n.segs) && n.bounds[k] <= to; k++ {
		s := &n.segs[k]
		if !s.faulty || (!s.isCrashed(peer) && !n.regionsCut(s, n.region[obs], n.region[peer])) {
			return true
		}
	}
	return false
}

// firstReachable returns the first time at or after t at which a and b can
// exchange packets, or never.
func (n *network) firstReachable(a, b NodeID, t time.Duration) time.Duration {
	for k := n.segAt(t); k < len(n.segs); k++ {
		if n.reachableIn(k, a, b) {
			return max(t, n.bounds[k])
		}
	}
	return never
}

// faultOver reports whether a fault that crashes ctrl or router, or cuts the
// path between them, overlaps [lo, hi], and when the last such fault ends.
func (n *network) faultOver(lo, hi time.Duration, ctrl, router NodeID) (bool, time.Duration) {
	hit, end := false, time.Duration(0)
	for i := range n.faults {
		f := &n.faults[i]
		if f.at <= hi && f.end > lo && f.affects(n, ctrl, router) {
			hit, end = true, max(end, f.end)
		}
	}
	return hit, end
}

// viewTimes returns the times at which membership views may change: a
// detection after each fault starts, and when it ends.
func (n *network) viewTimes() []time.Duration {
	var ts []time.Duration
	for _, f := range n.faults {
		ts = append(ts, f.at+n.detection, f.end)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	out := ts[:0]
	for i, t := range ts {
		if i == 0 || t != ts[i-1] {
			out = append(out, t)
		}
	}
	return out
}
