package sim

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"
)

func TestSummarizeConfidenceInterval(t *testing.T) {
	// Mean 3, sd 1.5811 over 5 values: half-width t(0.975, 4) = 2.776 times sd/√5.
	s := summarize([]float64{1, 2, 3, 4, 5})
	half := 2.776 * math.Sqrt(2.5) / math.Sqrt(5)
	if s.Mean != 3 || s.Min != 1 || s.Max != 5 || math.Abs(s.CILow-(3-half)) > 1e-3 || math.Abs(s.CIHigh-(3+half)) > 1e-3 {
		t.Errorf("summary %+v, want mean 3 ± %.3f", s, half)
	}
	if s := summarize([]float64{7}); s.Mean != 7 || s.CILow != 7 || s.CIHigh != 7 || s.SD != 0 {
		t.Errorf("one seed: %+v", s)
	}
	if s := summarize([]float64{math.NaN(), 2, 4}); s.Mean != 3 {
		t.Errorf("NaNs are left out: %+v", s)
	}
	if s := summarize([]float64{math.NaN()}); !math.IsNaN(s.Mean) {
		t.Errorf("all NaN: %+v", s)
	}
}

func TestAverageCDFByRank(t *testing.T) {
	a := []CDFPoint{{10, 0.5}, {20, 1}}
	b := []CDFPoint{{30, 0.5}, {40, 1}}
	got := averageCDF([][]CDFPoint{a, b, nil}, 4)
	want := []CDFPoint{{20, 0.25}, {20, 0.5}, {30, 0.75}, {30, 1}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("point %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSettingNumber(t *testing.T) {
	for v, want := range map[string]float64{"5%": 5, "0.5": 0.5, "250ms": 250, "2s": 2000, "50/s": 50} {
		if got, ok := settingNumber(v); !ok || got != want {
			t.Errorf("%s: %v, %v; want %v", v, got, ok, want)
		}
	}
	if _, ok := settingNumber("etcd"); ok {
		t.Error("etcd is a number")
	}
}

// TestExportRows: the CSV of a run has a header, CDF points with their
// fraction, per region pair figures and counters, all for each strategy.
func TestExportRows(t *testing.T) {
	res, err := Run(mustTopology(t, tiny), "test-direct", DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	rows := ExportRows(NewReport(mustTopology(t, tiny), 1, "model", []*Result{res}), "loss=1%")
	var b bytes.Buffer
	if err := WriteExport(&b, ExportCSV, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "kind,setting,seed,strategy,from,to,name,value,frac" || len(recs) != len(rows)+1 {
		t.Fatalf("header %v, %d records for %d rows", recs[0], len(recs), len(rows))
	}
	has := func(want string) {
		t.Helper()
		for _, r := range recs {
			if strings.Join(r, ",") == want {
				return
			}
		}
		t.Errorf("no row %q", want)
	}
	has("cdf,loss=1%,1,test-direct,,,end_to_end_ms,10,1")
	has("region_pair,loss=1%,1,test-direct,a,b,end_to_end_p99_ms,10,")
	has("region_pair,loss=1%,1,test-direct,a,b,pairs,3,")
	has("counter,loss=1%,1,test-direct,,,undelivered,0,")
	has("counter,loss=1%,1,test-direct,,,fault_free_pairs,6,")
	b.Reset()
	if err := WriteExport(&b, ExportJSONL, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != `{"kind":"cdf","setting":"loss=1%","seed":1,"strategy":"test-direct","name":"end_to_end_ms","value":1,"frac":0.16666666666666666}`+"\n" {
		t.Errorf("jsonl %s", got)
	}
}
