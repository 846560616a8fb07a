package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	code, stdout, stderr := meshsim("--version")
	if code != 0 || !strings.HasPrefix(stdout, "meshsim version ") || !strings.Contains(stdout, "commit ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestPlotMustBeSVG(t *testing.T) {
	dir := t.TempDir()
	for _, flag := range []string{"--plot", "--plot-cdf"} {
		png := filepath.Join(dir, "chart.png")
		code, _, stderr := meshsim(flag, png, "--quiet")
		if code != 2 || !strings.Contains(stderr, flag) || !strings.Contains(stderr, ".svg") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%s chart.png: exit %d, stderr %q; want exit 2 naming the flag and .svg", flag, code, stderr)
		}
		if _, err := os.Stat(png); err == nil {
			t.Errorf("%s chart.png: the file was written", flag)
		}
	}
	if err := checkSVGPath("--plot", "Chart.SVG"); err != nil {
		t.Errorf("an upper-case .SVG is SVG: %v", err)
	}
}

func TestProgressLineWhileDraining(t *testing.T) {
	work := progressLine("mesh", 30*time.Second, 60*time.Second, 120*time.Second, 5*time.Second)
	if !strings.Contains(work, "workload 30.0s of 60s") || !strings.Contains(work, "[###############...............]") {
		t.Errorf("workload line %q", work)
	}
	// Draining, the bar starts again and says what the run waits for.
	drain := progressLine("mesh", 90*time.Second, 60*time.Second, 120*time.Second, 9*time.Second)
	for _, want := range []string{"draining", "30.0s after the workload", "at most 120s", "[#######.......................]"} {
		if !strings.Contains(drain, want) {
			t.Errorf("drain line %q lacks %q", drain, want)
		}
	}
}
