// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRegressionFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    RegressionBound
		wantErr string
	}{
		{"cpu_seconds=10%", RegressionBound{"cpu_seconds", 10}, ""},
		{" peak_memory_bytes = 2.5 % ", RegressionBound{"peak_memory_bytes", 2.5}, ""},
		{"duration_seconds=0%", RegressionBound{"duration_seconds", 0}, ""},
		{"cpu_seconds=10", RegressionBound{}, "want a percentage"},
		{"cpu_seconds=-1%", RegressionBound{}, "want a percentage"},
		{"cpu_seconds=NaN%", RegressionBound{}, "want a percentage"},
		{"cpu=10%", RegressionBound{}, "valid figures are cpu_seconds"},
		{"cpu_seconds", RegressionBound{}, "want FIGURE=PERCENT%"},
	} {
		got, err := ParseRegressionFlag(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestMedianMeasures(t *testing.T) {
	a := &Measures{CPUSeconds: 1, PeakMemoryBytes: 100, ContextSwitches: 10}
	b := &Measures{CPUSeconds: 3, PeakMemoryBytes: 300, ContextSwitches: 31}
	c := &Measures{CPUSeconds: 2, PeakMemoryBytes: 200}
	c.SetUnmeasured("context_switches", "net_rx_bytes")
	a.SetUnmeasured("net_rx_bytes")
	b.SetUnmeasured("net_rx_bytes")
	m := MedianMeasures([]*Measures{a, b, c})
	if m.CPUSeconds != 2 || m.PeakMemoryBytes != 200 {
		t.Errorf("odd count: cpu %v mem %v, want 2, 200", m.CPUSeconds, m.PeakMemoryBytes)
	}
	// Two measured it: the mean of the middle two, rounded for a count.
	if m.ContextSwitches != 21 {
		t.Errorf("context_switches %v, want 21 (median of 10 and 31, rounded)", m.ContextSwitches)
	}
	if m.Measured("net_rx_bytes") {
		t.Error("net_rx_bytes measured by none, but the median says measured")
	}
}

func TestCheckRegressions(t *testing.T) {
	base := func(cpu float64, mem uint64, dur float64) *Report {
		return &Report{TotalsOf: TotalsCgroup, DurationSeconds: dur, Totals: Measures{CPUSeconds: cpu, PeakMemoryBytes: mem}}
	}
	noNet := base(1, 100, 1)
	noNet.Totals.SetUnmeasured("net_rx_bytes")
	ofContainers := base(0.44, 100, 4)
	ofContainers.TotalsOf = TotalsContainers
	for _, tc := range []struct {
		name       string
		cur        *Report
		bases      []*Report
		bounds     []RegressionBound
		unmeasured Unmeasured
		want       []string // status per bound
		wantErr    bool
	}{
		{"within", base(1.09, 100, 1), []*Report{base(1, 100, 1)}, []RegressionBound{{"cpu_seconds", 10}}, UnmeasuredError, []string{StatusOK}, false},
		{"beyond", base(2, 100, 1), []*Report{base(1, 100, 1)}, []RegressionBound{{"cpu_seconds", 10}, {"peak_memory_bytes", 20}}, UnmeasuredError, []string{StatusExceeded, StatusOK}, true},
		{"less is fine", base(0.5, 100, 1), []*Report{base(1, 100, 1)}, []RegressionBound{{"cpu_seconds", 0}}, UnmeasuredError, []string{StatusOK}, false},
		// The median of 1, 1.1 and 5 is 1.1: one noisy baseline does not
		// hide a regression.
		{"median", base(1.3, 100, 1), []*Report{base(1, 100, 1), base(5, 100, 1), base(1.1, 100, 1)}, []RegressionBound{{"cpu_seconds", 10}}, UnmeasuredError, []string{StatusExceeded}, true},
		{"wall time", base(1, 100, 3), []*Report{base(1, 100, 1), base(1, 100, 2)}, []RegressionBound{{"duration_seconds", 50}}, UnmeasuredError, []string{StatusExceeded}, true},
		{"from zero", base(1, 100, 1), []*Report{base(0, 100, 1)}, []RegressionBound{{"cpu_seconds", 1000}}, UnmeasuredError, []string{StatusExceeded}, true},
		{"not measured", base(1, 100, 1), []*Report{noNet}, []RegressionBound{{"net_rx_bytes", 10}}, UnmeasuredError, []string{StatusNotMeasured}, true},
		{"not measured, skipped", base(1, 100, 1), []*Report{noNet}, []RegressionBound{{"net_rx_bytes", 10}}, UnmeasuredSkip, []string{StatusSkipped}, false},
		// A run's own cgroup against a report of containers (crmon
		// report, a session without a cgroup): not comparable, even when
		// unmeasured figures may be skipped.
		{"totals of containers", base(0.02, 100, 1), []*Report{ofContainers}, []RegressionBound{{"cpu_seconds", 10}}, UnmeasuredSkip, []string{StatusNotMeasured}, true},
		{"one of the baselines of containers", base(0.02, 100, 1), []*Report{base(0.02, 100, 1), ofContainers}, []RegressionBound{{"cpu_seconds", 10}, {"duration_seconds", 10}}, UnmeasuredError, []string{StatusNotMeasured, StatusNotMeasured}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cur.CheckRegressions(tc.bases, tc.bounds, tc.unmeasured)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
			if len(tc.cur.Regressions) != len(tc.want) {
				t.Fatalf("%d results, want %d", len(tc.cur.Regressions), len(tc.want))
			}
			for i, g := range tc.cur.Regressions {
				if g.Status != tc.want[i] || g.OK != (g.Status == StatusOK) {
					t.Errorf("%s: status %s ok %v, want %s", g.Figure, g.Status, g.OK, tc.want[i])
				}
				if g.Baselines != len(tc.bases) && g.Status != StatusNotMeasured && g.Status != StatusSkipped {
					t.Errorf("%s: %d baselines, want %d", g.Figure, g.Baselines, len(tc.bases))
				}
			}
			var re *RegressionError
			if tc.want[0] == StatusExceeded && !errors.As(err, &re) {
				t.Errorf("error %v is no *RegressionError", err)
			}
		})
	}
}

func TestRegressionJSON(t *testing.T) {
	cur := &Report{TotalsOf: TotalsCgroup, Totals: Measures{CPUSeconds: 1.5}}
	cur.Totals.SetUnmeasured("net_tx_bytes")
	_ = cur.CheckRegressions([]*Report{{Totals: Measures{CPUSeconds: 1}}}, []RegressionBound{{"cpu_seconds", 10}, {"net_tx_bytes", 5}}, UnmeasuredError)
	b, err := json.Marshal(cur.Regressions)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"figure":"cpu_seconds","scope":"run","unit":"seconds","baseline":1,"baselines":1,"actual":1.5,"change_percent":50,"max_percent":10,"ok":false,"status":"exceeded"},` +
		`{"figure":"net_tx_bytes","scope":"run","unit":"bytes","baseline":0,"baselines":1,"actual":null,"change_percent":null,"max_percent":5,"ok":false,"status":"not_measured","reason":"this run did not measure net_tx_bytes"}]`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

// TestRegressionMissingFigure: a figure absent from a report's JSON (one
// edited by hand, or written by another tool) is not measured, not 0, so
// that a gate on it does not pass on a figure nobody measured.
func TestRegressionMissingFigure(t *testing.T) {
	read := func(totals string) *Report {
		var r Report
		if err := json.Unmarshal([]byte(`{"schema_version":2,"totals_of":"cgroup","totals":`+totals+`}`), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	base, cur := read(`{"cpu_seconds": 2.5, "peak_memory_bytes": 100}`), read(`{"peak_memory_bytes": 100}`)
	if cur.Totals.Measured("cpu_seconds") || !cur.Totals.Measured("peak_memory_bytes") {
		t.Errorf("unmeasured %v, want cpu_seconds only", cur.Totals.Unmeasured)
	}
	err := cur.CheckRegressions([]*Report{base}, []RegressionBound{{"cpu_seconds", 10}}, UnmeasuredError)
	if err == nil || len(cur.Regressions) != 1 || cur.Regressions[0].Status != StatusNotMeasured {
		t.Errorf("cpu_seconds missing from the run: %v, %+v; want not measured, and an error", err, cur.Regressions)
	}
}
