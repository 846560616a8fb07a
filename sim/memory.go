package sim

import "runtime"

// peakHeapMB approximates peak memory by what the Go runtime obtained from
// the operating system.
func peakHeapMB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}
