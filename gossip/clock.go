package gossip

import (
	"slices"
	"time"
)

// offsetSample is one clock sample: our receive time − peer's send time.
type offsetSample struct {
	peer string
	d    time.Duration
}

// offsetVoters is how many peers the clock offset estimate rests on: the
// most recently heard. Samples come only from proven frames, about one a
// second at a node (anti-entropy requests), so the last 32 span half a
// minute: a median over every peer among them would follow a clock step
// only once most of them had spoken again. Over the last five, three
// fresh samples move it, and a peer whose clock is off, even one that
// speaks often, is one vote of five.
const offsetVoters = 5

// ClockOffset estimates how far this node's clock is from its peers': the
// median, over the offsetVoters peers heard most recently among the last
// proven messages' senders, of each one's latest (our receive time − its
// send time). One vote per peer: a burst of messages from one peer whose
// clock is off (an anti-entropy answer in chunks, say) must not move the
// estimate, or a controller whose clock is fine would refuse writes.
// One-way latency biases it slightly positive.
func (c *Core) ClockOffset() (time.Duration, bool) {
	if c.offsetsLen == 0 {
		return 0, false
	}
	var (
		peers [offsetVoters]string
		offs  [offsetVoters]time.Duration
		n     int
	)
	for i := 0; i < c.offsetsLen && n < offsetVoters; i++ { // newest first
		s := c.offsets[(c.offsetsPos-1-i+len(c.offsets))%len(c.offsets)]
		if !slices.Contains(peers[:n], s.peer) {
			peers[n], offs[n] = s.peer, s.d
			n++
		}
	}
	slices.Sort(offs[:n])
	return offs[n/2], true
}

func (c *Core) sampleOffset(peer string, d time.Duration) {
	c.offsets[c.offsetsPos] = offsetSample{peer, d}
	c.offsetsPos = (c.offsetsPos + 1) % len(c.offsets)
	c.offsetsLen = min(c.offsetsLen+1, len(c.offsets))
}
