package api

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// MetricFamily is what a node says about one metric family on /metrics
// beside its samples: the help text of its "# HELP" line, and for a family
// a library writes, a corrected type or that it is left out.
type MetricFamily struct {
	Help string
	// Type, if set, replaces the type the writer gave (a library that
	// types a counter as a gauge).
	Type string
	// Omit leaves the family out: a library's series whose name breaks
	// Prometheus's naming rules (promtool check metrics).
	Omit bool
}

// Help builds the families of a package's own metrics from their help
// texts, by family name.
func Help(help map[string]string) map[string]MetricFamily {
	fams := make(map[string]MetricFamily, len(help))
	for name, h := range help {
		fams[name] = MetricFamily{Help: h}
	}
	return fams
}

// WriteMetrics writes what write writes, a Prometheus text exposition with
// "# HELP family" and "# TYPE family type" lines and no help text (what
// github.com/VictoriaMetrics/metrics writes once metrics.ExposeMetadata is
// on), with each family's help text from fams, its type corrected and the
// omitted families left out. A family fams does not know keeps an empty
// help text, which promtool check metrics reports.
func WriteMetrics(w io.Writer, fams map[string]MetricFamily, write func(io.Writer)) {
	var buf bytes.Buffer
	write(&buf)
	out := bufio.NewWriter(w)
	defer out.Flush()
	omit := false
	for line := range strings.Lines(buf.String()) {
		name, isHelp := strings.CutPrefix(line, "# HELP ")
		if isHelp {
			name = strings.TrimSpace(name)
			if i := strings.IndexByte(name, ' '); i >= 0 {
				name = name[:i] // a help text is there already
			}
			f := fams[name]
			if omit = f.Omit; omit {
				continue
			}
			out.WriteString("# HELP " + name + " " + escapeHelp(f.Help) + "\n")
			continue
		}
		if omit {
			continue // the family's TYPE line and samples
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, _, ok := strings.Cut(strings.TrimSpace(rest), " "); ok && fams[name].Type != "" {
				out.WriteString("# TYPE " + name + " " + fams[name].Type + "\n")
				continue
			}
		}
		out.WriteString(line)
	}
}

// escapeHelp escapes a help text as the text format wants: backslash and
// line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// ProcessMetrics are the families of the Go runtime and process metrics
// that github.com/VictoriaMetrics/metrics writes (WriteProcessMetrics,
// WriteFDMetrics), with their help from its documentation. Its I/O totals
// are counters it types as gauges; go_cgo_calls_count, go_gc_forced_count
// and go_cpu_count are left out, since their names break Prometheus's
// naming rules (a counter ends in _total, only a histogram or summary
// series ends in _count).
var ProcessMetrics = map[string]MetricFamily{
	"go_cgo_calls_count": {Omit: true},
	"go_gc_forced_count": {Omit: true},
	"go_cpu_count":       {Omit: true},

	"go_info":                             {Help: "Go version the binary was built with (value 1)."},
	"go_info_ext":                         {Help: "Compiler, GOARCH, GOOS and GOROOT of the build (value 1)."},
	"go_goroutines":                       {Help: "Number of goroutines that currently exist."},
	"go_threads":                          {Help: "Number of OS threads created."},
	"go_gomaxprocs":                       {Help: "GOMAXPROCS: the CPUs the Go scheduler runs goroutines on."},
	"go_sched_latencies_seconds":          {Help: "Time goroutines spent ready to run before they ran."},
	"go_mutex_wait_seconds_total":         {Help: "Time goroutines spent blocked on a locked sync.Mutex or sync.RWMutex."},
	"go_gc_mark_assist_cpu_seconds_total": {Help: "CPU time goroutines spent helping the garbage collector mark."},
	"go_gc_cpu_seconds_total":             {Help: "CPU time spent in the garbage collector."},
	"go_gc_pauses_seconds":                {Help: "Stop-the-world pauses of the garbage collector."},
	"go_gc_duration_seconds":              {Help: "Summary of the garbage collector's pause durations."},
	"go_scavenge_cpu_seconds_total":       {Help: "CPU time spent returning memory to the OS."},
	"go_memlimit_bytes":                   {Help: "The Go memory limit (GOMEMLIMIT)."},
	"go_memstats_alloc_bytes":             {Help: "Bytes of allocated heap objects."},
	"go_memstats_alloc_bytes_total":       {Help: "Cumulative bytes allocated for heap objects."},
	"go_memstats_buck_hash_sys_bytes":     {Help: "Bytes of memory in profiling bucket hash tables."},
	"go_memstats_frees_total":             {Help: "Cumulative count of heap objects freed."},
	"go_memstats_gc_cpu_fraction":         {Help: "Fraction of the CPU time used by the garbage collector since the program started."},
	"go_memstats_gc_sys_bytes":            {Help: "Bytes of memory in garbage collection metadata."},
	"go_memstats_heap_alloc_bytes":        {Help: "Bytes of allocated heap objects (as go_memstats_alloc_bytes)."},
	"go_memstats_heap_idle_bytes":         {Help: "Bytes in idle (unused) heap spans."},
	"go_memstats_heap_inuse_bytes":        {Help: "Bytes in in-use heap spans."},
	"go_memstats_heap_objects":            {Help: "Number of allocated heap objects."},
	"go_memstats_heap_released_bytes":     {Help: "Bytes of physical memory returned to the OS."},
	"go_memstats_heap_sys_bytes":          {Help: "Bytes of heap memory obtained from the OS."},
	"go_memstats_last_gc_time_seconds":    {Help: "Unix time the last garbage collection finished."},
	"go_memstats_lookups_total":           {Help: "Number of pointer lookups performed by the runtime."},
	"go_memstats_mallocs_total":           {Help: "Cumulative count of heap objects allocated."},
	"go_memstats_mcache_inuse_bytes":      {Help: "Bytes of allocated mcache structures."},
	"go_memstats_mcache_sys_bytes":        {Help: "Bytes of memory obtained from the OS for mcache structures."},
	"go_memstats_mspan_inuse_bytes":       {Help: "Bytes of allocated mspan structures."},
	"go_memstats_mspan_sys_bytes":         {Help: "Bytes of memory obtained from the OS for mspan structures."},
	"go_memstats_next_gc_bytes":           {Help: "Heap size at which the next garbage collection starts."},
	"go_memstats_other_sys_bytes":         {Help: "Bytes of memory in miscellaneous off-heap runtime allocations."},
	"go_memstats_stack_inuse_bytes":       {Help: "Bytes in goroutine stack spans."},
	"go_memstats_stack_sys_bytes":         {Help: "Bytes of stack memory obtained from the OS."},
	"go_memstats_sys_bytes":               {Help: "Total bytes of memory the Go runtime obtained from the OS."},

	"process_cpu_seconds_system_total":              {Help: "CPU time the process spent in the kernel."},
	"process_cpu_seconds_total":                     {Help: "CPU time the process used, user and kernel."},
	"process_cpu_seconds_user_total":                {Help: "CPU time the process spent in user space."},
	"process_major_pagefaults_total":                {Help: "Page faults that needed a disk read."},
	"process_minor_pagefaults_total":                {Help: "Page faults served without a disk read."},
	"process_num_threads":                           {Help: "Number of OS threads of the process."},
	"process_resident_memory_bytes":                 {Help: "Resident memory (RSS) of the process."},
	"process_resident_memory_peak_bytes":            {Help: "Peak resident memory of the process."},
	"process_resident_memory_anon_bytes":            {Help: "Anonymous resident memory of the process."},
	"process_resident_memory_file_bytes":            {Help: "File-backed resident memory of the process."},
	"process_resident_memory_shared_bytes":          {Help: "Shared resident memory of the process."},
	"process_start_time_seconds":                    {Help: "Unix time the process started."},
	"process_virtual_memory_bytes":                  {Help: "Virtual memory size of the process."},
	"process_virtual_memory_peak_bytes":             {Help: "Peak virtual memory size of the process."},
	"process_io_read_bytes_total":                   {Help: "Bytes the process read through syscalls.", Type: "counter"},
	"process_io_written_bytes_total":                {Help: "Bytes the process wrote through syscalls.", Type: "counter"},
	"process_io_read_syscalls_total":                {Help: "Read syscalls the process made.", Type: "counter"},
	"process_io_write_syscalls_total":               {Help: "Write syscalls the process made.", Type: "counter"},
	"process_io_storage_read_bytes_total":           {Help: "Bytes the process read from storage.", Type: "counter"},
	"process_io_storage_written_bytes_total":        {Help: "Bytes the process wrote to storage.", Type: "counter"},
	"process_pressure_cpu_waiting_seconds_total":    {Help: "Time processes of the cgroup (v2) waited for a CPU."},
	"process_pressure_cpu_stalled_seconds_total":    {Help: "Time all processes of the cgroup (v2) were stalled for a CPU."},
	"process_pressure_io_waiting_seconds_total":     {Help: "Time processes of the cgroup (v2) waited for I/O."},
	"process_pressure_io_stalled_seconds_total":     {Help: "Time all processes of the cgroup (v2) were stalled on I/O."},
	"process_pressure_memory_waiting_seconds_total": {Help: "Time processes of the cgroup (v2) waited for memory."},
	"process_pressure_memory_stalled_seconds_total": {Help: "Time all processes of the cgroup (v2) were stalled on memory."},
	"process_cgroup_cpu_throttled_seconds_total":    {Help: "Time the processes of the cgroup were throttled by its CPU limit."},
	"process_open_fds":                              {Help: "Open file descriptors: sockets of live connections included."},
	"process_max_fds":                               {Help: "The process's limit on open file descriptors."},
}
