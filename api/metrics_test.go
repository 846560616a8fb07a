package api

import (
	"io"
	"strings"
	"testing"
)

// WriteMetrics fills the empty help texts github.com/VictoriaMetrics/metrics
// writes, corrects a library's type, and leaves out omitted families
// whole; an unknown family keeps its empty help for promtool to report.
func TestWriteMetricsFillsHelp(t *testing.T) {
	in := `# HELP certmesh_records
# TYPE certmesh_records gauge
certmesh_records{kind="cert"} 3
certmesh_records{kind="session"} 2
# HELP go_cgo_calls_count
# TYPE go_cgo_calls_count counter
go_cgo_calls_count 0
# HELP process_io_read_bytes_total
# TYPE process_io_read_bytes_total gauge
process_io_read_bytes_total 512
# HELP certmesh_unknown
# TYPE certmesh_unknown counter
certmesh_unknown 1
`
	fams := Help(map[string]string{"certmesh_records": "Records held, by kind;\na back\\slash."})
	fams["go_cgo_calls_count"] = ProcessMetrics["go_cgo_calls_count"]
	fams["process_io_read_bytes_total"] = ProcessMetrics["process_io_read_bytes_total"]
	var b strings.Builder
	WriteMetrics(&b, fams, func(w io.Writer) { io.WriteString(w, in) })
	want := `# HELP certmesh_records Records held, by kind;\na back\\slash.
# TYPE certmesh_records gauge
certmesh_records{kind="cert"} 3
certmesh_records{kind="session"} 2
# HELP process_io_read_bytes_total Bytes the process read through syscalls.
# TYPE process_io_read_bytes_total counter
process_io_read_bytes_total 512
# HELP certmesh_unknown 
# TYPE certmesh_unknown counter
certmesh_unknown 1
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
