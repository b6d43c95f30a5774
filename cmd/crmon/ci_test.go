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
	if !strings.Contains(string(m), "\ncrmon_cpu_seconds 0.") || !strings.HasSuffix(string(m), "# EOF\n") {
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
	if v := props["totals.cpu_seconds"]; !strings.HasPrefix(v, "0.") || props["findings"] == "" {
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
