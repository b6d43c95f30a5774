// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sample() *session.Report {
	start := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	r := &session.Report{
		SchemaVersion:   session.SchemaVersion,
		Name:            "exec",
		Command:         []string{"make", "test"},
		ExitCode:        session.Exit(0),
		StartedAt:       start,
		EndedAt:         start.Add(1500 * time.Millisecond),
		DurationSeconds: 1.5,
		Cgroup:          "/crmon/exec-1234",
		TotalsOf:        session.TotalsCgroup,
		Sources:         []string{"ebpf", "cgroupfs"},
		Totals: session.Measures{
			CPUSeconds: 0.61, RunqueueWaitSeconds: 0.002, RunqueueWaitP50Seconds: 0.000016, RunqueueWaitP99Seconds: 0.001,
			ContextSwitches: 30, VoluntaryContextSwitches: 20, InvoluntaryContextSwitches: 10,
			BlockWriteBytes: 32 << 20, BlockWriteOperations: 64, BlockIOLatencyP99Seconds: 0.004,
			NetRxBytes: 100, NetTxBytes: 8 << 20, PeakMemoryBytes: 12 << 20, ProcessesStarted: 3,
		},
		Containers: []session.ContainerReport{{
			ID: "abc123", Name: "db-1", Image: "crmon-test/busybox:latest", Cgroup: "/docker/abc123",
			Measures: session.Measures{CPUSeconds: 2.01, PeakMemoryBytes: 1 << 20,
				Unmeasured: []string{"net_rx_bytes", "net_tx_bytes", "processes_started"}},
		}},
		Host: session.HostPeaks{CPUUsagePercent: 97.5, MemoryUsagePercent: 40.1, DiskUsagePercent: 61},
		Processes: []session.ProcessReport{
			{Command: "procfs.test", PIDs: []int{4242}, Count: 1, Measures: processMeasures(0.4, 0.001, 0, 1<<20, 40<<20)},
			{Command: "sh -c make", PIDs: []int{4200, 4201}, Count: 2, Measures: processMeasures(0.2, 0.0005, 4096, 0, 3<<20)},
		},
		Findings: []session.Finding{{
			Code: session.FindingCPUStarved, Severity: session.SeverityCritical, Scope: "run",
			Message:  "the run waited 1.200s for a CPU while running 610.0ms (197% of its CPU time): the CPUs were busy with other work, most of all /docker/f00 1.900s",
			Evidence: map[string]float64{"runqueue_wait_seconds": 1.2, "cpu_seconds": 0.61, "wait_percent_of_cpu": 197},
			Others:   []session.CgroupCPU{{Cgroup: "/docker/f00", CPUSeconds: 1.9}},
		}},
		Series: &session.Series{
			IntervalSeconds: 0.2,
			Run: []session.Point{
				{T: 0}, {T: 0.2, CPUSeconds: 0.2, MemoryBytes: 1 << 20, BlockWriteBytes: 1 << 20, NetTxBytes: 4 << 20},
				{T: 0.4, CPUSeconds: 0.4, MemoryBytes: 12 << 20, BlockWriteBytes: 32 << 20, NetTxBytes: 8 << 20},
			},
			Containers: map[string][]session.Point{"db-1": {{T: 0}, {T: 0.2, CPUSeconds: 0.2}}},
		},
	}
	_ = r.Check(session.Limits{
		{Name: "cpu_seconds", Value: 0.2},
		{Name: "peak_memory_bytes", Value: 32 << 20},
		{Name: "cpu_seconds", Container: "db-*", Value: 1},
		{Name: "net_rx_bytes", Container: "db-*", Value: 1024},
		{Name: "peak_memory_bytes", Container: "web-*", Value: 1 << 30},
	}, session.UnmeasuredError)
	return r
}

// processMeasures are a process row's figures; the rest is not measured
// per process.
func processMeasures(cpu, wait float64, rd, wr, rss uint64) session.Measures {
	m := session.Measures{CPUSeconds: cpu, RunqueueWaitSeconds: wait, BlockReadBytes: rd, BlockWriteBytes: wr, PeakMemoryBytes: rss}
	for _, f := range session.MeasureFields() {
		if !slices.Contains(session.ProcessFields, f) {
			m.SetUnmeasured(f)
		}
	}
	return m
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, sample(), false); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", b.Bytes())
	// The documented schema's top-level keys, every one present.
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema_version", "exit_code", "duration_seconds", "started_at", "ended_at", "command", "totals", "containers", "limits", "host"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if _, ok := m["series"]; ok {
		t.Error("series written without being asked for")
	}
}

func TestSummary(t *testing.T) {
	var b bytes.Buffer
	if err := Summary(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.txt", b.Bytes())
}

// TestSummaryDegraded: a run measured without the probes says so on the
// summary's first line, and what it could not see of the containers after.
func TestSummaryDegraded(t *testing.T) {
	r := sample()
	r.Sources = []string{"cgroupfs"}
	r.Unavailable = []string{"context_switches", "net_rx_bytes", "net_tx_bytes", "runqueue_wait"}
	r.SourcesMissing = []session.MissingSource{
		{Source: "ebpf", Reason: "the agent did not measure the run (HTTP 429), and loading the eBPF probes: missing capabilities: CAP_BPF"},
		{Source: "docker", Reason: "listing the containers created while the event stream was down: no answer from the docker engine"},
	}
	r.ContainersOmitted, r.ContainersLimit = 3, 256
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary-degraded.txt", b.Bytes())
	first, _, _ := strings.Cut(b.String(), "\n")
	if !strings.Contains(first, "without eBPF") || !strings.Contains(first, "CAP_BPF") {
		t.Errorf("first line %q does not say the run was measured without eBPF, and why", first)
	}
}

// TestSummaryLostCompletions: a run during which the probes lost block
// completions says that its block figures are a lower bound.
func TestSummaryLostCompletions(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "lower bound") {
		t.Errorf("a run without lost completions calls its block figures a lower bound:\n%s", b.String())
	}
	r.BlockLostCompletions = 3
	b.Reset()
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "block I/O operations and latencies are a lower bound: the probes lost 3 request completions") {
		t.Errorf("summary does not say the block figures are a lower bound:\n%s", b.String())
	}
}

// TestJUnit reads the JUnit file with a JUnit consumer: one case for the
// run, one per limit result; an exceeded limit fails, one on a figure
// that was not measured is an error, a container limit that matched no
// container is skipped, and no name carries anything that changes from
// one run to the next.
func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, sample(), "ci-host"); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.xml", b.Bytes())
	f := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	suites := testenv.ParseJUnit(t, f)
	if len(suites) != 1 {
		t.Fatalf("%d suites, want 1", len(suites))
	}
	s := suites[0]
	if s.Name != "exec" || s.Tests != 6 || s.Failures != 2 || s.Errors != 1 || s.Skipped != 1 {
		t.Errorf("suite %q tests %d failures %d errors %d skipped %d, want exec 6 2 1 1", s.Name, s.Tests, s.Failures, s.Errors, s.Skipped)
	}
	want := []testenv.JUnitCase{
		{Classname: "exec", Name: "run", Result: "passed"},
		{Classname: "exec.limits.run", Name: "cpu_seconds (run)", Result: "failure", Type: "resource_limit_exceeded",
			Message: "resource limit exceeded: cpu_seconds (run): limit 200.0ms, actual 610.0ms"},
		{Classname: "exec.limits.run", Name: "peak_memory_bytes (run)", Result: "passed"},
		{Classname: "exec.limits.container.db-1", Name: "cpu_seconds (container:db-1 by db-*)", Result: "failure", Type: "resource_limit_exceeded",
			Message: "resource limit exceeded: cpu_seconds (container:db-1): limit 1.000s, actual 2.010s"},
		{Classname: "exec.limits.container.db-1", Name: "net_rx_bytes (container:db-1 by db-*)", Result: "error", Type: "not_measured",
			Message: "resource limit not checked: net_rx_bytes (container:db-1): no source measured net_rx_bytes here: it comes from the eBPF probes (this report's sources: ebpf + cgroupfs)"},
		{Classname: "exec.limits.container.web-*", Name: "peak_memory_bytes (container:web-*)", Result: "skipped",
			Message: `no container of the run matched "web-*"`},
	}
	if diff := cmp.Diff(want, s.Cases); diff != "" {
		t.Errorf("cases (-want +got):\n%s", diff)
	}
	if s.Properties["totals.cpu_seconds"] != "0.61" || s.Properties["exit_code"] != "0" || s.Properties["totals_of"] != "cgroup" {
		t.Errorf("properties %v", s.Properties)
	}
}

// TestJUnitRunCase checks the run's own case: the only case without
// limits, failed when CMD failed, passed (and without exit code) for a
// session, and its totals' unmeasured figures are null, not 0.
func TestJUnitRunCase(t *testing.T) {
	xmllint := testenv.RequireCommand(t, "xmllint")
	r := sample()
	r.Limits = nil
	r.ExitCode = session.Exit(2)
	r.Totals.SetUnmeasured("net_rx_bytes")
	sess := sample()
	sess.Limits, sess.Command, sess.ExitCode, sess.Name, sess.TotalsOf = nil, nil, nil, "it", session.TotalsContainers
	for _, tc := range []struct {
		r        *session.Report
		want     testenv.JUnitCase
		failures int
	}{
		{r, testenv.JUnitCase{Classname: "exec", Name: "run", Result: "failure", Type: "exit_code", Message: "make test exited 2"}, 1},
		{sess, testenv.JUnitCase{Classname: "it", Name: "containers", Result: "passed"}, 0},
	} {
		var b bytes.Buffer
		if err := JUnit(&b, tc.r, "ci-host"); err != nil {
			t.Fatal(err)
		}
		validateJUnit(t, xmllint, b.Bytes())
		f := filepath.Join(t.TempDir(), "junit.xml")
		if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		s := testenv.ParseJUnit(t, f)[0]
		if s.Tests != 1 || s.Failures != tc.failures || len(s.Cases) != 1 {
			t.Fatalf("tests %d failures %d cases %+v", s.Tests, s.Failures, s.Cases)
		}
		if diff := cmp.Diff(tc.want, s.Cases[0]); diff != "" {
			t.Errorf("run case (-want +got):\n%s", diff)
		}
		_, hasExit := s.Properties["exit_code"]
		if hasExit != (tc.r.ExitCode != nil) {
			t.Errorf("exit_code property present %v for exit %v", hasExit, tc.r.ExitCode)
		}
		if tc.r == r && s.Properties["totals.net_rx_bytes"] != "null" {
			t.Errorf("unmeasured totals.net_rx_bytes = %q, want null", s.Properties["totals.net_rx_bytes"])
		}
	}
}

// TestSessionSummary checks what a session's summary claims: no exit code
// it never saw, and a containers-only session's row and limits named for
// what they measured.
func TestSessionSummary(t *testing.T) {
	r := sample()
	r.Command, r.ExitCode, r.Name, r.Cgroup, r.TotalsOf = nil, nil, "it-42", "", session.TotalsContainers
	_ = r.Check(session.Limits{{Name: "cpu_seconds", Value: 10}}, "")
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"crmon session it-42: only the 1 container created during the session (no cgroup given: the session's own processes are not measured)\n  lasted 1.500s",
		"\n  containers  610.0ms",
		"limit cpu_seconds (containers): 610.0ms of 10.000s ok",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "exit") || strings.Contains(s, "\n  run ") {
		t.Errorf("summary claims an exit or a run:\n%s", s)
	}
	r.Cgroup, r.TotalsOf = "/ci/job-42", session.TotalsCgroup
	b.Reset()
	_ = Summary(&b, r)
	if !strings.Contains(b.String(), "crmon session it-42: cgroup /ci/job-42, and the 1 container created during the session") {
		t.Errorf("summary with a cgroup:\n%s", b.String())
	}
}

func TestJUnitSchema(t *testing.T) {
	xmllint := testenv.RequireCommand(t, "xmllint")
	var b bytes.Buffer
	if err := JUnit(&b, sample(), "ci-host"); err != nil {
		t.Fatal(err)
	}
	validateJUnit(t, xmllint, b.Bytes())
}

func TestHTML(t *testing.T) {
	var b bytes.Buffer
	r := sample()
	r.Containers[0].Name = `<script>alert(1)</script>`
	r.Series.Containers = map[string][]session.Point{r.Containers[0].Name: {{T: 0}, {T: 0.2, CPUSeconds: 0.1}}}
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if n := strings.Count(s, `<svg class="chart"`); n != 8 {
		t.Errorf("%d <svg> plots, want 8 (4 for the run, 4 for the container)", n)
	}
	if n := strings.Count(s, `<svg class="timeline"`); n != 1 {
		t.Errorf("%d container timelines, want 1", n)
	}
	if strings.Contains(s, "<script>") {
		t.Error("container name not escaped")
	}
	// Self-contained: no attribute loads anything from elsewhere.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(`).FindString(s); m != "" {
		t.Errorf("page loads something external: %q", m)
	}
	// Values on hover: each sample's band says when and how much.
	if !strings.Contains(s, "<title>at 400.0ms\nusage: 12.0MiB</title>") || !strings.Contains(s, "<title>at 200.0ms\nread: 0B/s\nwrite: 5.0MiB/s</title>") {
		t.Error("no hover values for the run's memory and block I/O")
	}
	// Both axes: a unit on y, time on x.
	for _, want := range []string{">bytes per second</text>", ">CPU cores in use</text>", ">time since the start</text>", ">400.0ms</text>"} {
		if !strings.Contains(s, want) {
			t.Errorf("no axis label %q", want)
		}
	}
	// The container's network was not measured: its chart says so and
	// draws no line at 0.
	if n := strings.Count(s, "Network: n/a (not measured)"); n != 1 {
		t.Errorf("%d network charts say n/a, want 1 (the container's)", n)
	}
	if n := strings.Count(s, "<polyline"); n != 10 {
		t.Errorf("%d lines drawn, want 10 (6 for the run, 4 for the container without network)", n)
	}
}

func validateJUnit(t *testing.T, xmllint string, doc []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit-10.xsd", f).CombinedOutput()
	if err != nil {
		t.Errorf("JUnit XML does not validate: %v\n%s", err, out)
	}
}
