package sim

import "syscall"

// peakMemoryMB returns the process's peak resident set size in MiB.
func peakMemoryMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return peakHeapMB()
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}
