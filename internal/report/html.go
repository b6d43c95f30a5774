// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/crmon-dev/crmon/pkg/session"
)

const (
	plotW, plotH = 520, 150
	padL, padB   = 64, 22
	padT, padR   = 10, 10
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

type htmlView struct {
	Title    string
	Summary  string
	Limits   []session.LimitResult
	Regress  []session.RegressionResult
	Findings []session.Finding
	Procs    []session.ProcessReport
	ProcsN   int
	Scopes   []scopeView
	Interval string
}

// HTML writes one self-contained page: the summary, the limits, and
// time-series plots of CPU, memory, block I/O and network for the run and
// each container, as inline SVG. The page fetches nothing.
func HTML(w io.Writer, r *session.Report) error {
	var sum strings.Builder
	if err := Summary(&sum, r); err != nil {
		return err
	}
	v := htmlView{Title: "crmon report", Summary: sum.String(), Limits: r.Limits, Regress: r.Regressions, Findings: r.Findings,
		Procs: r.Processes[:min(len(r.Processes), topProcesses)], ProcsN: len(r.Processes)}
	if r.Name != "" {
		v.Title += ": " + r.Name
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
	return pageTmpl.Execute(w, v)
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
	}
	return fmt.Sprintf("%.2f", v)
}

// svg draws the chart; every string in it is escaped, every number formatted.
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
	if maxY == 0 {
		maxY = 1
	}
	iw, ih := float64(plotW-padL-padR), float64(plotH-padT-padB)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		plotW, plotH, plotW, plotH, esc(c.title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="#fafafa" stroke="#ccc"/>`, padL, padT, iw, ih)
	if c.notMeasured {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">%s: n/a (not measured)</text></svg>`,
			float64(padL)+iw/2, float64(padT)+ih/2, esc(c.title))
		return template.HTML(b.String()) //nolint:gosec // built from escaped strings and numbers only
	}
	for _, f := range []float64{0, 0.5, 1} {
		y := float64(padT) + ih*(1-f)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end" dominant-baseline="middle">%s</text>`, padL-4, y, esc(c.format(maxY*f)))
		fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, padL, float64(padL)+iw, y, y)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">0s</text>`, padL, plotH-6)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-size="10" text-anchor="end">%s</text>`, float64(padL)+iw, plotH-6, esc(session.FormatSeconds(maxT)))
	for li, l := range c.lines {
		var pts strings.Builder
		for i, y := range l.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", float64(padL)+iw*c.ts[i]/maxT, float64(padT)+ih*(1-y/maxY))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="%s">%s</text>`, padL+8+li*80, padT+12, l.color, esc(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above from escaped strings and numbers only
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"fmtv":       session.FormatValue,
	"actual":     actualText,
	"scope":      scopeLabel,
	"status":     func(l session.LimitResult) string { return strings.ToLower(statusText[l.Status]) },
	"fig":        session.FormatFigure,
	"procFields": func() []string { return processFields },
	"ptext":      func(p session.ProcessReport, f string) string { return processText(&p.Measures, f) },
	"change":     session.ChangeText,
	"gstatus":    func(g session.RegressionResult) string { return strings.ToLower(statusText[g.Status]) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
pre { background: #f4f4f4; padding: .8em; overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: .5em; }
.fail { color: #b00; font-weight: bold; }
.ok { color: #070; }
table { border-collapse: collapse; }
td, th { padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: left; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<pre>{{.Summary}}</pre>
{{if .Limits}}<h2>Limits</h2>
<table><tr><th>limit</th><th>scope</th><th>limit</th><th>actual</th><th></th></tr>
{{range .Limits}}<tr><td>{{.Name}}</td><td>{{scope .}}</td><td>{{fmtv .Unit .Limit}}</td><td>{{actual .}}</td><td>{{if .OK}}<span class="ok">ok</span>{{else if eq .Status "skipped"}}<span>skipped</span>{{else}}<span class="fail">{{status .}}</span>{{end}}{{with .Reason}}: {{.}}{{end}}</td></tr>
{{end}}</table>{{end}}
{{if .Regress}}<h2>Regressions</h2>
<table><tr><th>figure</th><th>scope</th><th>baseline</th><th>actual</th><th>change</th><th>at most</th><th></th></tr>
{{range .Regress}}<tr><td>{{.Figure}}</td><td>{{.Scope}}</td><td>{{fig .Unit .Baseline}}{{if gt .Baselines 1}} (median of {{.Baselines}}){{end}}</td><td>{{fig .Unit .Actual}}</td><td>{{change .ChangePercent}}</td><td>+{{.MaxPercent}}%</td><td>{{if .OK}}<span class="ok">ok</span>{{else if eq .Status "skipped"}}<span>skipped</span>{{else}}<span class="fail">{{gstatus .}}</span>{{end}}{{with .Reason}}: {{.}}{{end}}</td></tr>
{{end}}</table>{{end}}
{{if .Procs}}<h2>Top {{len .Procs}} of {{.ProcsN}} commands by CPU</h2>
<table><tr><th>command</th><th>processes</th><th>cpu</th><th>run-queue wait</th><th>block read</th><th>block write</th><th>peak RSS</th></tr>
{{range $p := .Procs}}<tr><td>{{$p.Command}}</td><td>{{$p.Count}}</td>{{range $f := procFields}}<td>{{ptext $p $f}}</td>{{end}}</tr>
{{end}}</table>{{end}}
<h2>Findings</h2>
{{if .Findings}}<table><tr><th>severity</th><th>finding</th><th>scope</th><th>what happened</th></tr>
{{range .Findings}}<tr><td class="{{if eq .Severity "critical"}}fail{{end}}">{{.Severity}}</td><td>{{.Code}}</td><td>{{.Scope}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{else}}<p class="ok">Nothing found that slowed the run down or failed it.</p>{{end}}
{{if .Interval}}<p>Sampled every {{.Interval}}.</p>{{end}}
{{range .Scopes}}<h2>{{.Title}}</h2>
<div class="grid">{{range .Charts}}<div>{{.}}</div>{{end}}</div>
{{end}}
</body>
</html>
`))
