package crdt

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// DefaultMaxOffset is the largest clock offset between two nodes that the
// mesh tolerates. A remote timestamp further ahead than this is held until
// local time catches up, and a controller whose clock is off from its peers
// by more than half of it stops writing.
const DefaultMaxOffset = 10 * time.Second

// Millis is a wall-clock instant in Unix milliseconds. Record fields use it
// instead of time.Time to stay small and to encode canonically.
type Millis int64

// MillisOf converts a time to Millis.
func MillisOf(t time.Time) Millis { return Millis(t.UnixMilli()) }

// Time converts m back to a time.Time in UTC.
func (m Millis) Time() time.Time { return time.UnixMilli(int64(m)).UTC() }

// Timestamp is a hybrid logical clock reading: 48 bits of Unix milliseconds
// followed by a 16-bit logical counter, so that comparing two timestamps as
// integers orders them as the HLC does.
type Timestamp uint64

const logicalBits = 16

// maxLogical is the largest logical counter; past it the clock borrows a
// millisecond from the future rather than wrap.
const maxLogical = 1<<logicalBits - 1

// maxTimestampMillis is the largest instant a timestamp holds: 48 bits of
// milliseconds, in the year 10889.
const maxTimestampMillis = 1<<(64-logicalBits) - 1

// NewTimestamp builds a timestamp from its parts. ms is clamped to what 48
// bits hold, so that a zero time.Time (before 1970) or a time past the year
// 10889 cannot wrap around into a timestamp far ahead.
func NewTimestamp(ms Millis, logical uint16) Timestamp {
	ms = min(max(ms, 0), maxTimestampMillis)
	return Timestamp(uint64(ms)<<logicalBits | uint64(logical))
}

// Millis is the physical part of t.
func (t Timestamp) Millis() Millis { return Millis(t >> logicalBits) }

// Logical is the logical counter of t.
func (t Timestamp) Logical() uint16 { return uint16(t & maxLogical) }

func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.Millis().Time().Format("2006-01-02T15:04:05.000Z"), t.Logical())
}

// AheadError reports a remote timestamp that is further ahead of local wall
// time than the max offset allows. The record carrying it must be held, not
// dropped, until Wait has passed.
type AheadError struct {
	Remote Timestamp
	Wall   Millis
	Max    time.Duration
}

func (e *AheadError) Error() string {
	return fmt.Sprintf("crdt: timestamp %v is %v ahead of local time, more than the max offset %v",
		e.Remote, e.Ahead(), e.Max)
}

// Ahead is how far the remote timestamp is ahead of local wall time,
// saturating at the largest time.Duration.
func (e *AheadError) Ahead() time.Duration {
	return msDuration(int64(e.Remote.Millis() - e.Wall))
}

// msDuration converts milliseconds to a Duration, saturating instead of
// overflowing: a forged timestamp 2^47 ms ahead must not look behind.
func msDuration(ms int64) time.Duration {
	const lim = math.MaxInt64 / int64(time.Millisecond)
	switch {
	case ms > lim:
		return math.MaxInt64
	case ms < -lim:
		return math.MinInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// Wait is how long local time must advance before the timestamp is
// acceptable.
func (e *AheadError) Wait() time.Duration { return e.Ahead() - e.Max }

// Clock is a hybrid logical clock. The zero value is not usable; use
// NewClock. A Clock is safe for concurrent use: a controller's writer
// stamps its writes while the mesh's loop observes what it receives, and
// the writer must not wait for the loop's lock (which merges and
// collection hold) to read its clock.
type Clock struct {
	mu        sync.Mutex // guards last
	last      Timestamp
	maxOffset time.Duration
}

// NewClock returns a clock that refuses remote timestamps more than
// maxOffset ahead of wall time (DefaultMaxOffset if zero).
func NewClock(maxOffset time.Duration) *Clock {
	if maxOffset <= 0 {
		maxOffset = DefaultMaxOffset
	}
	return &Clock{maxOffset: maxOffset}
}

// MaxOffset is the clock's configured max offset.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Last is the latest timestamp the clock has issued or observed.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Now returns a timestamp for a local event at wall time wall, greater than
// every timestamp issued or observed before.
func (c *Clock) Now(wall time.Time) Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = next(c.last, NewTimestamp(MillisOf(wall), 0))
	return c.last
}

// Observe merges a remote timestamp into the clock, as on receipt of a
// message. A remote timestamp more than the max offset ahead of wall time
// is not merged; the error is an *AheadError telling how long to hold it.
func (c *Clock) Observe(remote Timestamp, wall time.Time) (Timestamp, error) {
	w := MillisOf(wall)
	c.mu.Lock()
	defer c.mu.Unlock()
	if msDuration(int64(remote.Millis()-w)) > c.maxOffset {
		return c.last, &AheadError{Remote: remote, Wall: w, Max: c.maxOffset}
	}
	if remote > c.last {
		c.last = remote
	}
	c.last = next(c.last, NewTimestamp(w, 0))
	return c.last, nil
}

// next returns the smallest timestamp above last that is not below wall.
func next(last, wall Timestamp) Timestamp {
	if wall > last {
		return wall
	}
	// Same or earlier millisecond: count logically. At the counter's limit
	// the increment carries into the millisecond, which keeps order.
	return last + 1
}
