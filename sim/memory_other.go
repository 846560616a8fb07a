//go:build !linux

package sim

// peakMemoryMB returns the memory the Go runtime obtained from the system.
func peakMemoryMB() float64 { return peakHeapMB() }
