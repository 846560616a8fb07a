package crdt

import (
	"errors"
	"testing"
	"time"
)

var wall0 = t0.Time()

func TestTimestampParts(t *testing.T) {
	ts := NewTimestamp(t0, 7)
	if ts.Millis() != t0 || ts.Logical() != 7 {
		t.Fatalf("parts of %v: %d, %d", ts, ts.Millis(), ts.Logical())
	}
	if !(NewTimestamp(t0, 65535) < NewTimestamp(t0+1, 0)) {
		t.Fatal("timestamps do not order as integers")
	}
	if got, want := ts.String(), "2026-01-01T00:00:00.000Z+7"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if MillisOf(t0.Time()) != t0 {
		t.Fatal("MillisOf(Time) round trip")
	}
}

func TestClockNowIsMonotonic(t *testing.T) {
	c := NewClock(0)
	if c.MaxOffset() != DefaultMaxOffset {
		t.Fatalf("default max offset %v", c.MaxOffset())
	}
	walls := []time.Time{wall0, wall0, wall0.Add(time.Second), wall0.Add(-time.Hour), wall0.Add(time.Second), wall0.Add(2 * time.Second)}
	var last Timestamp
	for i, w := range walls {
		ts := c.Now(w)
		if ts <= last {
			t.Fatalf("step %d: Now(%v) = %v, not after %v", i, w, ts, last)
		}
		if ts.Millis() < MillisOf(w) {
			t.Fatalf("step %d: Now(%v) = %v, behind wall time", i, w, ts)
		}
		last = ts
	}
	// A fresh millisecond resets the logical counter.
	if ts := c.Now(wall0.Add(time.Minute)); ts != NewTimestamp(MillisOf(wall0.Add(time.Minute)), 0) {
		t.Fatalf("Now after the clock moved on = %v", ts)
	}
	if c.Last() != NewTimestamp(MillisOf(wall0.Add(time.Minute)), 0) {
		t.Fatal("Last is not the last reading")
	}
}

func TestClockLogicalCounterCarries(t *testing.T) {
	c := NewClock(0)
	first := c.Now(wall0)
	prev := first
	for i := 0; i < maxLogical+10; i++ {
		ts := c.Now(wall0) // wall time stuck: only the counter moves
		if ts <= prev {
			t.Fatalf("reading %d: %v not after %v", i, ts, prev)
		}
		prev = ts
	}
	// 65545 readings after (t0, 0): the counter wrapped into t0+1.
	if prev.Millis() != t0+1 || prev.Logical() != 9 {
		t.Fatalf("after the carry: %v (ms %d, logical %d)", prev, prev.Millis(), prev.Logical())
	}
	// Wall time catching up with the borrowed millisecond keeps order.
	if ts := c.Now(wall0.Add(time.Millisecond)); ts <= prev {
		t.Fatalf("Now at the borrowed millisecond = %v, not after %v", ts, prev)
	}
}

func TestClockObserveMerges(t *testing.T) {
	c := NewClock(10 * time.Second)
	local := c.Now(wall0)
	remote := NewTimestamp(t0+5000, 3) // 5 s ahead: within the max offset
	got, err := c.Observe(remote, wall0)
	if err != nil {
		t.Fatal(err)
	}
	if got <= remote || got <= local {
		t.Fatalf("Observe = %v, want after remote %v and local %v", got, remote, local)
	}
	if next := c.Now(wall0); next <= got {
		t.Fatalf("Now after Observe = %v, not after %v", next, got)
	}
	// An older remote timestamp still ticks the clock.
	before := c.Last()
	if got, err := c.Observe(NewTimestamp(t0-hour, 0), wall0); err != nil || got <= before {
		t.Fatalf("Observe(old) = %v, %v", got, err)
	}
	// Wall time past everything takes over.
	if got, _ := c.Observe(NewTimestamp(t0, 0), wall0.Add(time.Minute)); got != NewTimestamp(t0+minute, 0) {
		t.Fatalf("Observe with wall time ahead = %v", got)
	}
}

func TestClockObserveAheadIsHeld(t *testing.T) {
	c := NewClock(10 * time.Second)
	c.Now(wall0)
	before := c.Last()
	remote := NewTimestamp(t0+15000, 0) // 15 s ahead
	_, err := c.Observe(remote, wall0)
	var ahead *AheadError
	if !errors.As(err, &ahead) {
		t.Fatalf("Observe 15 s ahead: %v, want *AheadError", err)
	}
	if ahead.Ahead() != 15*time.Second || ahead.Wait() != 5*time.Second || ahead.Max != 10*time.Second {
		t.Fatalf("AheadError: ahead %v, wait %v, max %v", ahead.Ahead(), ahead.Wait(), ahead.Max)
	}
	if c.Last() != before {
		t.Fatal("a refused remote timestamp moved the clock")
	}
	if ahead.Error() == "" {
		t.Fatal("empty error text")
	}
	// Holding the record for Wait makes it acceptable.
	if got, err := c.Observe(remote, wall0.Add(ahead.Wait())); err != nil || got <= remote {
		t.Fatalf("Observe after Wait = %v, %v", got, err)
	}
	// Just short of Wait it is still ahead.
	c2 := NewClock(10 * time.Second)
	if _, err := c2.Observe(remote, wall0.Add(ahead.Wait()-time.Millisecond)); !errors.As(err, &ahead) {
		t.Fatalf("Observe 1 ms before Wait: %v", err)
	}
}

// A forged timestamp far in the future must be refused, not wrap around
// time.Duration's range into the past and poison the clock.
func TestClockObserveFarFutureIsRefused(t *testing.T) {
	c := NewClock(0)
	c.Now(wall0)
	before := c.Last()
	for _, ms := range []Millis{1 << 47, 1<<48 - 1, t0 + 300*365*24*hour} {
		remote := NewTimestamp(ms, 0)
		_, err := c.Observe(remote, wall0)
		var ahead *AheadError
		if !errors.As(err, &ahead) {
			t.Fatalf("Observe(%d ms): %v, want *AheadError", ms, err)
		}
		if ahead.Wait() <= 0 || ahead.Ahead() <= 0 {
			t.Fatalf("Observe(%d ms): ahead %v wait %v", ms, ahead.Ahead(), ahead.Wait())
		}
		if c.Last() != before {
			t.Fatalf("Observe(%d ms) moved the clock to %v", ms, c.Last())
		}
	}
}

// A wall time before 1970, such as a zero time.Time passed by mistake,
// must not wrap into a timestamp near the end of time.
func TestNewTimestampClamps(t *testing.T) {
	if ts := NewTimestamp(-1, 3); ts != NewTimestamp(0, 3) {
		t.Fatalf("NewTimestamp(-1) = %v", ts)
	}
	if ts := NewTimestamp(1<<60, 0); ts.Millis() != maxTimestampMillis {
		t.Fatalf("NewTimestamp(2^60) = %v", ts)
	}
	c := NewClock(0)
	if ts := c.Now(time.Time{}); ts.Millis() != 0 {
		t.Fatalf("Now(zero time) = %v", ts)
	}
	if ts := c.Now(wall0); ts.Millis() != t0 {
		t.Fatalf("Now after a zero time = %v", ts)
	}
}
