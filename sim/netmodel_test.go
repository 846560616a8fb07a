package sim

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGilbertElliottLoss: 5% loss in bursts of 4 packets on average loses
// about 5% of the datagrams, in runs whose mean length is about 4, where
// uniform loss's runs are about 1.05 long.
func TestGilbertElliottLoss(t *testing.T) {
	runs := func(extra string) (frac, meanRun float64) {
		r, s := newScriptRun(t, mustTopology(t, twoRegions+"loss: 5%\n"+extra), 5)
		const n = 40000
		sendEvery(r, 1, 2, 0, 100*time.Microsecond, n, false)
		r.runUntil(never)
		got := make([]bool, n)
		for _, m := range s.nodes[2].received {
			got[(m.at-40*time.Millisecond)/(100*time.Microsecond)] = true
		}
		lost, bursts := 0, 0
		for i, ok := range got {
			if !ok {
				lost++
				if i == 0 || got[i-1] {
					bursts++
				}
			}
		}
		return float64(lost) / n, float64(lost) / float64(bursts)
	}
	frac, burst := runs("network: {loss_model: gilbert-elliott, loss_burst: 4}\n")
	if math.Abs(frac-0.05) > 0.012 || math.Abs(burst-4) > 0.6 {
		t.Errorf("gilbert-elliott: lost %.4f in bursts of %.2f, want 0.05 in bursts of 4", frac, burst)
	}
	frac, burst = runs("")
	if math.Abs(frac-0.05) > 0.005 || burst > 1.15 {
		t.Errorf("uniform: lost %.4f in bursts of %.2f, want 0.05 in bursts of about 1.05", frac, burst)
	}
}

// TestParetoJitter: Pareto jitter keeps uniform's mean delay but not its
// bound: some packets take far more than base × (1 + jitter).
func TestParetoJitter(t *testing.T) {
	stats := func(extra string) (mean, max time.Duration) {
		r, s := newScriptRun(t, mustTopology(t, twoRegions+"jitter: 10%\n"+extra), 9)
		const n = 20000
		sendEvery(r, 1, 2, 0, time.Second, n, false)
		r.runUntil(never)
		var sum time.Duration
		for _, d := range delays(s.nodes[2].received, time.Second) {
			sum += d
			max = maxDur(max, d)
		}
		return sum / time.Duration(len(s.nodes[2].received)), max
	}
	um, ux := stats("")
	pm, px := stats("network: {jitter_model: pareto, jitter_alpha: 2.5}\n")
	if math.Abs(float64(um-42*time.Millisecond)) > float64(100*time.Microsecond) ||
		math.Abs(float64(pm-42*time.Millisecond)) > float64(400*time.Microsecond) {
		t.Errorf("mean delay uniform %v, pareto %v; want 42ms both", um, pm)
	}
	if ux > 44*time.Millisecond || px < 50*time.Millisecond {
		t.Errorf("max delay uniform %v (want at most 44ms), pareto %v (want a tail beyond 50ms)", ux, px)
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// TestBandwidthQueues: at 8Mbit/s a 1,000-byte message takes 1ms to
// serialise, so a burst of ten queues behind one another; a 3KB queue
// drops what does not fit.
func TestBandwidthQueues(t *testing.T) {
	r, s := newScriptRun(t, mustTopology(t, twoRegions+"network: {bandwidth: 8Mbit/s, queue: 3KB}\n"), 1)
	r.at(1, 0, func(e *Env) {
		for range 10 {
			e.Send(2, Message{Size: 1000})
		}
	})
	r.runUntil(never)
	var got []time.Duration
	for _, m := range s.nodes[2].received {
		got = append(got, m.at)
	}
	ms := time.Millisecond
	// Queued bytes before each: 0, 1000, 2000 fit (with the message, at most 3072); the 4th would make 4000.
	if want := []time.Duration{41 * ms, 42 * ms, 43 * ms}; !slices.Equal(got, want) {
		t.Errorf("arrivals %v, want %v", got, want)
	}
	if r.dropped.Queue != 7 {
		t.Errorf("queue drops %d, want 7", r.dropped.Queue)
	}
}

func TestNetworkSectionErrors(t *testing.T) {
	for section, want := range map[string]string{
		"network: {loss_model: bursty}\n":                   `network.loss_model: "bursty" is neither uniform nor gilbert-elliott`,
		"network: {jitter_alpha: 1}\n":                      `network.jitter_alpha: want a tail index in (1, 100], got "1"`,
		"network: {bandwidth: fast}\n":                      `network.bandwidth: want a rate such as 100Mbit/s`,
		"network: {queue: -1}\n":                            `network.queue: want a size such as 64KB or 1MB, got "-1"`,
		"network: {mtu: 1500}\n":                            "field mtu not found",
		"loss: 60%\nnetwork: {loss_model: gilbert-elliott}": "loss: 60% is more than gilbert-elliott bursts of 1 packets allow (50%)",
	} {
		_, err := ParseTopology("n.yaml", []byte(twoRegions+section))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", section, err, want)
		}
	}
	if bw, err := parseBandwidth("12.5MB/s"); err != nil || bw != 1e8 {
		t.Errorf("12.5MB/s: %v, %v", bw, err)
	}
}

// TestHugeStreamAtHighLossGivesUp: a 300KB stream at 10% loss (215
// packets: an attempt gets through with probability 1.5e-10) breaks after
// 15 minutes of retransmissions, as TCP would, instead of looping until
// its delay overflows into the past.
func TestHugeStreamAtHighLossGivesUp(t *testing.T) {
	r, s := newScriptRun(t, mustTopology(t, twoRegions+"loss: 10%\n"), 1)
	r.at(1, 0, func(e *Env) { e.Send(2, Message{Size: 300 << 10, State: true, Reliable: true}) })
	r.runUntil(never)
	if len(s.nodes[2].received) != 0 || r.dropped.Loss != 1 {
		t.Errorf("received %d, loss drops %d; want the stream dropped", len(s.nodes[2].received), r.dropped.Loss)
	}
}
