// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLimitsTOML(t *testing.T) {
	data, err := os.ReadFile("../../testdata/limits/ci.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLimitsTOML(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{
		{Name: "max_cpu_usage_percent", Value: 95},
		{Name: "max_memory_usage_percent", Value: 90},
		{Name: "cpu_seconds", Value: 1.5},
		{Name: "peak_memory_bytes", Value: 512 << 20},
		{Name: "block_write_bytes", Value: 33554432},
		{Name: "net_tx_bytes", Value: 10e6},
		{Name: "runqueue_wait_p99_seconds", Value: 0.005},
		{Name: "cpu_seconds", Container: "db-*", Value: 2},
		{Name: "peak_memory_bytes", Container: "db-*", Value: 1 << 30},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseLimitsTOML mismatch (-want +got):\n%s", diff)
	}
}

func TestParseLimitsTOMLErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"unknown.toml", []string{
			`unknown limit "cpu_second": valid limits are max_cpu_usage_percent, `,
			`peak_memory_bytes: bad byte size "lots"`,
			`limit max_cpu_usage_percent is host-wide and cannot be set per container ("db-*")`,
		}},
		{"unquoted.toml", []string{"line 2", `must be quoted strings`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile("../../testdata/limits/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseLimitsTOML(data)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseLimitFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Limit
		wantErr string
	}{
		{in: "cpu_seconds=0.2", want: Limit{Name: "cpu_seconds", Value: 0.2}},
		{in: "cpu_seconds=250ms", want: Limit{Name: "cpu_seconds", Value: 0.25}},
		{in: "peak_memory_bytes=32MiB", want: Limit{Name: "peak_memory_bytes", Value: 32 << 20}},
		{in: "net_rx_bytes=1.5 GB", want: Limit{Name: "net_rx_bytes", Value: 1.5e9}},
		{in: "max_disk_usage_percent=90%", want: Limit{Name: "max_disk_usage_percent", Value: 90}},
		{in: "container:db-*:cpu_seconds=2", want: Limit{Name: "cpu_seconds", Container: "db-*", Value: 2}},
		{in: "cpu_seconds", wantErr: "want NAME=VALUE"},
		{in: "cpu=1", wantErr: `unknown limit "cpu": valid limits are`},
		{in: "container:x:max_cpu_usage_percent=1", wantErr: "host-wide"},
		{in: "container:[:cpu_seconds=1", wantErr: "bad container pattern"},
		{in: "block_read_bytes=-1", wantErr: "bad byte size"},
		{in: "cpu_seconds=soon", wantErr: "bad duration"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLimitFlag(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	r := &Report{
		Totals: Measures{CPUSeconds: 0.61, PeakMemoryBytes: 10 << 20},
		Host:   HostPeaks{CPUUsagePercent: 97.5},
		Containers: []ContainerReport{
			{Name: "db-1", Measures: Measures{CPUSeconds: 3}},
			{Name: "db-2", Measures: Measures{CPUSeconds: 1}},
			{Name: "web", Measures: Measures{CPUSeconds: 9}},
		},
	}
	ls := Limits{
		{Name: "cpu_seconds", Value: 0.2},
		{Name: "peak_memory_bytes", Value: 32 << 20},
		{Name: "max_cpu_usage_percent", Value: 90},
		{Name: "cpu_seconds", Container: "db-*", Value: 2},
	}
	err := r.Check(ls, UnmeasuredError)
	wantResults := []LimitResult{
		{Name: "cpu_seconds", Scope: "run", Limit: 0.2, Actual: 0.61, Unit: UnitSeconds, Status: StatusExceeded},
		{Name: "peak_memory_bytes", Scope: "run", Limit: 32 << 20, Actual: 10 << 20, Unit: UnitBytes, OK: true, Status: StatusOK},
		{Name: "max_cpu_usage_percent", Scope: "host", Limit: 90, Actual: 97.5, Unit: UnitPercent, Status: StatusExceeded},
		{Name: "cpu_seconds", Scope: "container:db-1", Pattern: "db-*", Limit: 2, Actual: 3, Unit: UnitSeconds, Status: StatusExceeded},
		{Name: "cpu_seconds", Scope: "container:db-2", Pattern: "db-*", Limit: 2, Actual: 1, Unit: UnitSeconds, OK: true, Status: StatusOK},
	}
	if diff := cmp.Diff(wantResults, r.Limits); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is no *LimitError", err)
	}
	wantMsg := "resource limit exceeded: cpu_seconds (run): limit 200.0ms, actual 610.0ms\n" +
		"resource limit exceeded: max_cpu_usage_percent (host): limit 90.0%, actual 97.5%\n" +
		"resource limit exceeded: cpu_seconds (container:db-1): limit 2.000s, actual 3.000s"
	if diff := cmp.Diff(wantMsg, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if !r.Exceeded() {
		t.Error("Exceeded() = false")
	}
	if err := r.Check(Limits{{Name: "cpu_seconds", Value: 1}}, ""); err != nil || r.Exceeded() {
		t.Errorf("Check within limits = %v, Exceeded %v", err, r.Exceeded())
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "100": 100, "100B": 100, "1KiB": 1024, "32MiB": 32 << 20, "1.5GiB": 3 << 29,
		"10kB": 10000, "2 MB": 2e6, "1Gi": 1 << 30, "1T": 1e12,
	} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// TestCheckNotMeasured checks that a limit on a figure no source measured
// never passes: it fails the check by default, is skipped when asked, and
// the report's JSON has null, not 0, for the figure and the actual value.
func TestCheckNotMeasured(t *testing.T) {
	newReport := func() *Report {
		r := &Report{Sources: []string{"cgroupfs"}, Totals: Measures{CPUSeconds: 2},
			Containers: []ContainerReport{{Name: "db-1", Measures: Measures{CPUSeconds: 1}}}}
		r.Totals.SetUnmeasured("net_rx_bytes", "runqueue_wait_p99_seconds")
		r.Containers[0].SetUnmeasured("processes_started", "net_rx_bytes")
		return r
	}
	ls := Limits{
		{Name: "net_rx_bytes", Value: 1024},
		{Name: "runqueue_wait_p99_seconds", Value: 1e-6},
		{Name: "cpu_seconds", Value: 10},
		{Name: "net_rx_bytes", Container: "db-*", Value: 1024},
	}
	for _, tc := range []struct {
		policy     Unmeasured
		wantStatus []string
		wantErrs   int
	}{
		{"", []string{StatusNotMeasured, StatusNotMeasured, StatusOK, StatusNotMeasured}, 3},
		{UnmeasuredError, []string{StatusNotMeasured, StatusNotMeasured, StatusOK, StatusNotMeasured}, 3},
		{UnmeasuredSkip, []string{StatusSkipped, StatusSkipped, StatusOK, StatusSkipped}, 0},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			r := newReport()
			err := r.Check(ls, tc.policy)
			var got []string
			for _, lr := range r.Limits {
				got = append(got, lr.Status)
				if lr.Status != StatusOK && (lr.OK || lr.Actual != 0 || !strings.Contains(lr.Reason, "no source measured")) {
					t.Errorf("%s (%s): ok %v actual %v reason %q", lr.Name, lr.Scope, lr.OK, lr.Actual, lr.Reason)
				}
			}
			if diff := cmp.Diff(tc.wantStatus, got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			var nm *NotMeasuredError
			if n := countNotMeasured(err); n != tc.wantErrs || (n > 0 && !errors.As(err, &nm)) {
				t.Errorf("Check = %v: %d not-measured errors, want %d", err, n, tc.wantErrs)
			}
			if r.Exceeded() != (tc.wantErrs > 0) {
				t.Errorf("Exceeded() = %v", r.Exceeded())
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Totals     map[string]any   `json:"totals"`
				Containers []map[string]any `json:"containers"`
				Limits     []map[string]any `json:"limits"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"net_rx_bytes", "runqueue_wait_p99_seconds"} {
				if v, ok := doc.Totals[k]; !ok || v != nil {
					t.Errorf("totals.%s = %v (present %v), want null", k, v, ok)
				}
			}
			if v, ok := doc.Totals["cpu_seconds"]; !ok || v != 2.0 {
				t.Errorf("totals.cpu_seconds = %v", v)
			}
			c := doc.Containers[0]
			if v, ok := c["processes_started"]; !ok || v != nil || c["name"] != "db-1" || c["cpu_seconds"] != 1.0 {
				t.Errorf("container = %v, want processes_started null beside name and cpu_seconds", c)
			}
			if v, ok := doc.Limits[0]["actual"]; !ok || v != nil {
				t.Errorf("limits[0].actual = %v (present %v), want null", v, ok)
			}
			// And back: a report read from JSON knows what was not measured.
			var back Report
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.Totals.Measured("net_rx_bytes") || !back.Totals.Measured("cpu_seconds") || back.Containers[0].Measured("processes_started") || back.Containers[0].Name != "db-1" {
				t.Errorf("read back: totals unmeasured %v, container %+v", back.Totals.Unmeasured, back.Containers[0])
			}
		})
	}
}

func countNotMeasured(err error) int {
	if err == nil {
		return 0
	}
	n := 0
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var nm *NotMeasuredError
		if errors.As(e, &nm) {
			n++
		}
	}
	return n
}

// TestCheckOverridesAndUnmatched checks that a limit given twice for the
// same name and pattern (a file's, then a flag's) is checked once with the
// last value, and that a container limit that matched no container is
// reported as skipped instead of dropped.
func TestCheckOverridesAndUnmatched(t *testing.T) {
	r := &Report{Totals: Measures{PeakMemoryBytes: 200 << 20},
		Containers: []ContainerReport{{Name: "db-1", Measures: Measures{CPUSeconds: 1}}}}
	err := r.Check(Limits{
		{Name: "peak_memory_bytes", Value: 1 << 30}, // the file's
		{Name: "cpu_seconds", Container: "web-*", Value: 1},
		{Name: "peak_memory_bytes", Value: 100 << 20}, // the flag's
	}, "")
	want := []LimitResult{
		{Name: "peak_memory_bytes", Scope: "run", Limit: 100 << 20, Actual: 200 << 20, Unit: UnitBytes, Status: StatusExceeded},
		{Name: "cpu_seconds", Scope: "container:web-*", Pattern: "web-*", Limit: 1, Unit: UnitSeconds, Status: StatusSkipped,
			Reason: `no container of the run matched "web-*"`},
	}
	if diff := cmp.Diff(want, r.Limits); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.Result.Limit != 100<<20 {
		t.Errorf("Check = %v, want the flag's limit exceeded", err)
	}
}

// TestTotalsOfContainers checks that a report whose totals sum its
// containers names its run-wide limits' scope for what they measured.
func TestTotalsOfContainers(t *testing.T) {
	r := &Report{TotalsOf: TotalsContainers, Totals: Measures{CPUSeconds: 1}}
	_ = r.Check(Limits{{Name: "cpu_seconds", Value: 2}}, "")
	if len(r.Limits) != 1 || r.Limits[0].Scope != ScopeContainers {
		t.Errorf("limits %+v, want scope %q", r.Limits, ScopeContainers)
	}
}
