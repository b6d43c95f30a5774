// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/crmon-dev/crmon/pkg/session"
)

// Markdown writes r as GitHub-flavoured Markdown, for a CI job's summary
// ($GITHUB_STEP_SUMMARY): a heading, a table of the totals and each
// container, the top commands by CPU, then the findings, the limits and
// the regressions. Every
// string from outside (the command, container names, messages) is
// escaped, so that it reads as text, not as Markdown or HTML.
func Markdown(w io.Writer, r *session.Report) error {
	var b strings.Builder
	verdict := "✅"
	if (r.ExitCode != nil && *r.ExitCode != 0) || r.Exceeded() || regressed(r) {
		verdict = "❌"
	}
	fmt.Fprintf(&b, "### %s %s\n\n", verdict, mdEscape(headline(r)))
	if r.ExitCode != nil {
		fmt.Fprintf(&b, "Exit %d after %s", *r.ExitCode, session.FormatSeconds(r.DurationSeconds))
	} else {
		fmt.Fprintf(&b, "Lasted %s", session.FormatSeconds(r.DurationSeconds))
	}
	if len(r.Sources) > 0 {
		fmt.Fprintf(&b, ", measured by %s", strings.Join(r.Sources, " + "))
	}
	b.WriteString(".\n\n")
	heads := []string{"cpu", "run-queue p99", "context switches", "block read", "block write", "net rx", "net tx", "peak memory", "processes"}
	b.WriteString("| | " + strings.Join(heads, " | ") + " |\n|---|" + strings.Repeat("---:|", len(heads)) + "\n")
	row := func(name string, m *session.Measures) {
		b.WriteString("| " + mdEscape(name))
		for _, f := range summaryFields {
			b.WriteString(" | " + measureText(m, f))
		}
		b.WriteString(" |\n")
	}
	row(totalsLabel(r), &r.Totals)
	for i := range r.Containers {
		c := &r.Containers[i]
		row("container "+c.Name, &c.Measures)
	}
	if len(r.Processes) > 0 {
		n := min(len(r.Processes), topProcesses)
		fmt.Fprintf(&b, "\n**Top %d of %d commands by CPU**\n\n| command | processes | cpu | run-queue wait | block read | block write | net rx | net tx | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", n, len(r.Processes))
		for _, p := range r.Processes[:n] {
			fmt.Fprintf(&b, "| %s | %d", mdEscape(p.Command), p.Count)
			for _, f := range processFields {
				b.WriteString(" | " + processText(&p.Measures, f))
			}
			b.WriteString(" |\n")
		}
	}
	b.WriteString("\n**Findings**\n\n")
	if len(r.Findings) == 0 {
		b.WriteString("None: nothing slowed the run down or failed it.\n")
	}
	for _, f := range r.Findings {
		icon := "⚠️"
		if f.Severity == session.SeverityCritical {
			icon = "🛑"
		}
		fmt.Fprintf(&b, "- %s **%s** (%s, %s): %s\n", icon, f.Code, mdEscape(f.Scope), f.Severity, mdEscape(f.Message))
	}
	if len(r.Limits) > 0 {
		b.WriteString("\n**Limits**\n\n| limit | scope | limit | actual | status |\n|---|---|---:|---:|---|\n")
		for _, l := range r.Limits {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", l.Name, mdEscape(scopeLabel(l)), session.FormatValue(l.Unit, l.Limit),
				actualText(l), mdStatus(l.Status, l.Reason))
		}
	}
	if len(r.Regressions) > 0 {
		b.WriteString("\n**Regressions**\n\n| figure | scope | baseline | actual | change | at most | status |\n|---|---|---:|---:|---:|---:|---|\n")
		for _, g := range r.Regressions {
			base := session.FormatFigure(g.Unit, g.Baseline)
			if g.Baselines > 1 {
				base += fmt.Sprintf(" (median of %d)", g.Baselines)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | +%s%% | %s |\n", g.Figure, g.Scope, base, session.FormatFigure(g.Unit, g.Actual),
				session.ChangeText(g.ChangePercent), strconv.FormatFloat(g.MaxPercent, 'f', -1, 64), mdStatus(g.Status, g.Reason))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func regressed(r *session.Report) bool {
	for _, g := range r.Regressions {
		if g.Status == session.StatusExceeded || g.Status == session.StatusNotMeasured {
			return true
		}
	}
	return false
}

func mdStatus(status, reason string) string {
	s := statusText[status]
	switch status {
	case session.StatusOK:
		s = "✅ ok"
	case session.StatusExceeded, session.StatusNotMeasured:
		s = "❌ " + s
	}
	if reason != "" {
		s += ": " + mdEscape(reason)
	}
	return s
}

// mdEscape makes s plain text in Markdown, also inside a table cell: a
// backslash before every character that starts markup mid-line
// (emphasis, code, links, HTML, entities, table cells, strikethrough,
// GitHub's $math$, autolinks), and no line breaks. The text never starts
// a line, so block markers (-, 1.) need none.
func mdEscape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\n' || r == '\r':
			b.WriteByte(' ')
		case strings.ContainsRune("\\`*_[]<>|~&$", r),
			// GFM's extended autolinks: a name with http://… or www.… in
			// it would be a link.
			r == ':' && strings.HasPrefix(s[i:], "://"),
			r == '.' && i >= 3 && strings.EqualFold(s[i-3:i], "www"):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// GitLabMetrics writes r's figures as a GitLab metrics report (the
// OpenMetrics text GitLab reads from artifacts:reports:metrics): one
// `name value` line per figure of the totals (crmon_cpu_seconds, …),
// crmon_duration_seconds, crmon_exit_code, crmon_findings, and each
// container's figures with a container label; figures not measured are
// left out. GitLab compares each line with the target branch's.
func GitLabMetrics(w io.Writer, r *session.Report) error {
	var b strings.Builder
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	fmt.Fprintf(&b, "crmon_duration_seconds %s\n", num(r.DurationSeconds))
	if r.ExitCode != nil {
		fmt.Fprintf(&b, "crmon_exit_code %d\n", *r.ExitCode)
	}
	fmt.Fprintf(&b, "crmon_findings %d\n", len(r.Findings))
	for _, f := range session.MeasureFields() {
		if v, ok := r.Totals.Figure(f); ok {
			fmt.Fprintf(&b, "crmon_%s %s\n", f, num(v))
		}
	}
	for i := range r.Containers {
		c := &r.Containers[i]
		for _, f := range session.MeasureFields() {
			if v, ok := c.Figure(f); ok {
				fmt.Fprintf(&b, "crmon_container_%s{container=\"%s\"} %s\n", f, labelValue(c.Name), num(v))
			}
		}
	}
	b.WriteString("# EOF\n")
	_, err := io.WriteString(w, b.String())
	return err
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// labelValue keeps a container name to the characters Docker allows in
// one, so that no quote, backslash or space can break the line (GitLab
// splits lines on spaces).
func labelValue(s string) string {
	return labelUnsafe.ReplaceAllString(s, "_")
}
