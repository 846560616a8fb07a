package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// NetModel holds the network options beyond latency, uniform jitter and
// independent loss (the topology's network section; every one is off by
// default, and a run without them draws exactly the randomness it always
// did):
//
//	network:
//	  loss_model: gilbert-elliott   # bursty loss; uniform (default): independent per packet
//	  loss_burst: 4                 # gilbert-elliott: mean packets lost in a row
//	  jitter_model: pareto          # heavy-tailed jitter; uniform (default)
//	  jitter_alpha: 2.5             # pareto: tail index (> 1; smaller, heavier)
//	  bandwidth: 100Mbit/s          # each node's egress link; 0 (default): unlimited
//	  queue: 1MB                    # its FIFO queue; a datagram that does not fit is dropped; 0: unbounded
//
// Gilbert-Elliott (Gilbert's two-state form): each sending node's link is
// good (no loss) or bad (every packet lost); after each datagram it goes
// good to bad with probability p and bad to good with r = 1/loss_burst,
// so bursts last loss_burst packets on average and p = loss·r/(1−loss)
// keeps the mean loss at the topology's loss. Streams keep the mean loss
// per attempt.
//
// Pareto jitter: a packet's delay is base × (1 + jitter·X) with X Pareto
// of tail index alpha and the same mean as uniform's, 0.5: X = xm / U^(1/α),
// xm = 0.5(α−1)/α, capped at maxParetoJitter. The mean delay is that of
// uniform jitter; the tail, P(X > x) = (xm/x)^α, is not bounded by 1+jitter.
//
// Bandwidth: each node sends through one egress link of the given rate; a
// message waits for the messages queued before it (FIFO), then takes
// size·8/rate to serialise, then its one-way delay. Queued bytes beyond
// queue drop a datagram (counted as queue drops); a stream waits instead.
// Receivers' links and routers' CPU are not modelled.
type NetModel struct {
	LossModel   string  // LossUniform or LossGilbertElliott
	LossBurst   float64 // gilbert-elliott: mean burst length in packets, >= 1
	JitterModel string  // JitterUniform or JitterPareto
	JitterAlpha float64 // pareto: tail index, > 1
	Bandwidth   float64 // bits per second of each node's egress link; 0: unlimited
	Queue       int64   // bytes an egress queue holds; 0: unbounded
}

// Loss and jitter models.
const (
	LossUniform        = "uniform"
	LossGilbertElliott = "gilbert-elliott"
	JitterUniform      = "uniform"
	JitterPareto       = "pareto"
)

// maxParetoJitter caps a Pareto draw (in units of jitter): a packet is at
// most 1+1000·jitter times its base delay.
const maxParetoJitter = 1000

// defaultNetModel is the model of every topology that says nothing.
func defaultNetModel() NetModel {
	return NetModel{LossModel: LossUniform, LossBurst: 1, JitterModel: JitterUniform, JitterAlpha: 2}
}

// IsDefault reports whether the model adds nothing to latency, uniform
// jitter and independent loss.
func (m NetModel) IsDefault() bool {
	return m.LossModel == LossUniform && m.JitterModel == JitterUniform && m.Bandwidth == 0
}

// validate checks the model; errors name the setting.
func (m NetModel) validate() error {
	switch {
	case m.LossModel != LossUniform && m.LossModel != LossGilbertElliott:
		return fmt.Errorf("network.loss_model: %q is neither uniform nor gilbert-elliott", m.LossModel)
	case !(m.LossBurst >= 1) || m.LossBurst > 1e6:
		return fmt.Errorf("network.loss_burst: %v is out of range [1, 1000000]", m.LossBurst)
	case m.JitterModel != JitterUniform && m.JitterModel != JitterPareto:
		return fmt.Errorf("network.jitter_model: %q is neither uniform nor pareto", m.JitterModel)
	case !(m.JitterAlpha > 1) || m.JitterAlpha > 100:
		return fmt.Errorf("network.jitter_alpha: %v is out of range (1, 100]", m.JitterAlpha)
	case m.Bandwidth < 0 || math.IsNaN(m.Bandwidth) || math.IsInf(m.Bandwidth, 0):
		return fmt.Errorf("network.bandwidth: %v is negative", m.Bandwidth)
	case m.Queue < 0:
		return fmt.Errorf("network.queue: %d is negative", m.Queue)
	}
	return nil
}

// netState is the per-node state of the network options, touched only in
// the sending node's context (its shard), like its random source.
type netState struct {
	bad  []bool          // gilbert-elliott: the node's link is in the bad state
	busy []time.Duration // bandwidth: when the node's egress link is free
}

func newNetState(m NetModel, n int) netState {
	var s netState
	if m.LossModel == LossGilbertElliott {
		s.bad = make([]bool, n)
	}
	if m.Bandwidth > 0 {
		s.busy = make([]time.Duration, n)
	}
	return s
}

// lost draws whether a datagram from is lost: independently with the
// topology's loss, or by the Gilbert-Elliott chain of the sender's link.
func (r *run) lost(rng *rand.Rand, from NodeID) bool {
	loss := r.top.Loss
	if loss <= 0 {
		return false
	}
	if r.ns.bad == nil {
		return rng.Float64() < loss
	}
	bad := r.ns.bad[from]
	rate := 1 / r.top.Net.LossBurst
	if bad {
		r.ns.bad[from] = rng.Float64() >= rate
	} else {
		r.ns.bad[from] = rng.Float64() < loss*rate/(1-loss)
	}
	return bad
}

// jitterFactor draws 1 + jitter·X, X uniform(0, 1) or Pareto of mean 0.5.
func (r *run) jitterFactor(rng *rand.Rand, j float64) float64 {
	if r.top.Net.JitterModel != JitterPareto {
		return 1 + j*rng.Float64()
	}
	a := r.top.Net.JitterAlpha
	xm := 0.5 * (a - 1) / a
	u := 1 - rng.Float64() // (0, 1]
	return 1 + j*min(xm/math.Pow(u, 1/a), maxParetoJitter)
}

// egress queues size bytes on from's link at now: it returns the time the
// last bit leaves, and false when a datagram finds the queue full.
func (r *run) egress(from NodeID, size int32, now time.Duration, reliable bool) (time.Duration, bool) {
	if r.ns.busy == nil {
		return now, true
	}
	bps := r.top.Net.Bandwidth
	start := max(now, r.ns.busy[from])
	if q := r.top.Net.Queue; q > 0 && !reliable {
		queued := float64(start-now) / float64(time.Second) * bps / 8
		if queued+float64(size) > float64(q) {
			return 0, false
		}
	}
	done := start + time.Duration(float64(size)*8/bps*float64(time.Second))
	r.ns.busy[from] = done
	return done, true
}

// parseBandwidth reads 100Mbit/s, 1Gbit/s, 500kbit/s, 12.5MB/s or 0.
func parseBandwidth(v string) (float64, error) {
	s := strings.TrimSpace(v)
	if s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		bits   float64
	}{{"Gbit/s", 1e9}, {"Mbit/s", 1e6}, {"kbit/s", 1e3}, {"bit/s", 1}, {"GB/s", 8e9}, {"MB/s", 8e6}, {"kB/s", 8e3}, {"B/s", 8}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || !(f >= 0) || math.IsInf(f, 0) {
				break
			}
			return f * u.bits, nil
		}
	}
	return 0, fmt.Errorf("want a rate such as 100Mbit/s, 1Gbit/s or 12.5MB/s, got %q", v)
}

func fmtBandwidth(bps float64) string {
	switch {
	case bps == 0:
		return "0"
	case bps >= 1e9 && math.Mod(bps, 1e9) == 0:
		return strconv.FormatFloat(bps/1e9, 'g', -1, 64) + "Gbit/s"
	case bps >= 1e6:
		return strconv.FormatFloat(bps/1e6, 'g', -1, 64) + "Mbit/s"
	case bps >= 1e3:
		return strconv.FormatFloat(bps/1e3, 'g', -1, 64) + "kbit/s"
	}
	return strconv.FormatFloat(bps, 'g', -1, 64) + "bit/s"
}

// parseBytes reads 64KB, 1MB, 1500B or a bare number of bytes.
func parseBytes(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"kB", 1 << 10}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40/mult {
		return 0, fmt.Errorf("want a size such as 64KB or 1MB, got %q", v)
	}
	return n * mult, nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KB"
	}
	return strconv.FormatInt(n, 10)
}
