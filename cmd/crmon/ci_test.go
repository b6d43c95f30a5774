// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestExecCIReports: in a GitHub Actions step, the Markdown summary is
// appended to $GITHUB_STEP_SUMMARY after what earlier steps wrote; the
// GitLab metrics report and the JUnit properties carry the totals.
func TestExecCIReports(t *testing.T) {
	requireRootRun(t)
	dir := t.TempDir()
	summary, metrics, x := filepath.Join(dir, "step-summary.md"), filepath.Join(dir, "metrics.txt"), filepath.Join(dir, "r.xml")
	if err := os.WriteFile(summary, []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITHUB_STEP_SUMMARY", summary)
	_, stderr, code := run(t, "exec", "-q", noAgent, "--gitlab-metrics", metrics, "--junit", x, "--", "sh", "-c", burner)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, _ := os.ReadFile(summary)
	if !strings.HasPrefix(string(b), "earlier step\n### ✅ crmon exec: sh -c ") || !strings.Contains(string(b), "\n| run | ") {
		t.Errorf("step summary:\n%s", b)
	}
	m, _ := os.ReadFile(metrics)
	// The burner's CPU time: about 0.6 s here, past a second on a slower
	// or busier host, never 0.
	if !strings.HasSuffix(string(m), "# EOF\n") || !positive(metricsValue(string(m), "crmon_cpu_seconds")) {
		t.Errorf("metrics report:\n%s", m)
	}
	xb, _ := os.ReadFile(x)
	var doc struct {
		Suites []struct {
			Props []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(xb, &doc); err != nil || len(doc.Suites) != 1 {
		t.Fatalf("JUnit: %v", err)
	}
	props := map[string]string{}
	for _, p := range doc.Suites[0].Props {
		props[p.Name] = p.Value
	}
	if !positive(props["totals.cpu_seconds"]) || props["findings"] == "" {
		t.Errorf("JUnit properties %v: want totals.cpu_seconds and findings", props)
	}

	// --markdown writes its own file, and the step summary is left alone.
	md := filepath.Join(dir, "s.md")
	if _, stderr, code := run(t, "exec", "-q", noAgent, "--markdown", md, "--", "true"); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if b2, _ := os.ReadFile(summary); string(b2) != string(b) {
		t.Error("--markdown also appended to $GITHUB_STEP_SUMMARY")
	}
	if b3, _ := os.ReadFile(md); !strings.HasPrefix(string(b3), "### ✅ crmon exec: true") {
		t.Errorf("--markdown file:\n%s", b3)
	}
}

// metricsValue is the value of the sample named name in an OpenMetrics
// text without labels, "" if there is none.
func metricsValue(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// positive says whether s is a number greater than 0.
func positive(s string) bool {
	v, err := strconv.ParseFloat(s, 64)
	return err == nil && v > 0
}
