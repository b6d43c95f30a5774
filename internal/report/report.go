// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package report renders a session.Report for people and CI systems: JSON
// (the documented schema), a text summary, JUnit XML (one test case per
// limit) and a self-contained HTML page with inline SVG plots.
package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/crmon-dev/crmon/pkg/session"
)

// JSON writes r as indented JSON. Series are written only when withSeries
// is set: they are for plots and can be large.
func JSON(w io.Writer, r *session.Report, withSeries bool) error {
	c := *r
	if !withSeries {
		c.Series = nil
	}
	if c.Containers == nil {
		c.Containers = []session.ContainerReport{}
	}
	if c.Limits == nil {
		c.Limits = []session.LimitResult{}
	}
	if c.Sources == nil {
		c.Sources = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// Summary writes a short table of r for a terminal.
func Summary(w io.Writer, r *session.Report) error {
	var b strings.Builder
	head := "crmon: " + r.Name
	if len(r.Command) > 0 {
		head = "crmon exec: " + strings.Join(r.Command, " ")
	}
	// A run measured without the probes lacks whole measures: the first
	// line says so, not only a log line that scrolls away.
	for _, m := range r.SourcesMissing {
		if m.Source == "ebpf" {
			head += " — measured without eBPF: " + m.Reason
		}
	}
	fmt.Fprintf(&b, "%s\n  exit %d after %s", head, r.ExitCode, session.FormatSeconds(r.DurationSeconds))
	if len(r.Sources) > 0 {
		fmt.Fprintf(&b, " (measured by %s)", strings.Join(r.Sources, " + "))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  \tcpu\trunq p99\tctx sw\tblk read\tblk write\tnet rx\tnet tx\tpeak mem\tprocs\n")
	row := func(name string, m *session.Measures) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", name,
			session.FormatSeconds(m.CPUSeconds), session.FormatSeconds(m.RunqueueWaitP99Seconds),
			m.ContextSwitches,
			session.FormatBytes(float64(m.BlockReadBytes)), session.FormatBytes(float64(m.BlockWriteBytes)),
			session.FormatBytes(float64(m.NetRxBytes)), session.FormatBytes(float64(m.NetTxBytes)),
			session.FormatBytes(float64(m.PeakMemoryBytes)), m.ProcessesStarted)
	}
	row("run", &r.Totals)
	for i := range r.Containers {
		c := &r.Containers[i]
		row(c.Name, &c.Measures)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "  host peak: cpu %.1f%%, memory %.1f%%, disk %.1f%%\n",
		r.Host.CPUUsagePercent, r.Host.MemoryUsagePercent, r.Host.DiskUsagePercent)
	if len(r.Unavailable) > 0 {
		fmt.Fprintf(&b, "  not measured: %s\n", strings.Join(r.Unavailable, ", "))
	}
	for _, m := range r.SourcesMissing {
		if m.Source == "docker" {
			fmt.Fprintf(&b, "  containers may be missing: %s\n", m.Reason)
		}
	}
	if r.ContainersOmitted > 0 {
		fmt.Fprintf(&b, "  containers not measured: %d, beyond the first %d\n", r.ContainersOmitted, r.ContainersLimit)
	}
	for _, l := range r.Limits {
		status := "ok"
		if !l.OK {
			status = "EXCEEDED"
		}
		fmt.Fprintf(&b, "  limit %s (%s): %s of %s %s\n", l.Name, l.Scope,
			session.FormatValue(l.Unit, l.Actual), session.FormatValue(l.Unit, l.Limit), status)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string          `xml:"name,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Skipped   int             `xml:"skipped,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr"`
	Hostname  string          `xml:"hostname,attr"`
	Props     []junitProperty `xml:"properties>property,omitempty"`
	Cases     []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes r's limit results as JUnit XML: one test case per limit and
// scope, with a <failure> for each exceeded one, so that CI systems show an
// exceeded limit as a failed test. hostname fills the suite's attribute the
// common JUnit schema requires.
func JUnit(w io.Writer, r *session.Report, hostname string) error {
	name := r.Name
	if name == "" {
		name = "crmon"
	}
	s := junitSuite{
		Name:      "crmon.limits." + name,
		Time:      fmt.Sprintf("%.3f", r.DurationSeconds),
		Timestamp: r.StartedAt.UTC().Format("2006-01-02T15:04:05"),
		Hostname:  hostname,
		Cases:     []junitCase{},
	}
	if len(r.Command) > 0 {
		s.Props = append(s.Props, junitProperty{Name: "command", Value: strings.Join(r.Command, " ")})
		s.Props = append(s.Props, junitProperty{Name: "exit_code", Value: fmt.Sprint(r.ExitCode)})
	}
	for _, l := range r.Limits {
		c := junitCase{
			Name:      l.Name + " (" + l.Scope + ")",
			Classname: "crmon.limits." + classScope(l.Scope),
			Time:      "0",
			SystemOut: fmt.Sprintf("%s: %s of %s", l.Name, session.FormatValue(l.Unit, l.Actual), session.FormatValue(l.Unit, l.Limit)),
		}
		if !l.OK {
			msg := (&session.LimitError{Result: l}).Error()
			c.Failure = &junitFailure{Message: msg, Type: "resource_limit_exceeded",
				Text: fmt.Sprintf("resource: %s\nscope: %s\nlimit: %v %s\nactual: %v %s\n", l.Name, l.Scope, l.Limit, l.Unit, l.Actual, l.Unit)}
			s.Failures++
		}
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	doc := junitSuites{Name: "crmon", Tests: s.Tests, Failures: s.Failures, Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// classScope turns "container:db-1" into "container.db-1": JUnit viewers
// split class names on dots.
func classScope(scope string) string {
	return strings.ReplaceAll(scope, ":", ".")
}
