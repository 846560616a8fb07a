package mesh

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
)

// Metrics of a Mesh (docs/deploy.md, "What to watch"). Each Mesh has its own
// *metrics.Set, so that several meshes can live in one process; commands
// call Mesh.WritePrometheus, which adds the help texts below.

// meshHelp is the help text of every family a Mesh exports. A family
// registered below without one is reported by promtool check metrics
// (deploy/metrics_test.go).
var meshHelp = api.Help(map[string]string{
	"certmesh_sync_delay_seconds":     "Delay from a record's write at its controller (its hybrid timestamp) to its apply at this node, for records received from others.",
	"certmesh_gossip_bytes_total":     "Bytes of gossip frames sent (dir=out) and received (dir=in), before memberlist's encryption.",
	"certmesh_gossip_messages_total":  "Gossip messages sent and received, by message type and direction.",
	"certmesh_records":                "Records in this node's replicated state, by kind.",
	"certmesh_clock_offset_seconds":   "Estimated offset of this node's clock from its peers'; a controller refuses writes beyond half the max offset (5 s by default).",
	"certmesh_rejected_records_total": "Records and messages refused, by reason: bad signatures, unknown or revoked signers, malformed input, records held too long.",
	"certmesh_members":                "Members this node sees alive, itself included, by role and region.",
	"certmesh_node_info":              "This node's name, role and region (value 1): join it on instance to group any series by region.",
})

// syncDelayBuckets are the upper bounds of certmesh_sync_delay_seconds:
// from a millisecond inside a region to the max clock offset.
var syncDelayBuckets = []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10}

// maxLabelSets caps the (role, region) pairs certmesh_members tracks:
// regions are announced by peers, and a peer must not be able to grow the
// metrics without bound.
const maxLabelSets = 256

type meshMetrics struct {
	set       *metrics.Set
	syncDelay *metrics.PrometheusHistogram
	bytesIn   *metrics.Counter
	bytesOut  *metrics.Counter
	msgsIn    [gossip.MaxMsgType + 1]*metrics.Counter
	msgsOut   [gossip.MaxMsgType + 1]*metrics.Counter
	records   [crdt.KindIdentityRoles + 1]atomic.Int64
	// clockOffset is the node's estimated offset from its peers, in ns
	// (certmesh_clock_offset_seconds): controllers refuse writes beyond
	// half the max offset, so operators alert well before.
	clockOffset atomic.Int64

	mu       sync.Mutex                  // guards the maps below
	rejected map[string]*metrics.Counter // by reason
	dropped  map[string]uint64           // rejections the mesh counted itself, by reason
	members  map[[2]string]*metrics.Gauge
}

func newMeshMetrics() *meshMetrics {
	// Process-wide: the # TYPE lines tell Prometheus a histogram from
	// untyped series, and give WritePrometheus the # HELP lines to fill.
	metrics.ExposeMetadata(true)
	mm := &meshMetrics{
		set:      metrics.NewSet(),
		rejected: make(map[string]*metrics.Counter),
		dropped:  make(map[string]uint64),
		members:  make(map[[2]string]*metrics.Gauge),
	}
	s := mm.set
	mm.syncDelay = s.NewPrometheusHistogramExt("certmesh_sync_delay_seconds", syncDelayBuckets)
	mm.bytesIn = s.NewCounter(`certmesh_gossip_bytes_total{dir="in"}`)
	mm.bytesOut = s.NewCounter(`certmesh_gossip_bytes_total{dir="out"}`)
	for t := gossip.MsgType(1); t <= gossip.MaxMsgType; t++ {
		mm.msgsIn[t] = s.NewCounter(fmt.Sprintf(`certmesh_gossip_messages_total{type=%q,dir="in"}`, t.String()))
		mm.msgsOut[t] = s.NewCounter(fmt.Sprintf(`certmesh_gossip_messages_total{type=%q,dir="out"}`, t.String()))
	}
	for k := crdt.KindSession; k <= crdt.KindIdentityRoles; k++ {
		n := &mm.records[k]
		s.NewGauge(fmt.Sprintf(`certmesh_records{kind=%q}`, k.String()), func() float64 { return float64(n.Load()) })
	}
	s.NewGauge("certmesh_clock_offset_seconds", func() float64 { return float64(mm.clockOffset.Load()) / 1e9 })
	for _, r := range []string{"bad_signature", "unknown_signer", "held_expired", "malformed"} {
		mm.rejected[r] = s.NewCounter(fmt.Sprintf(`certmesh_rejected_records_total{reason=%q}`, r))
	}
	return mm
}

// setInfo exports certmesh_node_info for this node.
func (mm *meshMetrics) setInfo(name string, role gossip.Role, region string) {
	mm.set.NewGauge(fmt.Sprintf(`certmesh_node_info{node=%q,role=%q,region=%q}`, name, role.String(), labelValue(region)),
		func() float64 { return 1 })
}

func (mm *meshMetrics) msgIn(t gossip.MsgType, n int) {
	mm.bytesIn.Add(n)
	if t >= 1 && t <= gossip.MaxMsgType {
		mm.msgsIn[t].Inc()
	}
}

func (mm *meshMetrics) msgOut(t gossip.MsgType, n int) {
	mm.bytesOut.Add(n)
	if t >= 1 && t <= gossip.MaxMsgType {
		mm.msgsOut[t].Inc()
	}
}

// drop counts a message or record the mesh itself refused.
func (mm *meshMetrics) drop(reason string) {
	mm.mu.Lock()
	mm.dropped[reason]++
	mm.mu.Unlock()
}

func (mm *meshMetrics) setRecords(counts map[crdt.Kind]int) {
	for k, n := range counts {
		if k >= crdt.KindSession && k <= crdt.KindIdentityRoles {
			mm.records[k].Store(int64(n))
		}
	}
}

// syncCore copies the core's cumulative counters into the metrics. The
// caller holds the mesh's lock (st belongs to the core). The core's pulls
// stay in Stats: certmesh_pull_total is the router's, one per admission
// that needed a pull, by how it ended.
func (mm *meshMetrics) syncCore(st *gossip.Stats) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	total := make(map[string]uint64, len(st.Rejected)+len(mm.dropped))
	for r, n := range st.Rejected {
		total[r] += n
	}
	for r, n := range mm.dropped {
		total[r] += n
	}
	for r, n := range total {
		c, ok := mm.rejected[r]
		if !ok {
			c = mm.set.GetOrCreateCounter(fmt.Sprintf(`certmesh_rejected_records_total{reason=%q}`, r))
			mm.rejected[r] = c
		}
		c.Set(n)
	}
}

// setMembers sets certmesh_members from counts by (role, region).
func (mm *meshMetrics) setMembers(counts map[[2]string]int) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	for k, g := range mm.members {
		if _, ok := counts[k]; !ok {
			g.Set(0)
		}
	}
	for k, n := range counts {
		g, ok := mm.members[k]
		if !ok {
			if len(mm.members) >= maxLabelSets {
				continue
			}
			g = mm.set.GetOrCreateGauge(fmt.Sprintf(`certmesh_members{role=%q,region=%q}`, k[0], k[1]), nil)
			mm.members[k] = g
		}
		g.Set(float64(n))
	}
}

// labelValue returns s if it is safe and short as a Prometheus label value
// announced by a peer, and "invalid" otherwise.
func labelValue(s string) string {
	if s == "" || len(s) > 64 {
		return "invalid"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "invalid"
		}
	}
	return s
}

// Metrics returns the mesh's metric set. Its counters mirror the core's
// when WritePrometheus or Stats runs, and at least once a second.
func (m *Mesh) Metrics() *metrics.Set { return m.met.set }

// WritePrometheus writes the mesh's metrics in Prometheus text format.
func (m *Mesh) WritePrometheus(w io.Writer) {
	m.mu.Lock()
	m.met.syncCore(m.core.Stats())
	m.mu.Unlock()
	api.WriteMetrics(w, meshHelp, m.met.set.WritePrometheus)
}

// StatsSnapshot is a copy of a Mesh's counters.
type StatsSnapshot struct {
	MessagesIn, MessagesOut map[string]uint64 // by message type, as the core counted them
	BytesIn, BytesOut       uint64
	Applied                 uint64            // records merged, local writes included
	Rejected                map[string]uint64 // records and messages refused, by reason
	Pulls                   map[string]uint64 // pulls on miss, by result
	Repairs                 uint64
	Held                    int    // records waiting for a signer or for the clock
	Dropped                 uint64 // received messages dropped because the loop was behind
	JoinAttempts            uint64
	AlivePeers              int
	Synced                  bool
}

// Stats returns a copy of the mesh's counters.
func (m *Mesh) Stats() StatsSnapshot {
	s := StatsSnapshot{
		MessagesIn: map[string]uint64{}, MessagesOut: map[string]uint64{},
		Rejected: map[string]uint64{}, Pulls: map[string]uint64{},
		Dropped: m.dropped.Load(), JoinAttempts: m.joins.Load(), AlivePeers: m.alivePeers(),
		Synced: m.synced.Load(),
	}
	m.mu.Lock()
	st := m.core.Stats()
	m.met.syncCore(st)
	for t := gossip.MsgType(1); t <= gossip.MaxMsgType; t++ {
		if n := st.MessagesIn[t]; n > 0 {
			s.MessagesIn[t.String()] = n
		}
		if n := st.MessagesOut[t]; n > 0 {
			s.MessagesOut[t.String()] = n
		}
	}
	// The core encodes nothing it sends (gossip.Config.EncodeLater): what
	// went out is what send framed.
	s.BytesIn, s.BytesOut, s.Applied, s.Repairs = st.BytesIn, m.met.bytesOut.Get(), st.Applied, st.Repairs
	for r, n := range st.Rejected {
		s.Rejected[r] = n
	}
	for r, n := range st.Pulls {
		s.Pulls[r] = n
	}
	s.Held = m.core.HeldCount()
	m.mu.Unlock()
	m.met.mu.Lock()
	for r, n := range m.met.dropped {
		s.Rejected[r] += n
	}
	m.met.mu.Unlock()
	return s
}
