// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
		Name:            "exec-1234",
		Command:         []string{"make", "test"},
		ExitCode:        0,
		StartedAt:       start,
		EndedAt:         start.Add(1500 * time.Millisecond),
		DurationSeconds: 1.5,
		Cgroup:          "/crmon/exec-1234",
		Sources:         []string{"ebpf", "cgroupfs"},
		Totals: session.Measures{
			CPUSeconds: 0.61, RunqueueWaitSeconds: 0.002, RunqueueWaitP50Seconds: 0.000016, RunqueueWaitP99Seconds: 0.001,
			ContextSwitches: 30, VoluntaryContextSwitches: 20, InvoluntaryContextSwitches: 10,
			BlockWriteBytes: 32 << 20, BlockWriteOperations: 64, BlockIOLatencyP99Seconds: 0.004,
			NetRxBytes: 100, NetTxBytes: 8 << 20, PeakMemoryBytes: 12 << 20, ProcessesStarted: 3,
		},
		Containers: []session.ContainerReport{{
			ID: "abc123", Name: "db-1", Image: "crmon-test/busybox:latest", Cgroup: "/docker/abc123",
			Measures: session.Measures{CPUSeconds: 2.01, PeakMemoryBytes: 1 << 20, ProcessesStarted: 4},
		}},
		Host: session.HostPeaks{CPUUsagePercent: 97.5, MemoryUsagePercent: 40.1, DiskUsagePercent: 61},
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
	})
	return r
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

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, sample(), "ci-host"); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.xml", b.Bytes())
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if doc.Tests != 3 || doc.Failures != 2 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 3 {
		t.Errorf("tests %d failures %d suites %d, want 3, 2, 1", doc.Tests, doc.Failures, len(doc.Suites))
	}
	if f := doc.Suites[0].Cases[0].Failure; f == nil || f.Type != "resource_limit_exceeded" {
		t.Errorf("first case failure = %+v", f)
	}
	if doc.Suites[0].Cases[1].Failure != nil {
		t.Error("a limit within budget has a <failure>")
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
	if n := strings.Count(s, "<svg"); n != 8 {
		t.Errorf("%d <svg> plots, want 8 (4 for the run, 4 for the container)", n)
	}
	if strings.Contains(s, "<script>") {
		t.Error("container name not escaped")
	}
	// Self-contained: no attribute loads anything from elsewhere.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(`).FindString(s); m != "" {
		t.Errorf("page loads something external: %q", m)
	}
	if !strings.Contains(s, `points="64.0,128.0 287.0,118.2 510.0,10.0"`) {
		t.Error("run memory polyline not where expected")
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
