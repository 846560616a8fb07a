package client

import (
	"testing"
	"time"
)

func TestRotationTimeIsTwoThirdsOfTheLifetimeWithJitter(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := issued.Add(time.Hour)
	for _, tc := range []struct {
		rand float64
		want time.Duration
	}{
		{0.5, 40 * time.Minute},
		{0, 37 * time.Minute}, // 2/3 - 0.05
		{1, 43 * time.Minute}, // 2/3 + 0.05
	} {
		cfg := DefaultConfig()
		cfg.Rand = func() float64 { return tc.rand }
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		got := cfg.rotationTime(issued, expires).Sub(issued)
		if (got - tc.want).Abs() > time.Second {
			t.Errorf("rand %v: rotate after %v, want %v", tc.rand, got, tc.want)
		}
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rand = func() float64 { return 1 }
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	prev := time.Duration(0)
	for n := 0; n < 20; n++ {
		d := cfg.backoff(n)
		if d < prev || d > cfg.RetryMax {
			t.Fatalf("backoff(%d) = %v after %v", n, d, prev)
		}
		prev = d
	}
	if prev != cfg.RetryMax {
		t.Errorf("backoff tops out at %v, want %v", prev, cfg.RetryMax)
	}
}

func TestRenewBeforeIsAMarginBeforeExpiry(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life, renewBefore time.Duration
		want              time.Duration
	}{
		{time.Hour, 10 * time.Minute, 50 * time.Minute},
		{24 * time.Hour, time.Hour, 23 * time.Hour},
		// A margin as long as the lifetime cannot be kept: RotateAt.
		{time.Hour, 2 * time.Hour, 40 * time.Minute},
	} {
		cfg := DefaultConfig()
		cfg.RenewBefore = tc.renewBefore
		cfg.Rand = func() float64 { return 0.5 } // no jitter
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		got := cfg.rotationTime(issued, issued.Add(tc.life)).Sub(issued)
		if (got - tc.want).Abs() > time.Second {
			t.Errorf("life %v, renew %v before: rotate after %v, want %v", tc.life, tc.renewBefore, got, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.RenewBefore = -time.Second
	if err := cfg.Validate(); err == nil {
		t.Error("a negative RenewBefore is accepted")
	}
}
