// Package clockgate decides whether a controller may write now, given what
// it knows of its clock: the rule behind the API's 503 clock_skew. It is
// pure (time comes in as arguments) so that the controller and the
// simulator apply the same rule: meshsim measures what ships.
//
// Why a controller refuses: every record carries its author's hybrid
// clock, and peers hold a record stamped more than the max offset ahead of
// their own wall clock until their time reaches it, while strict routers
// refuse that client. So a controller whose clock is off from the mesh, or
// whose hybrid clock ran ahead of its wall clock (a step back), writes
// nothing until it is back, and the client fails over.
package clockgate

import "time"

// FirstSampleWait bounds how long after it starts a controller that sees
// live peers but has no clock sample from any (none has proved who it is
// and spoken yet) refuses writes. Past it the controller writes as one
// alone does: a key holder posing as a silent member must not stop writes.
// Honest peers give a sample within a round trip of the join.
const FirstSampleWait = 10 * time.Second

// State is what a controller knows of its clock when asked to write.
type State struct {
	// Offset estimates how far this node's clock is from its peers'
	// (gossip's ClockOffset); HaveOffset is false until a first sample.
	Offset     time.Duration
	HaveOffset bool
	// SinceStart is how long the controller has been running.
	SinceStart time.Duration
	// LivePeers is whether membership shows another member alive. Only
	// read when there is no sample yet.
	LivePeers func() bool
	// Lead is how far the controller's hybrid clock is ahead of its wall
	// clock (zero or more: it never goes back).
	Lead time.Duration
	// MaxOffset is the mesh's max clock offset.
	MaxOffset time.Duration
}

// Verdict says whether a write may go ahead, and if not, why.
type Verdict uint8

const (
	// OK: the write may go ahead.
	OK Verdict = iota
	// NoSample: live peers are known, none has given a clock sample yet,
	// and the controller started less than FirstSampleWait ago.
	NoSample
	// Skewed: the clock is more than half the max offset off the mesh's.
	Skewed
	// WentBack: the hybrid clock is more than the max offset ahead of the
	// wall clock, so peers would hold what it stamps now.
	WentBack
)

// Check applies the rule.
func Check(s State) Verdict {
	if !s.HaveOffset && s.SinceStart < FirstSampleWait && s.LivePeers != nil && s.LivePeers() {
		return NoSample
	}
	off := s.Offset
	if off < 0 {
		off = -off
	}
	if s.HaveOffset && off > s.MaxOffset/2 {
		return Skewed
	}
	if s.Lead > s.MaxOffset {
		return WentBack
	}
	return OK
}
