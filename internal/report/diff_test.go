// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/pkg/session"
)

// diffPair is sample() as a baseline and a run that doubled its CPU,
// dropped a container and started another.
func diffPair() (*session.Report, *session.Report) {
	base, cur := sample(), sample()
	cur.Totals.CPUSeconds = 1.22
	cur.DurationSeconds = 3
	cur.Containers[0].Name = "web-1"
	return base, cur
}

func TestDiff(t *testing.T) {
	base, cur := diffPair()
	var b bytes.Buffer
	if err := Diff(&b, []*session.Report{base}, []string{"base.json"}, cur, "new.json"); err != nil {
		t.Fatal(err)
	}
	golden(t, "diff.txt", b.Bytes())
	out := b.String()
	for _, want := range []string{
		"crmon diff: base.json → new.json",
		"container web-1 (only in new.json)",
		"container db-1 (only in the baseline)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	row := func(name string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return f
			}
		}
		return nil
	}
	if got := row("cpu_seconds"); strings.Join(got, " ") != "cpu_seconds 610.0ms 1.220s +610.0ms +100.0%" {
		t.Errorf("cpu_seconds row %q", got)
	}
	if got := row("duration_seconds"); strings.Join(got, " ") != "duration_seconds 1.500s 3.000s +1.500s +100.0%" {
		t.Errorf("duration_seconds row %q", got)
	}
}

// TestDiffMedian: with several baselines each figure's baseline is their
// median.
func TestDiffMedian(t *testing.T) {
	b1, b2, b3 := sample(), sample(), sample()
	b1.Totals.CPUSeconds, b2.Totals.CPUSeconds, b3.Totals.CPUSeconds = 1, 9, 2
	cur := sample()
	cur.Totals.CPUSeconds = 2
	var b bytes.Buffer
	if err := Diff(&b, []*session.Report{b1, b2, b3}, []string{"a", "b", "c"}, cur, "n"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "median of a, b, c") {
		t.Errorf("diff does not say its baseline is a median:\n%s", b.String())
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "cpu_seconds" {
			if strings.Join(f, " ") != "cpu_seconds 2.000s 2.000s = +0.0%" {
				t.Errorf("cpu_seconds row %q", f)
			}
			return
		}
	}
	t.Error("no cpu_seconds row")
}

// TestRegressionReports: a regression beyond its bound is a summary line,
// a JUnit <failure> of its own and a row of the HTML page.
func TestRegressionReports(t *testing.T) {
	base, cur := diffPair()
	if err := cur.CheckRegressions([]*session.Report{base}, []session.RegressionBound{{Figure: "cpu_seconds", MaxPercent: 10}, {Figure: "peak_memory_bytes", MaxPercent: 20}}, session.UnmeasuredError); err == nil {
		t.Fatal("no regression found")
	}
	var sum bytes.Buffer
	if err := Summary(&sum, cur); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"regression cpu_seconds (run): 1.220s, baseline 610.0ms, +100.0% of at most +10% EXCEEDED",
		"regression peak_memory_bytes (run): 12.0MiB, baseline 12.0MiB, +0.0% of at most +20% ok",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
	var x bytes.Buffer
	if err := JUnit(&x, cur, "host"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Failures int `xml:"failures,attr"`
			Cases    []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(x.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range doc.Suites[0].Cases {
		if c.Name == "cpu_seconds regression (run)" {
			found = true
			if c.Failure == nil || c.Failure.Type != "resource_regression" || c.Classname != "exec.regressions.run" {
				t.Errorf("case %+v: want a resource_regression failure in exec.regressions.run", c)
			}
		}
		if c.Name == "peak_memory_bytes regression (run)" && c.Failure != nil {
			t.Error("peak_memory_bytes held its bound but failed")
		}
	}
	if !found {
		t.Errorf("no regression test case:\n%s", x.String())
	}
	var h bytes.Buffer
	if err := HTML(&h, cur); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.String(), `<table id="checks">`) || !strings.Contains(h.String(), "<td>regression</td><td>cpu_seconds</td>") || !strings.Contains(h.String(), "(&#43;100.0%)") {
		t.Error("HTML lacks the regressions in its checks table")
	}
}
