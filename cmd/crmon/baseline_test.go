// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecBaseline is the regression gate end to end: three runs of a
// burner make the baseline (their median); the burner doing twice the work
// is a regression beyond a 10 % bound on cpu_seconds (exit 3, a JUnit
// failure of its own, the JSON's regressions), and the burner once more is
// not (exit 0). crmon diff shows the change, and with the bound exits 3
// too.
//
// The burner is fixed work in registers on the CPU that takes the fewest
// interrupts (spinArgv): a shell loop's CPU time spread 52 % over 15
// runs on a busy host, this burner's 8 % beside stress-ng --cpu 1 --io 1.
func TestExecBaseline(t *testing.T) {
	requireRootRun(t)
	const rounds = 480_000_000 // about 0.8 s of CPU
	dir := t.TempDir()
	bs := []string{filepath.Join(dir, "b1.json"), filepath.Join(dir, "b2.json"), filepath.Join(dir, "b3.json")}
	for _, b := range bs {
		if _, stderr, code := run(t, append([]string{"exec", "-q", noAgent, "--json", b, "--"}, spinArgv(t, rounds)...)...); code != 0 {
			t.Fatalf("baseline run: exit %d\n%s", code, stderr)
		}
	}
	b1, b2 := bs[0], bs[1]
	gate := []string{"exec", noAgent, "--baseline", bs[0], "--baseline", bs[1], "--baseline", bs[2],
		"--max-regression", "cpu_seconds=10%", "--max-regression", "peak_memory_bytes=100%"}

	j, x := filepath.Join(dir, "twice.json"), filepath.Join(dir, "twice.xml")
	_, stderr, code := run(t, append(append(gate, "--json", j, "--junit", x, "--"), spinArgv(t, 2*rounds)...)...)
	if code != 3 {
		t.Fatalf("twice the work: exit %d, want 3\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "regression cpu_seconds (run): ") || !strings.Contains(stderr, "(median of 3)") || !strings.Contains(stderr, "of at most +10% EXCEEDED") {
		t.Errorf("summary does not show the regression:\n%s", stderr)
	}
	r := readReport(t, j)
	if len(r.Regressions) != 2 || r.Regressions[0].OK || r.Regressions[0].ChangePercent == nil || *r.Regressions[0].ChangePercent < 50 {
		t.Errorf("regressions %+v: want cpu_seconds about +100%%", r.Regressions)
	} else {
		t.Logf("twice the work: cpu_seconds %+.1f%%", *r.Regressions[0].ChangePercent)
	}
	if len(r.Baselines) != 3 || r.Baselines[0] != b1 {
		t.Errorf("baselines %q", r.Baselines)
	}
	xb, _ := os.ReadFile(x)
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(xb, &doc); err != nil || len(doc.Suites) != 1 {
		t.Fatalf("JUnit: %v\n%s", err, xb)
	}
	failed := map[string]bool{}
	for _, c := range doc.Suites[0].Cases {
		failed[c.Name] = c.Failure != nil && c.Failure.Type == "resource_regression"
	}
	if !failed["cpu_seconds regression (run)"] || failed["peak_memory_bytes regression (run)"] {
		t.Errorf("JUnit cases %v: want a failure for cpu_seconds only\n%s", failed, xb)
	}

	again := filepath.Join(dir, "again.json")
	_, stderr, code = run(t, append(append(gate, "--json", again, "--"), spinArgv(t, rounds)...)...)
	if code != 0 {
		t.Errorf("the same work again: exit %d, want 0\n%s", code, stderr)
	}
	if r := readReport(t, again); len(r.Regressions) > 0 && r.Regressions[0].ChangePercent != nil {
		t.Logf("the same work again: cpu_seconds %+.1f%%", *r.Regressions[0].ChangePercent)
	}

	stdout, stderr, code := run(t, "diff", b1, j)
	if code != 0 {
		t.Fatalf("crmon diff: exit %d\n%s", code, stderr)
	}
	var row []string
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[0] == "cpu_seconds" {
			row = f
		}
	}
	if row == nil || !strings.HasPrefix(row[3], "+") || !strings.HasPrefix(row[4], "+") {
		t.Errorf("crmon diff: no grown cpu_seconds row:\n%s", stdout)
	}
	if _, _, code := run(t, "diff", "--max-regression", "cpu_seconds=10%", b1, b2, j); code != 3 {
		t.Errorf("crmon diff --max-regression: exit %d, want 3", code)
	}
}

// TestBaselineUsage: bad regression options fail before CMD runs.
func TestBaselineUsage(t *testing.T) {
	requireRootRun(t)
	dir := t.TempDir()
	notReport := filepath.Join(dir, "x.json")
	if err := os.WriteFile(notReport, []byte(`{"a":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-regression", "cpu_seconds=10%"}, "needs --baseline"},
		{[]string{"--baseline", notReport, "--max-regression", "cpu_seconds=10%"}, "not a crmon JSON report"},
		{[]string{"--baseline", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"--baseline", notReport, "--max-regression", "cpu=10%"}, "valid figures are cpu_seconds"},
	} {
		args := append(append([]string{"exec", "-q", noAgent}, tc.args...), "--", "touch", marker)
		_, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%v: CMD ran", tc.args)
		}
	}
}
