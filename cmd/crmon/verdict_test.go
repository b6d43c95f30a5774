// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestExecUnmeasuredLimits is the case of a limit on a figure nothing
// measured: without the probes, net_rx_bytes and the run-queue wait are
// not measured, so limits on them fail the run (exit 3, a JUnit <error>)
// instead of passing at 0, or are skipped when --unmeasured skip says so;
// every report shows n/a or null for them, never 0.
func TestExecUnmeasuredLimits(t *testing.T) {
	requireRootRun(t)
	xmllint := testenv.RequireCommand(t, "xmllint")
	for _, tc := range []struct {
		policy     []string
		wantCode   int
		wantResult string
		wantStatus string
	}{
		{nil, 3, "error", "NOT MEASURED"},
		{[]string{"--unmeasured", "skip"}, 0, "skipped", "skipped"},
	} {
		t.Run(fmt.Sprint(tc.policy), func(t *testing.T) {
			dir := t.TempDir()
			j, x, h := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.html")
			args := append([]string{"exec", noAgent, "--no-agent", "--ebpf", "disabled", "--json", j, "--junit", x, "--html", h,
				"--limit", "net_rx_bytes=1KiB", "--limit", "runqueue_wait_p99_seconds=1us", "--limit", "cpu_seconds=100"}, tc.policy...)
			_, stderr, code := run(t, append(args, "--", "sh", "-c", burner)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tc.wantCode, stderr)
			}
			for _, want := range []string{
				"limit net_rx_bytes (run): n/a of 1.0KiB " + tc.wantStatus,
				"limit runqueue_wait_p99_seconds (run): n/a of 1µs " + tc.wantStatus,
				"limit cpu_seconds (run): ",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("summary lacks %q:\n%s", want, stderr)
				}
			}
			if m := regexp.MustCompile(`(?m)^  run .*$`).FindString(stderr); strings.Count(m, "n/a") != 4 {
				t.Errorf("run row %q: want n/a for run-queue wait, switches and network", m)
			}

			b, err := os.ReadFile(j)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Totals map[string]any   `json:"totals"`
				Limits []map[string]any `json:"limits"`
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"net_rx_bytes", "net_tx_bytes", "runqueue_wait_p99_seconds", "context_switches"} {
				if v, ok := doc.Totals[k]; !ok || v != nil {
					t.Errorf("totals.%s = %v, want null", k, v)
				}
			}
			if v, ok := doc.Totals["cpu_seconds"].(float64); !ok || v <= 0 {
				t.Errorf("totals.cpu_seconds = %v", doc.Totals["cpu_seconds"])
			}
			for _, l := range doc.Limits[:2] {
				if v, ok := l["actual"]; !ok || v != nil || l["ok"] != false {
					t.Errorf("limit %v: want actual null and ok false", l)
				}
			}

			b, _ = os.ReadFile(x)
			validateJUnitFile(t, xmllint, x)
			s := testenv.ParseJUnit(t, x)[0]
			var results []string
			for _, c := range s.Cases {
				results = append(results, c.Name+": "+c.Result)
			}
			want := []string{"run: passed", "net_rx_bytes (run): " + tc.wantResult,
				"runqueue_wait_p99_seconds (run): " + tc.wantResult, "cpu_seconds (run): passed"}
			if diff := cmp.Diff(want, results); diff != "" {
				t.Errorf("JUnit cases (-want +got):\n%s\n%s", diff, b)
			}
			if tc.wantResult == "error" && !strings.Contains(s.Cases[1].Message, "no source measured net_rx_bytes") {
				t.Errorf("error message %q does not say why", s.Cases[1].Message)
			}
			html, _ := os.ReadFile(h)
			if !strings.Contains(string(html), `<td class="num">n/a</td>`) {
				t.Error("HTML limits table does not show n/a")
			}
		})
	}
}

// TestExecJUnitNames checks the JUnit file a CI system tracks: the suite's
// and cases' names are the same from one run to the next (--name, or
// "exec"); a run without limits still has its own case; a limit given in
// the file and again as a flag is checked once, with the flag's value; a
// container limit that matched no container is a skipped case.
func TestExecJUnitNames(t *testing.T) {
	requireRootRun(t)
	xmllint := testenv.RequireCommand(t, "xmllint")
	dir := t.TempDir()
	f := filepath.Join(dir, "limits.toml")
	if err := os.WriteFile(f, []byte("[cleanroom.resource_limits]\npeak_memory_bytes = \"1GiB\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	junit := func(args ...string) testenv.JUnitSuite {
		t.Helper()
		x := filepath.Join(t.TempDir(), "r.xml")
		_, stderr, code := run(t, append(append([]string{"exec", "-q", noAgent, "--ebpf", "disabled", "--junit", x}, args...), "--", "sh", "-c", "head -c 200000000 /dev/zero | tail -c 1 >/dev/null")...)
		if code != 0 && code != 3 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		validateJUnitFile(t, xmllint, x)
		return testenv.ParseJUnit(t, x)[0]
	}
	names := func(s testenv.JUnitSuite) []string {
		out := []string{s.Name}
		for _, c := range s.Cases {
			out = append(out, c.Classname+" / "+c.Name+": "+c.Result)
		}
		return out
	}

	bare := junit()
	if diff := cmp.Diff([]string{"exec", "exec / run: passed"}, names(bare)); diff != "" {
		t.Errorf("without limits (-want +got):\n%s", diff)
	}
	if bare.Properties["totals.cpu_seconds"] == "" || bare.Properties["exit_code"] != "0" {
		t.Errorf("run case properties: %v", bare.Properties)
	}

	limited := []string{"--limits", f, "--limit", "peak_memory_bytes=100KiB", "--limit", "container:no-such-*:cpu_seconds=1"}
	first, second := junit(limited...), junit(limited...)
	want := []string{"exec", "exec / run: passed",
		"exec.limits.run / peak_memory_bytes (run): failure",
		"exec.limits.container.no-such-* / cpu_seconds (container:no-such-*): skipped"}
	if diff := cmp.Diff(want, names(first)); diff != "" {
		t.Errorf("with limits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(names(first), names(second)); diff != "" {
		t.Errorf("names changed between two runs (-first +second):\n%s", diff)
	}
	if !strings.Contains(first.Cases[1].Message, "limit 100.0KiB") {
		t.Errorf("peak_memory_bytes checked against %q, want the flag's 100KiB", first.Cases[1].Message)
	}
	if !strings.Contains(first.Cases[2].Message, `no container of the run matched "no-such-*"`) {
		t.Errorf("skipped case message %q", first.Cases[2].Message)
	}

	named := junit("--name", "unit tests")
	if named.Name != "unit tests" || named.Cases[0].Classname != "unit tests" {
		t.Errorf("--name: suite %q, run case %+v", named.Name, named.Cases[0])
	}
}

// TestExecStragglers checks that processes CMD leaves behind do not hang
// exec without a word: they are named once on stderr, --max-wait kills
// them after a while and the report says so. The stragglers would run
// for 30 s.
func TestExecStragglers(t *testing.T) {
	requireRootRun(t)
	j := filepath.Join(t.TempDir(), "r.json")
	_, stderr, code := run(t, "exec", noAgent, "--ebpf", "disabled", "--json", j, "--max-wait", "300ms", "--",
		"sh", "-c", "yes >/dev/null & sleep 30 >/dev/null 2>&1 </dev/null & exit 0")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	r := readReport(t, j)
	if r.Stragglers == nil || r.Stragglers.Killed != "max-wait" || len(r.Stragglers.Processes) != 2 {
		t.Fatalf("report stragglers %+v, want 2 killed at max-wait", r.Stragglers)
	}
	for _, p := range r.Stragglers.Processes {
		if !strings.Contains(stderr, fmt.Sprintf("pid %d  %s\n", p.PID, p.Command)) {
			t.Errorf("%+v not named on stderr:\n%s", p, stderr)
		}
	}
	if r.DurationSeconds > 20 {
		t.Errorf("run lasted %.1fs: the stragglers were waited for", r.DurationSeconds)
	}
	for _, want := range []string{"sh exited 0; still running in its cgroup:", "(--max-wait), then killing them", "killed at the end of --max-wait"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestExecContainerProcsNotMeasured checks that a container's figures that
// nothing measured (without the probes: processes, switches, network)
// read n/a in the summary and null in the JSON, not 0.
func TestExecContainerProcsNotMeasured(t *testing.T) {
	requireRootRun(t)
	dockertest.Require(t)
	j := filepath.Join(t.TempDir(), "r.json")
	name := fmt.Sprintf("crmon-verdict-%d", os.Getpid())
	// Only this test's container: others' may start meanwhile.
	label := "crmon.test=" + name
	_, stderr, code := run(t, "exec", noAgent, "--ebpf", "disabled", "--json", j, "--containers", label, "--",
		"docker", "run", "--rm", "--network", "none", "--name", name, "--label", label, dockertest.Image, "sh", "-c", "echo hi")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	row := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` .*$`).FindString(stderr)
	if f := strings.Fields(row); len(f) != 10 || f[9] != "n/a" || f[3] != "n/a" || f[6] != "n/a" {
		t.Errorf("container row %q: want n/a for procs, ctx sw and net rx\n%s", row, stderr)
	}
	b, _ := os.ReadFile(j)
	var doc struct {
		Containers []map[string]any `json:"containers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Containers) != 1 {
		t.Fatalf("containers: %v %s", err, b)
	}
	if v, ok := doc.Containers[0]["processes_started"]; !ok || v != nil || doc.Containers[0]["name"] != name {
		t.Errorf("container %v: want processes_started null", doc.Containers[0])
	}
}

func validateJUnitFile(t *testing.T, xmllint, f string) {
	t.Helper()
	out, err := exec.Command(xmllint, "--noout", "--schema", "../../internal/report/testdata/junit-10.xsd", f).CombinedOutput()
	if err != nil {
		t.Errorf("JUnit XML does not validate: %v\n%s", err, out)
	}
}
