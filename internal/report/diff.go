// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/crmon-dev/crmon/pkg/session"
)

// diffScope is one row group of a diff: the totals, a container or a
// process, with its measures in each baseline that has it and in the new
// report (nil when the new report lacks it).
type diffScope struct {
	title string
	bases []*session.Measures
	cur   *session.Measures
	// curDur and baseDurs are the wall times, for the totals only.
	curDur   *float64
	baseDurs []float64
}

// Diff writes each figure of cur beside the same figure of its baselines
// (their median when there are several) and the change: the totals first,
// then each container by name, then each process row by command. A
// container or command found on one side only is listed as such. Figures that are 0
// or not measured on both sides are left out, except in the totals.
func Diff(w io.Writer, bases []*session.Report, baseNames []string, cur *session.Report, curName string) error {
	var b strings.Builder
	from := strings.Join(baseNames, ", ")
	if len(bases) > 1 {
		from = fmt.Sprintf("median of %s", from)
	}
	fmt.Fprintf(&b, "crmon diff: %s → %s\n", from, curName)
	var t table
	for i, sc := range diffScopes(bases, cur) {
		side := ""
		switch {
		case sc.cur == nil:
			side = " (only in the baseline)"
		case len(sc.bases) == 0:
			side = " (only in " + curName + ")"
		}
		t.group(sc.title + side)
		base := session.MedianMeasures(sc.bases)
		if len(sc.bases) == 0 {
			base.SetUnmeasured(session.MeasureFields()...)
		}
		var curM session.Measures
		if sc.cur != nil {
			curM = *sc.cur
		} else {
			curM.SetUnmeasured(session.MeasureFields()...)
		}
		if sc.curDur != nil {
			var bd *float64
			if len(sc.baseDurs) > 0 {
				d := session.Median(sc.baseDurs)
				bd = &d
			}
			t.row(diffRow(session.FigureDuration, session.UnitSeconds, bd, sc.curDur))
		}
		for _, f := range session.MeasureFields() {
			bv, bok := base.Figure(f)
			cv, cok := curM.Figure(f)
			if i > 0 && bv == 0 && cv == 0 {
				continue
			}
			t.row(diffRow(f, session.FigureUnit(f), ptr(bv, bok), ptr(cv, cok)))
		}
	}
	t.write(&b, []string{"", "baseline", "new", "change", ""})
	_, err := io.WriteString(w, b.String())
	return err
}

// table lays out groups of rows: the first column left-aligned, the
// others right-aligned, all groups with the same column widths.
type table struct {
	lines []tableLine
}

type tableLine struct {
	group string // a group's title, or "" for a row
	cells []string
}

func (t *table) group(title string) { t.lines = append(t.lines, tableLine{group: title}) }
func (t *table) row(cells []string) { t.lines = append(t.lines, tableLine{cells: cells}) }

func (t *table) write(b *strings.Builder, head []string) {
	widths := make([]int, len(head))
	for i, h := range head {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, l := range t.lines {
		for i, c := range l.cells {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	cells := func(cs []string) {
		var l strings.Builder
		l.WriteString("    ")
		for i, c := range cs {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				l.WriteString(c + pad)
			} else {
				l.WriteString("  " + pad + c)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	cells(head)
	for _, l := range t.lines {
		if l.cells == nil {
			b.WriteString("  " + l.group + "\n")
			continue
		}
		cells(l.cells)
	}
}

func ptr(v float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	return &v
}

// diffRow is one figure: baseline, new, and the change in its unit and
// in percent.
func diffRow(name, unit string, base, cur *float64) []string {
	change, pct := "", ""
	if base != nil && cur != nil {
		d := *cur - *base
		switch {
		case d > 0:
			change = "+" + session.FormatValue(unit, d)
		case d < 0:
			change = "-" + session.FormatValue(unit, -d)
		default:
			change = "="
		}
		if *base != 0 {
			p := d / *base * 100
			pct = session.ChangeText(&p)
		} else if d != 0 {
			pct = "new"
		}
	}
	return []string{name, session.FormatFigure(unit, base), session.FormatFigure(unit, cur), change, pct}
}

// diffScopes pairs the scopes of the baselines and of cur: the totals,
// containers by name, in cur's order and then the baselines' own.
func diffScopes(bases []*session.Report, cur *session.Report) []diffScope {
	tot := diffScope{title: totalsLabel(cur), cur: &cur.Totals, curDur: &cur.DurationSeconds}
	for _, b := range bases {
		tot.bases = append(tot.bases, &b.Totals)
		tot.baseDurs = append(tot.baseDurs, b.DurationSeconds)
	}
	out := []diffScope{tot}
	at := map[string]int{}
	add := func(title string, m *session.Measures, isCur bool) {
		i, ok := at[title]
		if !ok {
			i = len(out)
			at[title] = i
			out = append(out, diffScope{title: title})
		}
		if isCur {
			out[i].cur = m
		} else {
			out[i].bases = append(out[i].bases, m)
		}
	}
	for i := range cur.Containers {
		add("container "+cur.Containers[i].Name, &cur.Containers[i].Measures, true)
	}
	for _, b := range bases {
		for i := range b.Containers {
			add("container "+b.Containers[i].Name, &b.Containers[i].Measures, false)
		}
	}
	for i := range cur.Processes {
		add("process "+cur.Processes[i].Command, &cur.Processes[i].Measures, true)
	}
	for _, b := range bases {
		for i := range b.Processes {
			add("process "+b.Processes[i].Command, &b.Processes[i].Measures, false)
		}
	}
	return out
}
