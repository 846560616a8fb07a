package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// ExportRow is one row of meshsim --export: a tidy, long table that
// pandas, R or a spreadsheet reads as is. Kind says what the row is:
//
//   - cdf: one point of a distribution over fault-free pairs; Name is
//     end_to_end_ms, sync_delay_ms, physical_ms or direct_ms, Value the
//     delay in ms and Frac the fraction of pairs at or below it (cdfPoints
//     evenly spaced ranks, and the last);
//   - region_pair: one figure of a (From, To) region pair (RegionPair):
//     pairs, end_to_end_{p50,p90,p99,max}_ms, sync_{p50,p99}_ms,
//     physical_ms, direct_ms, bytes_per_event;
//   - counter: a count of the run (undelivered, refused_requests,
//     dropped_loss, held_at_end, ...).
//
// Setting names the sweep point (key=value,...; empty for a plain run)
// and Seed the run's seed.
type ExportRow struct {
	Kind     string   `json:"kind"`
	Setting  string   `json:"setting,omitempty"`
	Seed     int64    `json:"seed"`
	Strategy string   `json:"strategy"`
	From     string   `json:"from,omitempty"`
	To       string   `json:"to,omitempty"`
	Name     string   `json:"name"`
	Value    float64  `json:"value"`
	Frac     *float64 `json:"frac,omitempty"`
}

// ExportRows returns the rows of a report, in a fixed order.
func ExportRows(rep *Report, setting string) []ExportRow {
	var rows []ExportRow
	for _, r := range rep.Results {
		row := func(kind, from, to, name string, v float64) ExportRow {
			return ExportRow{Kind: kind, Setting: setting, Seed: rep.Seed, Strategy: r.Strategy, From: from, To: to, Name: name, Value: v}
		}
		for _, c := range []struct {
			name string
			pts  []CDFPoint
		}{{"end_to_end_ms", r.EndToEndCDF}, {"sync_delay_ms", r.SyncCDF}, {"physical_ms", r.PhysicalCDF}, {"direct_ms", r.DirectCDF}} {
			for _, p := range c.pts {
				x := row("cdf", "", "", c.name, round(p.Ms))
				f := p.Frac
				x.Frac = &f
				rows = append(rows, x)
			}
		}
		for _, rp := range r.ByRegionPair {
			add := func(name string, v float64) { rows = append(rows, row("region_pair", rp.From, rp.To, name, v)) }
			add("pairs", float64(rp.Pairs))
			add("end_to_end_p50_ms", rp.EndToEndMs.P50)
			add("end_to_end_p90_ms", rp.EndToEndMs.P90)
			add("end_to_end_p99_ms", rp.EndToEndMs.P99)
			add("end_to_end_max_ms", rp.EndToEndMs.Max)
			add("sync_p50_ms", rp.SyncDelayMs.P50)
			add("sync_p99_ms", rp.SyncDelayMs.P99)
			if rp.PhysicalMs != nil {
				add("physical_ms", *rp.PhysicalMs)
			}
			add("direct_ms", rp.DirectMs)
			add("bytes_per_event", rp.BytesPerEvent)
		}
		for _, c := range resultCounters(r) {
			rows = append(rows, row("counter", "", "", c.name, c.v))
		}
	}
	return rows
}

type namedValue struct {
	name string
	v    float64
}

// resultCounters lists a result's counts, strategy counters last.
func resultCounters(r *Result) []namedValue {
	out := []namedValue{
		{"events", float64(r.Events)},
		{"fault_free_pairs", float64(r.Stats.Pairs)},
		{"catch_up_pairs", float64(r.Stats.CatchUpPairs)},
		{"undelivered", float64(r.Undelivered)},
		{"writes_unavailable", float64(r.WritesUnavailable)},
		{"refused_requests", float64(r.RefusedRequests)},
		{"abandoned_writes", float64(r.AbandonedWrites)},
		{"requests_no_controller", float64(r.RequestsNoController)},
		{"pairs_applied_before_ack", float64(r.PairsAppliedBeforeAck)},
		{"pairs_below_physical", float64(r.PairsBelowPhysical)},
		{"connects", float64(r.Connects)},
		{"revoked_connects", float64(r.RevokedConnects)},
		{"false_rejects", float64(r.FalseRejects)},
		{"revoked_accepts", float64(r.RevokedAccepts)},
		{"dropped_loss", float64(r.DroppedMessages.Loss)},
		{"dropped_partition", float64(r.DroppedMessages.Partition)},
		{"dropped_down", float64(r.DroppedMessages.Down)},
		{"dropped_oversize", float64(r.DroppedMessages.Oversize)},
		{"deliveries", float64(r.Stats.Deliveries)},
	}
	for _, k := range sortedKeys(r.RefusedBy) {
		out = append(out, namedValue{"refused_by:" + k, float64(r.RefusedBy[k])})
	}
	for _, k := range sortedKeys(r.StrategyCounters) {
		out = append(out, namedValue{k, float64(r.StrategyCounters[k])})
	}
	return out
}

// Export formats.
const (
	ExportCSV   = "csv"
	ExportJSONL = "jsonl"
)

// WriteExport writes rows as CSV (with a header) or JSON lines.
func WriteExport(w io.Writer, format string, rows []ExportRow) error {
	switch format {
	case ExportJSONL:
		enc := json.NewEncoder(w)
		for i := range rows {
			if err := enc.Encode(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	case ExportCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write([]string{"kind", "setting", "seed", "strategy", "from", "to", "name", "value", "frac"}); err != nil {
			return err
		}
		for _, r := range rows {
			frac := ""
			if r.Frac != nil {
				frac = strconv.FormatFloat(*r.Frac, 'g', -1, 64)
			}
			rec := []string{r.Kind, r.Setting, strconv.FormatInt(r.Seed, 10), r.Strategy, r.From, r.To, r.Name,
				strconv.FormatFloat(r.Value, 'f', -1, 64), frac}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	return fmt.Errorf("export format %q is neither csv nor jsonl", format)
}
