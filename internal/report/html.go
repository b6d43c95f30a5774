// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmon-dev/crmon/pkg/session"
)

// Chart geometry, in SVG units (pixels at 100 %).
const (
	plotW, plotH = 560, 190
	padL, padB   = 70, 38
	padT, padR   = 24, 14
)

type line struct {
	name  string
	color string
	ys    []float64
}

type chart struct {
	title string
	unit  string // session.UnitBytes, "cores", "bytes/s"
	ts    []float64
	lines []line
	// notMeasured draws no line, only n/a: a line at 0 would read as
	// a measurement.
	notMeasured bool
}

type scopeView struct {
	Title  string
	Charts []template.HTML
}

// card is one figure at the top of the page.
type card struct {
	Label, Value, Note string
	Bad                bool
}

// check is one limit or regression, pass or fail.
type check struct {
	Kind, Name, Scope, Bound, Actual, Result, Reason string
	Failed, Skipped                                  bool
}

// measureRow is a row of the totals and containers table.
type measureRow struct {
	Name, Image, Exit string
	Cells             []string
	Failed            bool
}

type htmlView struct {
	Title     string
	Command   string
	Verdict   string
	Failed    bool
	Started   string
	Summary   string
	Cards     []card
	Checks    []check
	Findings  []session.Finding
	Heads     []string
	Rows      []measureRow
	Procs     []session.ProcessReport
	ProcsN    int
	Timeline  template.HTML
	Scopes    []scopeView
	Interval  string
	Degraded  []string
	Generated string
}

// HTML writes one self-contained page for people: the verdict and cards
// with the main figures, the findings, the limits and regressions as a
// pass/fail table, the run and its containers as a table, the top
// processes, a timeline of the containers, and charts of CPU, memory,
// block I/O and network over time for the run and each container (inline
// SVG, values on hover). The page fetches nothing and runs no script.
func HTML(w io.Writer, r *session.Report) error {
	var sum strings.Builder
	if err := Summary(&sum, r); err != nil {
		return err
	}
	v := htmlView{Title: "crmon report", Summary: sum.String(), Findings: r.Findings,
		Procs: r.Processes[:min(len(r.Processes), topProcesses)], ProcsN: len(r.Processes),
		Started: r.StartedAt.UTC().Format(time.RFC3339)}
	if r.Name != "" {
		v.Title += ": " + r.Name
	}
	v.Command = headline(r)
	v.Failed = (r.ExitCode != nil && *r.ExitCode != 0) || r.Exceeded() || regressed(r)
	v.Verdict = "PASSED"
	if v.Failed {
		v.Verdict = "FAILED"
	}
	v.Cards = cards(r)
	v.Checks = checks(r)
	v.Heads = []string{"cpu", "run-queue wait", "run-queue p99", "context switches", "block read", "block write", "block p99", "net rx", "net tx", "peak memory", "processes"}
	fields := []string{"cpu_seconds", "runqueue_wait_seconds", "runqueue_wait_p99_seconds", "context_switches", "block_read_bytes", "block_write_bytes",
		"block_io_latency_p99_seconds", "net_rx_bytes", "net_tx_bytes", "peak_memory_bytes", "processes_started"}
	row := func(name string, m *session.Measures) measureRow {
		mr := measureRow{Name: name}
		for _, f := range fields {
			mr.Cells = append(mr.Cells, figureText(m, f))
		}
		return mr
	}
	v.Rows = append(v.Rows, row(totalsLabel(r), &r.Totals))
	for i := range r.Containers {
		c := &r.Containers[i]
		mr := row(c.Name, &c.Measures)
		mr.Image = c.Image
		switch {
		case c.ExitCode != nil:
			mr.Exit = strconv.Itoa(*c.ExitCode)
			mr.Failed = *c.ExitCode != 0
			if c.OOMKilled {
				mr.Exit += " (OOM)"
			}
		default:
			mr.Exit = "running"
		}
		v.Rows = append(v.Rows, mr)
	}
	v.Timeline = timeline(r)
	for _, m := range r.SourcesMissing {
		v.Degraded = append(v.Degraded, fmt.Sprintf("%s: %s", m.Source, m.Reason))
	}
	if r.Series != nil {
		v.Interval = session.FormatSeconds(r.Series.IntervalSeconds)
		v.Scopes = append(v.Scopes, scopeView{Title: totalsLabel(r), Charts: charts(r.Series.Run, &r.Totals)})
		// Series keys are names, or NAME@SHORTID where a name was reused.
		byKey := map[string]*session.Measures{}
		for i := range r.Containers {
			c := &r.Containers[i]
			byKey[c.Name] = &c.Measures
			byKey[c.Name+"@"+c.ID[:min(12, len(c.ID))]] = &c.Measures
		}
		names := make([]string, 0, len(r.Series.Containers))
		for n := range r.Series.Containers {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v.Scopes = append(v.Scopes, scopeView{Title: "container " + n, Charts: charts(r.Series.Containers[n], byKey[n])})
		}
	}
	return pageTmpl().Execute(w, v)
}

// figureText is a figure of m for the tables, n/a when not measured.
func figureText(m *session.Measures, f string) string {
	v, ok := m.Figure(f)
	if !ok {
		return notMeasured
	}
	return session.FormatValue(session.FigureUnit(f), v)
}

// cards are the main figures of r, for the top of the page.
func cards(r *session.Report) []card {
	t := &r.Totals
	cs := []card{{Label: "duration", Value: session.FormatSeconds(r.DurationSeconds)}}
	if r.ExitCode != nil {
		cs = append(cs, card{Label: "exit code", Value: strconv.Itoa(*r.ExitCode), Bad: *r.ExitCode != 0})
	}
	cs = append(cs,
		card{Label: "CPU time", Value: figureText(t, "cpu_seconds"), Note: fmt.Sprintf("%s waiting for a CPU", figureText(t, "runqueue_wait_seconds"))},
		card{Label: "peak memory", Value: figureText(t, "peak_memory_bytes")},
		card{Label: "block I/O", Value: figureText(t, "block_read_bytes") + " / " + figureText(t, "block_write_bytes"), Note: "read / written"},
		card{Label: "network", Value: figureText(t, "net_rx_bytes") + " / " + figureText(t, "net_tx_bytes"), Note: "received / sent"},
		card{Label: "processes", Value: figureText(t, "processes_started"), Note: fmt.Sprintf("%d containers", len(r.Containers))},
	)
	failed, n := 0, len(r.Limits)+len(r.Regressions)
	for _, l := range r.Limits {
		if l.Status == session.StatusExceeded || l.Status == session.StatusNotMeasured {
			failed++
		}
	}
	for _, g := range r.Regressions {
		if g.Status == session.StatusExceeded || g.Status == session.StatusNotMeasured {
			failed++
		}
	}
	if n > 0 {
		cs = append(cs, card{Label: "limits and regressions", Value: fmt.Sprintf("%d of %d failed", failed, n), Bad: failed > 0})
	}
	crit := 0
	for _, f := range r.Findings {
		if f.Severity == session.SeverityCritical {
			crit++
		}
	}
	cs = append(cs, card{Label: "findings", Value: strconv.Itoa(len(r.Findings)), Note: fmt.Sprintf("%d critical", crit), Bad: crit > 0})
	return cs
}

// checks are r's limits and regressions as one pass/fail list.
func checks(r *session.Report) []check {
	var out []check
	for _, l := range r.Limits {
		c := check{Kind: "limit", Name: l.Name, Scope: scopeLabel(l), Bound: "≤ " + session.FormatValue(l.Unit, l.Limit),
			Actual: actualText(l), Reason: l.Reason}
		c.Result, c.Failed, c.Skipped = resultOf(l.Status)
		out = append(out, c)
	}
	for _, g := range r.Regressions {
		base := session.FormatFigure(g.Unit, g.Baseline)
		if g.Baselines > 1 {
			base += fmt.Sprintf(", median of %d", g.Baselines)
		}
		c := check{Kind: "regression", Name: g.Figure, Scope: g.Scope,
			Bound:  fmt.Sprintf("≤ +%s%% over %s", strconv.FormatFloat(g.MaxPercent, 'f', -1, 64), base),
			Actual: session.FormatFigure(g.Unit, g.Actual) + " (" + session.ChangeText(g.ChangePercent) + ")", Reason: g.Reason}
		c.Result, c.Failed, c.Skipped = resultOf(g.Status)
		out = append(out, c)
	}
	return out
}

func resultOf(status string) (string, bool, bool) {
	switch status {
	case session.StatusOK:
		return "pass", false, false
	case session.StatusSkipped:
		return "skipped", false, true
	case session.StatusNotMeasured:
		return "fail: not measured", true, false
	}
	return "fail", true, false
}

// timeline draws each container's life during the run as a bar from its
// start (or creation) to its end (or the run's), green when it exited 0,
// red when it failed, grey when it was still running; hover for times.
func timeline(r *session.Report) template.HTML {
	if len(r.Containers) == 0 {
		return ""
	}
	esc := template.HTMLEscapeString
	dur := max(r.DurationSeconds, 0.001)
	const rowH, labelW, w = 22, 190, 900
	iw := float64(w - labelW - padR)
	h := padT + rowH*len(r.Containers) + padB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="container timeline">`, w, h, w, h)
	x := func(t float64) float64 { return float64(labelW) + iw*min(max(t, 0), dur)/dur }
	for _, tk := range ticks(dur, 6) {
		if tk > dur {
			break
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#e3e3e3"/>`, x(tk), x(tk), padT-4, h-padB+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#555">%s</text>`, x(tk), h-padB+18, esc(session.FormatSeconds(tk)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#555">time since the run started</text>`, float64(labelW)+iw/2, h-4)
	for i, c := range r.Containers {
		y := padT + i*rowH
		start, end := r.StartedAt, r.EndedAt
		if !c.StartedAt.IsZero() {
			start = c.StartedAt
		} else if !c.CreatedAt.IsZero() {
			start = c.CreatedAt
		}
		color, state := "#9aa0a6", "running at the end of the run"
		if !c.FinishedAt.IsZero() {
			end = c.FinishedAt
		}
		if c.ExitCode != nil {
			color, state = "#2e7d32", "exited 0"
			if *c.ExitCode != 0 {
				color, state = "#c62828", fmt.Sprintf("exited %d", *c.ExitCode)
				if c.OOMKilled {
					state += ", OOM-killed"
				}
			}
		}
		t0, t1 := start.Sub(r.StartedAt).Seconds(), end.Sub(r.StartedAt).Seconds()
		x0, x1 := x(t0), x(t1)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" text-anchor="end" dominant-baseline="middle">%s</text>`, labelW-8, y+rowH/2, esc(truncate(c.Name, 26)))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="3" fill="%s"><title>%s (%s): from %s to %s, %s; CPU %s</title></rect>`,
			x0, y+4, math.Max(x1-x0, 2), rowH-8, color, esc(c.Name), esc(c.Image), esc(session.FormatSeconds(t0)), esc(session.FormatSeconds(t1)), esc(state),
			esc(figureText(&c.Measures, "cpu_seconds")))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped strings and numbers only
}

// ticks are about n round values from 0 to top: 1, 2 or 5 times a power
// of ten apart.
func ticks(top float64, n int) []float64 {
	if top <= 0 || math.IsInf(top, 0) || math.IsNaN(top) {
		return []float64{0}
	}
	raw := top / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	var out []float64
	for v := 0.0; ; v += step {
		out = append(out, v)
		if v >= top*(1-1e-9) {
			return out
		}
	}
}

// byteTicks are ticks for a byte scale: round numbers of the IEC unit
// the top is shown in (0, 2MiB, 4MiB…, not 0, 1.9MiB, 3.8MiB).
func byteTicks(top float64, n int) []float64 {
	u := 1.0
	for top/u >= 1024 {
		u *= 1024
	}
	out := ticks(top/u, n)
	for i := range out {
		out[i] *= u
	}
	return out
}

// evidenceText renders a finding's number in the unit its name says.
func evidenceText(name string, v float64) string {
	switch {
	case strings.HasSuffix(name, "_seconds"):
		return session.FormatSeconds(v)
	case strings.HasSuffix(name, "_bytes"):
		return session.FormatBytes(v)
	case strings.HasSuffix(name, "_percent") || strings.Contains(name, "_percent_"):
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// charts plots pts; a figure m says was not measured gets a chart that
// says n/a instead of a line at 0. m nil: all measured.
func charts(pts []session.Point, m *session.Measures) []template.HTML {
	n := len(pts)
	ts := make([]float64, n)
	cpu := make([]float64, n)
	mem := make([]float64, n)
	rd, wr := make([]float64, n), make([]float64, n)
	rx, tx := make([]float64, n), make([]float64, n)
	for i, p := range pts {
		ts[i] = p.T
		mem[i] = float64(p.MemoryBytes)
		if i == 0 {
			continue
		}
		q := pts[i-1]
		dt := p.T - q.T
		if dt <= 0 {
			continue
		}
		cpu[i] = (p.CPUSeconds - q.CPUSeconds) / dt
		rd[i] = delta(p.BlockReadBytes, q.BlockReadBytes) / dt
		wr[i] = delta(p.BlockWriteBytes, q.BlockWriteBytes) / dt
		rx[i] = delta(p.NetRxBytes, q.NetRxBytes) / dt
		tx[i] = delta(p.NetTxBytes, q.NetTxBytes) / dt
	}
	cs := []chart{
		{"CPU", "cores", ts, []line{{"on CPU", "#1f77b4", cpu}}, unmeasured(m, "cpu_seconds")},
		{"Memory", session.UnitBytes, ts, []line{{"usage", "#2ca02c", mem}}, unmeasured(m, "peak_memory_bytes")},
		{"Block I/O", "bytes/s", ts, []line{{"read", "#9467bd", rd}, {"write", "#d62728", wr}}, unmeasured(m, "block_read_bytes")},
		{"Network", "bytes/s", ts, []line{{"rx", "#17becf", rx}, {"tx", "#ff7f0e", tx}}, unmeasured(m, "net_rx_bytes")},
	}
	out := make([]template.HTML, len(cs))
	for i, c := range cs {
		out[i] = c.svg()
	}
	return out
}

func unmeasured(m *session.Measures, field string) bool {
	return m != nil && !m.Measured(field)
}

func delta(a, b uint64) float64 {
	if a < b {
		return 0
	}
	return float64(a - b)
}

func (c chart) format(v float64) string {
	switch c.unit {
	case session.UnitBytes:
		return session.FormatBytes(v)
	case "bytes/s":
		return session.FormatBytes(v) + "/s"
	case "cores":
		return strconv.FormatFloat(v, 'f', 2, 64) + " cores"
	}
	return fmt.Sprintf("%.2f", v)
}

// axisTitle is the chart's y unit, for its axis.
func (c chart) axisTitle() string {
	switch c.unit {
	case session.UnitBytes:
		return "bytes"
	case "bytes/s":
		return "bytes per second"
	}
	return "CPU cores in use"
}

// svg draws the chart with its axes (the value's unit, time since the
// start) and, over each sample, a band whose tooltip gives the time and
// every line's value; every string in it is escaped, every number
// formatted.
func (c chart) svg() template.HTML {
	var b strings.Builder
	esc := template.HTMLEscapeString
	maxT, maxY := 0.0, 0.0
	for _, t := range c.ts {
		maxT = max(maxT, t)
	}
	for _, l := range c.lines {
		for _, y := range l.ys {
			maxY = max(maxY, y)
		}
	}
	if maxT == 0 {
		maxT = 1
	}
	yt := ticks(maxY, 4)
	if c.unit == session.UnitBytes || c.unit == "bytes/s" {
		yt = byteTicks(maxY, 4)
	}
	if maxY == 0 {
		yt = []float64{0, 1}
		if c.unit == session.UnitBytes || c.unit == "bytes/s" {
			yt = []float64{0, 1024}
		}
	}
	top := yt[len(yt)-1]
	if top < maxY {
		top = maxY
	}
	iw, ih := float64(plotW-padL-padR), float64(plotH-padT-padB)
	px := func(t float64) float64 { return float64(padL) + iw*t/maxT }
	py := func(y float64) float64 { return float64(padT) + ih*(1-y/top) }
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		plotW, plotH, plotW, plotH, esc(c.title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="14" font-size="13" font-weight="600">%s</text>`, padL, esc(c.title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="#fcfcfc" stroke="#d0d0d0"/>`, padL, padT, iw, ih)
	fmt.Fprintf(&b, `<text transform="translate(12 %.0f) rotate(-90)" font-size="10" text-anchor="middle" fill="#555">%s</text>`, float64(padT)+ih/2, esc(c.axisTitle()))
	if c.notMeasured {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">%s: n/a (not measured)</text></svg>`,
			float64(padL)+iw/2, float64(padT)+ih/2, esc(c.title))
		return template.HTML(b.String()) //nolint:gosec // built from escaped strings and numbers only
	}
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e8e8e8"/>`, padL, float64(padL)+iw, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end" dominant-baseline="middle" fill="#555">%s</text>`, padL-4, y, esc(c.format(v)))
	}
	for _, t := range ticks(maxT, 6) {
		if t > maxT {
			break
		}
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#999"/>`, x, x, float64(padT)+ih, float64(padT)+ih+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle" fill="#555">%s</text>`, x, float64(padT)+ih+15, esc(session.FormatSeconds(t)))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-size="10" text-anchor="middle" fill="#555">time since the start</text>`, float64(padL)+iw/2, plotH-4)
	for li, l := range c.lines {
		var pts strings.Builder
		for i, y := range l.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(c.ts[i]), py(y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="3" fill="%s"/><text x="%d" y="13" font-size="11" fill="#333">%s</text>`,
			plotW-padR-150+li*75, l.color, plotW-padR-136+li*75, esc(l.name))
	}
	// Hover bands: one per sample, as wide as the gap to its neighbours.
	for i, t := range c.ts {
		lo, hi := t, t
		if i > 0 {
			lo = (t + c.ts[i-1]) / 2
		}
		if i+1 < len(c.ts) {
			hi = (t + c.ts[i+1]) / 2
		}
		var tip strings.Builder
		tip.WriteString("at " + session.FormatSeconds(t))
		for _, l := range c.lines {
			tip.WriteString("\n" + l.name + ": " + c.format(l.ys[i]))
		}
		fmt.Fprintf(&b, `<rect class="hover" x="%.1f" y="%d" width="%.1f" height="%.0f" fill="transparent"><title>%s</title></rect>`,
			px(lo), padT, math.Max(px(hi)-px(lo), 1), ih, esc(tip.String()))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above from escaped strings and numbers only
}

// pageTmpl is parsed at the first report, not when the program starts:
// the agent, which writes none, would keep its 42 KB of heap for good.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"procFields": func() []string { return processFields },
		"ev":         evidenceText,
		"ptext":      func(p session.ProcessReport, f string) string { return processText(&p.Measures, f) },
	}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f; background: #f5f6f8; }
main { max-width: 1240px; margin: 0 auto; padding: 1.2em 1.5em 3em; }
header { display: flex; align-items: center; gap: 1em; flex-wrap: wrap; }
h1 { font-size: 1.5em; margin: .2em 0; }
h2 { font-size: 1.15em; margin: 1.6em 0 .6em; }
code { font-family: ui-monospace, monospace; background: #eceef1; padding: .1em .35em; border-radius: 4px; }
.verdict { font-weight: 700; padding: .25em .8em; border-radius: 999px; color: #fff; background: #2e7d32; }
.verdict.failed { background: #c62828; }
.meta { color: #555; font-size: .9em; margin: .3em 0 0; }
.meta code { white-space: pre-wrap; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .7em; margin-top: 1em; }
.card { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; padding: .7em .9em; }
.card .label { font-size: .78em; color: #666; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 1.35em; font-weight: 650; margin-top: .15em; }
.card .note { font-size: .8em; color: #666; }
.card.bad { border-color: #e8a5a5; background: #fff5f5; }
.card.bad .value { color: #c62828; }
table { border-collapse: collapse; background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; font-size: .9em; }
.scroll { overflow-x: auto; }
th, td { padding: .4em .75em; border-bottom: 1px solid #eceef1; text-align: left; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; white-space: normal; vertical-align: bottom; }
#scopes th, #scopes td { padding: .4em .55em; }
.sub { color: #777; font-size: .85em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; max-width: 38em; }
.pass { color: #2e7d32; font-weight: 600; }
.fail { color: #c62828; font-weight: 700; }
.skip { color: #777; }
tr.failed td { background: #fff5f5; }
.findings { display: grid; gap: .6em; }
.finding { background: #fff; border: 1px solid #e1e4e8; border-left: 5px solid #f0a202; border-radius: 6px; padding: .6em .9em; }
.finding.critical { border-left-color: #c62828; }
.finding .code { font-weight: 700; }
.finding .ev { color: #555; font-size: .85em; margin-top: .25em; display: flex; flex-wrap: wrap; gap: .3em 1.2em; }
.none { color: #2e7d32; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(570px, 1fr)); gap: .7em; }
.grid > div, .timeline-box { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; padding: .3em; }
.timeline-box { overflow-x: auto; }
svg .hover:hover { fill: rgba(0, 0, 0, .06); }
details { margin-top: 1.5em; }
pre { background: #fff; border: 1px solid #e1e4e8; padding: .8em; overflow-x: auto; font-size: .85em; }
.degraded { background: #fff8e1; border: 1px solid #f0d48a; border-radius: 6px; padding: .5em .9em; margin-top: .8em; }
</style>
</head>
<body><main>
<header><h1>{{.Title}}</h1><span class="verdict{{if .Failed}} failed{{end}}">{{.Verdict}}</span></header>
<p class="meta"><code>{{.Command}}</code> · started {{.Started}}{{if .Interval}} · sampled every {{.Interval}}{{end}}</p>
{{range .Degraded}}<div class="degraded">Measured without {{.}}</div>{{end}}
<section class="cards">{{range .Cards}}<div class="card{{if .Bad}} bad{{end}}"><div class="label">{{.Label}}</div><div class="value">{{.Value}}</div>{{with .Note}}<div class="note">{{.}}</div>{{end}}</div>{{end}}</section>

<h2>Findings</h2>
{{if .Findings}}<div class="findings">{{range .Findings}}<div class="finding {{.Severity}}"><span class="code">{{.Code}}</span> · {{.Scope}} · {{.Severity}}<div>{{.Message}}</div><div class="ev">{{range $k, $v := .Evidence}}<span>{{$k}} {{ev $k $v}}</span>{{end}}</div></div>{{end}}</div>
{{else}}<p class="none">No findings: nothing slowed the run down or failed it.</p>{{end}}

{{if .Checks}}<h2>Limits and regressions</h2>
<div class="scroll"><table id="checks"><tr><th>result</th><th>check</th><th>figure</th><th>scope</th><th>bound</th><th class="num">actual</th><th>why</th></tr>
{{range .Checks}}<tr{{if .Failed}} class="failed"{{end}}><td class="{{if .Failed}}fail{{else if .Skipped}}skip{{else}}pass{{end}}">{{.Result}}</td><td>{{.Kind}}</td><td>{{.Name}}</td><td>{{.Scope}}</td><td>{{.Bound}}</td><td class="num">{{.Actual}}</td><td class="wrap">{{.Reason}}</td></tr>
{{end}}</table></div>{{end}}

<h2>The run and its containers</h2>
<div class="scroll"><table id="scopes"><tr><th>scope</th><th>exit</th>{{range .Heads}}<th class="num">{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if .Failed}} class="failed"{{end}}><td>{{.Name}}{{with .Image}}<div class="sub">{{.}}</div>{{end}}</td><td>{{.Exit}}</td>{{range .Cells}}<td class="num">{{.}}</td>{{end}}</tr>
{{end}}</table></div>

{{if .Procs}}<h2>Top {{len .Procs}} of {{.ProcsN}} commands by CPU</h2>
<div class="scroll"><table id="processes"><tr><th>command</th><th class="num">processes</th><th class="num">cpu</th><th class="num">run-queue wait</th><th class="num">block read</th><th class="num">block write</th><th class="num">net rx</th><th class="num">net tx</th><th class="num">peak RSS</th></tr>
{{range $p := .Procs}}<tr><td>{{$p.Command}}</td><td class="num">{{$p.Count}}</td>{{range $f := procFields}}<td class="num">{{ptext $p $f}}</td>{{end}}</tr>
{{end}}</table></div>{{end}}

{{if .Timeline}}<h2>Containers over time</h2>
<div class="timeline-box">{{.Timeline}}</div>{{end}}

{{range .Scopes}}<h2>Over time: {{.Title}}</h2>
<div class="grid">{{range .Charts}}<div>{{.}}</div>{{end}}</div>
{{end}}
<details><summary>Text summary</summary><pre>{{.Summary}}</pre></details>
</main></body>
</html>
`))
})
