package clockgate

import (
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	const max = 10 * time.Second
	yes := func() bool { return true }
	no := func() bool { return false }
	tests := []struct {
		name string
		s    State
		want Verdict
	}{
		{"in step", State{Offset: 2 * time.Second, HaveOffset: true, SinceStart: time.Minute, LivePeers: yes, MaxOffset: max}, OK},
		{"ahead by more than half the max offset", State{Offset: 6 * time.Second, HaveOffset: true, SinceStart: time.Minute, MaxOffset: max}, Skewed},
		{"behind by more than half the max offset", State{Offset: -6 * time.Second, HaveOffset: true, SinceStart: time.Minute, MaxOffset: max}, Skewed},
		{"no sample yet, peers alive, just started", State{SinceStart: time.Second, LivePeers: yes, MaxOffset: max}, NoSample},
		{"no sample yet, alone", State{SinceStart: time.Second, LivePeers: no, MaxOffset: max}, OK},
		{"no sample past the first-sample wait", State{SinceStart: FirstSampleWait, LivePeers: yes, MaxOffset: max}, OK},
		{"hybrid clock ahead of the wall after a step back", State{HaveOffset: true, SinceStart: time.Minute, Lead: max + time.Millisecond, MaxOffset: max}, WentBack},
		{"hybrid clock a little ahead", State{HaveOffset: true, SinceStart: time.Minute, Lead: max, MaxOffset: max}, OK},
	}
	for _, tt := range tests {
		if got := Check(tt.s); got != tt.want {
			t.Errorf("%s: Check = %v, want %v", tt.name, got, tt.want)
		}
	}
}
