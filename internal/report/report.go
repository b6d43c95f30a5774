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
	"strconv"
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
	if c.Findings == nil {
		c.Findings = []session.Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// Summary writes a short table of r for a terminal. What was not
// measured reads n/a, never 0.
func Summary(w io.Writer, r *session.Report) error {
	var b strings.Builder
	b.WriteString(session.TerminalText(headline(r), false))
	// A run measured without the probes lacks whole measures: the first
	// line says so, not only a log line that scrolls away.
	for _, m := range r.SourcesMissing {
		if m.Source == "ebpf" {
			b.WriteString(" — measured without eBPF: " + m.Reason)
		}
	}
	b.WriteString("\n  ")
	if r.ExitCode != nil {
		fmt.Fprintf(&b, "exit %d after ", *r.ExitCode)
	} else {
		b.WriteString("lasted ")
	}
	b.WriteString(session.FormatSeconds(r.DurationSeconds))
	if len(r.Sources) > 0 {
		fmt.Fprintf(&b, " (measured by %s)", strings.Join(r.Sources, " + "))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  \tcpu\trunq p99\tctx sw\tblk read\tblk write\tnet rx\tnet tx\tpeak mem\tprocs\n")
	row := func(name string, m *session.Measures) {
		fmt.Fprintf(tw, "  %s", name)
		for _, f := range summaryFields {
			fmt.Fprintf(tw, "\t%s", measureText(m, f))
		}
		fmt.Fprintln(tw)
	}
	row(totalsLabel(r), &r.Totals)
	for i := range r.Containers {
		c := &r.Containers[i]
		row(c.Name, &c.Measures)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Processes) > 0 {
		b.WriteString(processTable(r))
	}
	fmt.Fprintf(&b, "  host peak: cpu %s, memory %s, disk %s\n", hostText(&r.Host, "cpu_usage_percent", r.Host.CPUUsagePercent),
		hostText(&r.Host, "memory_usage_percent", r.Host.MemoryUsagePercent), hostText(&r.Host, "disk_usage_percent", r.Host.DiskUsagePercent))
	if st := r.Stragglers; st != nil {
		fmt.Fprintf(&b, "  left running when CMD exited: %s", stragglerList(st))
		switch st.Killed {
		case "max-wait":
			b.WriteString("; killed at the end of --max-wait")
		case "kill-stragglers":
			b.WriteString("; killed (--kill-stragglers)")
		default:
			b.WriteString("; waited for")
		}
		b.WriteString("\n")
	}
	if len(r.Unavailable) > 0 {
		fmt.Fprintf(&b, "  not measured: %s\n", strings.Join(r.Unavailable, ", "))
	}
	for _, m := range r.SourcesMissing {
		if m.Source == "docker" {
			fmt.Fprintf(&b, "  containers may be missing: %s\n", m.Reason)
		}
	}
	if r.BlockLostCompletions > 0 {
		fmt.Fprintf(&b, "  block I/O operations and latencies are a lower bound: the probes lost %d request completions on the host during the run\n", r.BlockLostCompletions)
	}
	if r.ContainersOmitted > 0 {
		fmt.Fprintf(&b, "  containers not measured: %d, beyond the first %d\n", r.ContainersOmitted, r.ContainersLimit)
	}
	for _, l := range r.Limits {
		fmt.Fprintf(&b, "  limit %s (%s): %s of %s %s", l.Name, scopeLabel(l),
			actualText(l), session.FormatValue(l.Unit, l.Limit), statusText[l.Status])
		if l.Reason != "" {
			b.WriteString(": " + l.Reason)
		}
		b.WriteString("\n")
	}
	for _, g := range r.Regressions {
		b.WriteString("  " + RegressionText(g) + "\n")
	}
	for _, f := range r.Findings {
		b.WriteString("  " + FindingText(f) + "\n")
	}
	// Names in it are others' (cgroups, processes, containers): none of
	// their control characters reaches the terminal.
	_, err := io.WriteString(w, session.TerminalText(b.String(), true))
	return err
}

// RegressionText is one regression result for people: "regression
// cpu_seconds (run): 1.200s, baseline 0.600s (median of 3), +100.0% of at
// most +10% EXCEEDED".
func RegressionText(g session.RegressionResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "regression %s (%s): %s, baseline %s", g.Figure, g.Scope,
		session.FormatFigure(g.Unit, g.Actual), session.FormatFigure(g.Unit, g.Baseline))
	if g.Baselines > 1 {
		fmt.Fprintf(&b, " (median of %d)", g.Baselines)
	}
	if g.Actual != nil && g.Baseline != nil {
		b.WriteString(", " + session.ChangeText(g.ChangePercent))
	}
	fmt.Fprintf(&b, " of at most +%s%% %s", strconv.FormatFloat(g.MaxPercent, 'f', -1, 64), statusText[g.Status])
	if g.Reason != "" {
		b.WriteString(": " + g.Reason)
	}
	return b.String()
}

// topProcesses is how many process rows the summary and HTML show.
const topProcesses = 10

// processFields are the process table's columns after the command.
var processFields = []string{"cpu_seconds", "runqueue_wait_seconds", "block_read_bytes", "block_write_bytes", "net_rx_bytes", "net_tx_bytes", "peak_memory_bytes"}

// processTable is the summary's table of the top processes by CPU.
func processTable(r *session.Report) string {
	var b strings.Builder
	n := min(len(r.Processes), topProcesses)
	fmt.Fprintf(&b, "  top %d of %d commands by CPU:\n", n, len(r.Processes))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    command\tprocs\tcpu\trunq wait\tblk read\tblk write\tnet rx\tnet tx\tpeak rss\n")
	for _, p := range r.Processes[:n] {
		fmt.Fprintf(tw, "    %s\t%d", truncate(p.Command, 40), p.Count)
		for _, f := range processFields {
			fmt.Fprintf(tw, "\t%s", processText(&p.Measures, f))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	return b.String()
}

// processText renders a process figure.
func processText(m *session.Measures, f string) string {
	if f == "runqueue_wait_seconds" {
		if !m.Measured(f) {
			return notMeasured
		}
		return session.FormatSeconds(m.RunqueueWaitSeconds)
	}
	return measureText(m, f)
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// FindingText is one finding for people: "finding cpu_starved (run,
// critical): the run waited …".
func FindingText(f session.Finding) string {
	return fmt.Sprintf("finding %s (%s, %s): %s", f.Code, f.Scope, f.Severity, f.Message)
}

// stragglerList names the first few processes of st.
func stragglerList(st *session.Stragglers) string {
	var parts []string
	for i, p := range st.Processes {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(st.Processes)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%d %s", p.PID, p.Command))
	}
	return strings.Join(parts, ", ")
}

// headline says what the report covers: CMD for `crmon exec`; for a
// session, its cgroup and containers, or its containers alone.
func headline(r *session.Report) string {
	if len(r.Command) > 0 {
		return "crmon exec: " + strings.Join(r.Command, " ")
	}
	cs := fmt.Sprintf("the %d containers", len(r.Containers))
	if len(r.Containers) == 1 {
		cs = "the 1 container"
	}
	if r.TotalsOf == session.TotalsContainers {
		return fmt.Sprintf("crmon session %s: only %s created during the session (no cgroup given: the session's own processes are not measured)", r.Name, cs)
	}
	return fmt.Sprintf("crmon session %s: cgroup %s, and %s created during the session", r.Name, r.Cgroup, cs)
}

// totalsLabel names the totals row for what it measured.
func totalsLabel(r *session.Report) string {
	if r.TotalsOf == session.TotalsContainers {
		return "containers"
	}
	return "run"
}

// summaryFields are the summary's columns after the name.
var summaryFields = []string{"cpu_seconds", "runqueue_wait_p99_seconds", "context_switches",
	"block_read_bytes", "block_write_bytes", "net_rx_bytes", "net_tx_bytes", "peak_memory_bytes", "processes_started"}

// notMeasured is how people see a figure nothing measured.
const notMeasured = "n/a"

// measureText renders one field of m, n/a when it was not measured.
func measureText(m *session.Measures, field string) string {
	if !m.Measured(field) {
		return notMeasured
	}
	switch field {
	case "cpu_seconds":
		return session.FormatSeconds(m.CPUSeconds)
	case "runqueue_wait_p99_seconds":
		return session.FormatSeconds(m.RunqueueWaitP99Seconds)
	case "context_switches":
		return strconv.FormatUint(m.ContextSwitches, 10)
	case "block_read_bytes":
		return session.FormatBytes(float64(m.BlockReadBytes))
	case "block_write_bytes":
		return session.FormatBytes(float64(m.BlockWriteBytes))
	case "net_rx_bytes":
		return session.FormatBytes(float64(m.NetRxBytes))
	case "net_tx_bytes":
		return session.FormatBytes(float64(m.NetTxBytes))
	case "peak_memory_bytes":
		return session.FormatBytes(float64(m.PeakMemoryBytes))
	case "processes_started":
		return strconv.FormatUint(m.ProcessesStarted, 10)
	}
	return "?"
}

var statusText = map[string]string{
	session.StatusOK:          "ok",
	session.StatusExceeded:    "EXCEEDED",
	session.StatusNotMeasured: "NOT MEASURED",
	session.StatusSkipped:     "skipped",
}

// hostText renders a host peak, n/a when no sample read it.
func hostText(h *session.HostPeaks, field string, v float64) string {
	if !h.Measured(field) {
		return notMeasured
	}
	return session.FormatValue(session.UnitPercent, v)
}

// actualText is a limit's actual value, n/a when it has none.
func actualText(l session.LimitResult) string {
	if !l.Measured() {
		return notMeasured
	}
	return session.FormatValue(l.Unit, l.Actual)
}

// scopeLabel is a limit result's scope, with the pattern that selected
// the container when it is not the container's name, so that two patterns
// matching one container give two names.
func scopeLabel(l session.LimitResult) string {
	if name, ok := strings.CutPrefix(l.Scope, session.ScopeContainerPrefix); ok && l.Pattern != "" && l.Pattern != name {
		return l.Scope + " by " + l.Pattern
	}
	return l.Scope
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
	Skipped   *junitFailure `xml:"skipped,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnit writes r as JUnit XML: one suite named after the report, one test
// case for the run itself (failed when CMD's exit code was not 0), with
// the totals as the suite's properties, and one test case per limit and
// scope: a <failure> for an exceeded limit, an <error> for one on a figure
// that was not measured, <skipped> for one not checked. Suite and case
// names depend only on the report's name and the limits, so CI systems
// can follow each across runs. hostname fills the suite's attribute the
// common JUnit schema requires.
func JUnit(w io.Writer, r *session.Report, hostname string) error {
	name := r.Name
	if name == "" {
		name = "crmon"
	}
	s := junitSuite{
		Name:      name,
		Time:      fmt.Sprintf("%.3f", r.DurationSeconds),
		Timestamp: r.StartedAt.UTC().Format("2006-01-02T15:04:05"),
		Hostname:  hostname,
		Cases:     []junitCase{runCase(r, name)},
	}
	if len(r.Command) > 0 {
		s.Props = append(s.Props, junitProperty{Name: "command", Value: strings.Join(r.Command, " ")})
	}
	if r.ExitCode != nil {
		s.Props = append(s.Props, junitProperty{Name: "exit_code", Value: strconv.Itoa(*r.ExitCode)})
	}
	if r.TotalsOf != "" {
		s.Props = append(s.Props, junitProperty{Name: "totals_of", Value: r.TotalsOf})
	}
	totals := jsonFields(&r.Totals)
	for _, f := range session.MeasureFields() {
		s.Props = append(s.Props, junitProperty{Name: "totals." + f, Value: totals[f]})
	}
	s.Props = append(s.Props, junitProperty{Name: "findings", Value: strconv.Itoa(len(r.Findings))})
	for i, f := range r.Findings {
		s.Props = append(s.Props, junitProperty{Name: fmt.Sprintf("finding.%d", i+1), Value: FindingText(f)})
	}
	for _, l := range r.Limits {
		c := junitCase{
			Name:      l.Name + " (" + scopeLabel(l) + ")",
			Classname: name + ".limits." + classScope(l.Scope),
			Time:      "0",
			SystemOut: fmt.Sprintf("%s: %s of %s", l.Name, actualText(l), session.FormatValue(l.Unit, l.Limit)),
		}
		switch l.Status {
		case session.StatusExceeded:
			msg := (&session.LimitError{Result: l}).Error()
			c.Failure = &junitFailure{Message: msg, Type: "resource_limit_exceeded",
				Text: fmt.Sprintf("resource: %s\nscope: %s\nlimit: %v %s\nactual: %v %s\n", l.Name, l.Scope, l.Limit, l.Unit, l.Actual, l.Unit)}
			s.Failures++
		case session.StatusNotMeasured:
			msg := (&session.NotMeasuredError{Result: l}).Error()
			c.Error = &junitFailure{Message: msg, Type: "not_measured",
				Text: fmt.Sprintf("resource: %s\nscope: %s\nlimit: %v %s\nactual: not measured\n", l.Name, l.Scope, l.Limit, l.Unit)}
			s.Errors++
		case session.StatusSkipped:
			c.Skipped = &junitFailure{Message: l.Reason}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
	}
	for _, g := range r.Regressions {
		c := junitCase{
			Name:      g.Figure + " regression (" + g.Scope + ")",
			Classname: name + ".regressions." + classScope(g.Scope),
			Time:      "0",
			SystemOut: RegressionText(g),
		}
		switch g.Status {
		case session.StatusExceeded:
			c.Failure = &junitFailure{Message: (&session.RegressionError{Result: g}).Error(), Type: "resource_regression",
				Text: fmt.Sprintf("figure: %s\nscope: %s\nbaseline: %s\nbaselines: %d\nactual: %s\nchange: %s\nmax: +%v%%\n",
					g.Figure, g.Scope, session.FormatFigure(g.Unit, g.Baseline), g.Baselines, session.FormatFigure(g.Unit, g.Actual), session.ChangeText(g.ChangePercent), g.MaxPercent)}
			s.Failures++
		case session.StatusNotMeasured:
			c.Error = &junitFailure{Message: "regression not checked: " + g.Reason, Type: "not_measured"}
			s.Errors++
		case session.StatusSkipped:
			c.Skipped = &junitFailure{Message: g.Reason}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
	}
	if s.Cases[0].Failure != nil {
		s.Failures++
	}
	s.Tests = len(s.Cases)
	doc := junitSuites{Name: "crmon", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: s.Time, Suites: []junitSuite{s}}
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

// runCase is the test case of the run itself: it passes unless CMD's
// exit code, when one was seen, was not 0.
func runCase(r *session.Report, suite string) junitCase {
	c := junitCase{Name: totalsLabel(r), Classname: suite, Time: fmt.Sprintf("%.3f", r.DurationSeconds)}
	var out strings.Builder
	totals := jsonFields(&r.Totals)
	for _, f := range session.MeasureFields() {
		fmt.Fprintf(&out, "%s: %s\n", f, totals[f])
	}
	for _, f := range r.Findings {
		out.WriteString(FindingText(f) + "\n")
	}
	c.SystemOut = out.String()
	if r.ExitCode != nil && *r.ExitCode != 0 {
		c.Failure = &junitFailure{Message: fmt.Sprintf("%s exited %d", strings.Join(r.Command, " "), *r.ExitCode), Type: "exit_code"}
	}
	return c
}

// jsonFields are m's fields as the JSON report writes them: null when
// not measured.
func jsonFields(m *session.Measures) map[string]string {
	out := map[string]string{}
	b, err := json.Marshal(m)
	if err != nil {
		return out
	}
	var all map[string]json.RawMessage
	if json.Unmarshal(b, &all) != nil {
		return out
	}
	for k, v := range all {
		out[k] = string(v)
	}
	return out
}

// classScope turns "container:db-1" into "container.db-1": JUnit viewers
// split class names on dots.
func classScope(scope string) string {
	return strings.ReplaceAll(scope, ":", ".")
}
