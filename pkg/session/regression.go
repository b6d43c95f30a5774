// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// FigureDuration is the name of a run's wall time among the figures a
// regression bound may name: the report's duration_seconds.
const FigureDuration = "duration_seconds"

// UnitCount is the unit of figures that count things (context switches,
// operations, processes).
const UnitCount = "count"

// FigureUnit is the unit of a Measures figure, by its JSON name.
func FigureUnit(field string) string {
	switch {
	case strings.HasSuffix(field, "_seconds"):
		return UnitSeconds
	case strings.HasSuffix(field, "_bytes"):
		return UnitBytes
	}
	return UnitCount
}

// Figure returns the value of field, a Measures JSON name, and whether a
// source measured it.
func (m *Measures) Figure(field string) (float64, bool) {
	i, ok := measureFields.index[field]
	if !ok || !m.Measured(field) {
		return 0, false
	}
	v := reflect.ValueOf(m).Elem().Field(i)
	switch v.Kind() {
	case reflect.Float64:
		return v.Float(), true
	case reflect.Uint64:
		return float64(v.Uint()), true
	}
	return 0, false
}

// MedianMeasures is, figure by figure, the median of ms over those that
// measured it; a figure none of them measured is unmeasured. With an even
// count, the median is the mean of the middle two. Several baselines of a
// noisy figure give a steadier reference than one.
func MedianMeasures(ms []*Measures) Measures {
	var out Measures
	v := reflect.ValueOf(&out).Elem()
	for _, f := range measureFields.names {
		var vals []float64
		for _, m := range ms {
			if x, ok := m.Figure(f); ok {
				vals = append(vals, x)
			}
		}
		if len(vals) == 0 {
			out.SetUnmeasured(f)
			continue
		}
		med := Median(vals)
		fv := v.Field(measureFields.index[f])
		switch fv.Kind() {
		case reflect.Float64:
			fv.SetFloat(med)
		case reflect.Uint64:
			fv.SetUint(uint64(math.Round(med)))
		}
	}
	return out
}

// Median is the median of vals (not empty); with an even count, the mean
// of the middle two.
func Median(vals []float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// RegressionBound is the largest increase of a figure of the run's totals
// over its baseline that passes, in percent of the baseline.
type RegressionBound struct {
	// Figure is a Measures JSON name, or FigureDuration.
	Figure string `json:"figure"`
	// MaxPercent is the bound: 10 lets the figure grow by 10 %.
	MaxPercent float64 `json:"max_percent"`
}

// RegressionFigures lists the figures a regression bound may name: every
// Measures figure and the run's wall time.
func RegressionFigures() []string {
	return append(MeasureFields(), FigureDuration)
}

// ParseRegressionFlag parses one --max-regression flag: "FIGURE=PERCENT%",
// e.g. "cpu_seconds=10%". Its errors do not repeat s.
func ParseRegressionFlag(s string) (RegressionBound, error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok {
		return RegressionBound{}, errors.New("want FIGURE=PERCENT%, e.g. cpu_seconds=10%")
	}
	b := RegressionBound{Figure: strings.TrimSpace(key)}
	if !slices.Contains(RegressionFigures(), b.Figure) {
		return RegressionBound{}, fmt.Errorf("unknown figure %q: valid figures are %s", b.Figure, strings.Join(RegressionFigures(), ", "))
	}
	num, pct := strings.CutSuffix(strings.TrimSpace(val), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !pct || err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return RegressionBound{}, fmt.Errorf("bad bound %q: want a percentage of the baseline such as 10%%", val)
	}
	b.MaxPercent = f
	return b, nil
}

// RegressionResult is one figure of the run's totals checked against the
// median of its baselines.
type RegressionResult struct {
	Figure string `json:"figure"`
	// Scope is ScopeRun, or ScopeContainers for a report whose totals are
	// its containers'.
	Scope string `json:"scope"`
	Unit  string `json:"unit"`
	// Baseline is the median of the baselines that measured the figure;
	// Baselines counts them.
	// Either is nil (null in JSON) when not measured.
	Baseline  *float64 `json:"baseline"`
	Baselines int      `json:"baselines"`
	Actual    *float64 `json:"actual"`
	// ChangePercent is (Actual - Baseline) / Baseline in percent; it has
	// no value (null in JSON) when the baseline is 0 or either figure was
	// not measured.
	ChangePercent *float64 `json:"change_percent"`
	MaxPercent    float64  `json:"max_percent"`
	OK            bool     `json:"ok"`
	// Status is StatusOK, StatusExceeded (the figure grew more than
	// MaxPercent; from a baseline of 0, any growth does), StatusNotMeasured
	// or StatusSkipped (not measured, in the run or in every baseline).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// RegressionError is one figure that grew beyond its bound.
type RegressionError struct {
	Result RegressionResult
}

func (e *RegressionError) Error() string {
	r := e.Result
	return fmt.Sprintf("regression: %s (%s): %s, baseline %s, %s, at most +%s%%", r.Figure, r.Scope,
		FormatFigure(r.Unit, r.Actual), FormatFigure(r.Unit, r.Baseline), ChangeText(r.ChangePercent), strconv.FormatFloat(r.MaxPercent, 'f', -1, 64))
}

// FormatFigure renders a figure that may not have been measured: n/a.
func FormatFigure(unit string, v *float64) string {
	if v == nil {
		return "n/a"
	}
	return FormatValue(unit, *v)
}

// ChangeText renders a change in percent: "+12.5%", "-3.0%", "new" when
// there was no baseline to divide by.
func ChangeText(p *float64) string {
	if p == nil {
		return "new"
	}
	return fmt.Sprintf("%+.1f%%", *p)
}

// CheckRegressions compares r's totals with the median of baselines'
// totals, one result per bound, records them in r.Regressions and returns
// an error joining one *RegressionError per figure that grew beyond its
// bound and one *NotMeasuredError-like error per figure that could not be
// compared (unless unmeasured is UnmeasuredSkip). No baselines and no
// bounds: nothing to check.
func (r *Report) CheckRegressions(baselines []*Report, bounds []RegressionBound, unmeasured Unmeasured) error {
	r.Regressions = nil
	if len(bounds) == 0 {
		return nil
	}
	if len(baselines) == 0 {
		return errors.New("a regression bound needs at least one baseline report")
	}
	scope := ScopeRun
	if r.TotalsOf == TotalsContainers {
		scope = ScopeContainers
	}
	ms := make([]*Measures, len(baselines))
	for i, b := range baselines {
		ms[i] = &b.Totals
	}
	base := MedianMeasures(ms)
	var durs []float64
	for _, b := range baselines {
		durs = append(durs, b.DurationSeconds)
	}
	// Totals of a cgroup and totals of containers measure different
	// things (a run's own processes; the containers it started): a
	// comparison across them is no comparison, whatever --unmeasured says.
	// (Every report crmon writes says which; one built by hand may not.)
	unlike := ""
	for _, b := range baselines {
		if b.TotalsOf != r.TotalsOf && b.TotalsOf != "" && r.TotalsOf != "" {
			unlike = fmt.Sprintf("a baseline's totals are of %s, this run's of %s: they measure different things", totalsText(b.TotalsOf), totalsText(r.TotalsOf))
			break
		}
	}
	var errs []error
	for _, bd := range bounds {
		res := RegressionResult{Figure: bd.Figure, Scope: scope, Unit: FigureUnit(bd.Figure), MaxPercent: bd.MaxPercent}
		if unlike != "" {
			res.Status, res.Reason = StatusNotMeasured, unlike
			errs = append(errs, fmt.Errorf("regression not checked: %s (%s): %s", res.Figure, res.Scope, res.Reason))
			r.Regressions = append(r.Regressions, res)
			continue
		}
		var cur, ref float64
		var curOK, refOK bool
		if bd.Figure == FigureDuration {
			res.Unit = UnitSeconds
			cur, curOK = r.DurationSeconds, true
			ref, refOK = Median(durs), true
			res.Baselines = len(durs)
		} else {
			cur, curOK = r.Totals.Figure(bd.Figure)
			ref, refOK = base.Figure(bd.Figure)
			for _, m := range ms {
				if m.Measured(bd.Figure) {
					res.Baselines++
				}
			}
		}
		switch {
		case !curOK || !refOK:
			res.Status = StatusNotMeasured
			if !curOK {
				res.Reason = fmt.Sprintf("this run did not measure %s", bd.Figure)
			} else {
				res.Reason = fmt.Sprintf("no baseline measured %s", bd.Figure)
			}
			if unmeasured == UnmeasuredSkip {
				res.Status = StatusSkipped
			} else {
				errs = append(errs, fmt.Errorf("regression not checked: %s (%s): %s", res.Figure, res.Scope, res.Reason))
			}
			if curOK {
				res.Actual = &cur
			}
			if refOK {
				res.Baseline = &ref
			}
		default:
			res.Actual, res.Baseline = &cur, &ref
			if ref > 0 {
				p := (cur - ref) / ref * 100
				res.ChangePercent = &p
				res.OK = p <= bd.MaxPercent
			} else {
				res.OK = cur <= 0
			}
			res.Status = StatusExceeded
			if res.OK {
				res.Status = StatusOK
			} else {
				errs = append(errs, &RegressionError{Result: res})
			}
		}
		r.Regressions = append(r.Regressions, res)
	}
	return errors.Join(errs...)
}

// totalsText says what a Report.TotalsOf measured.
func totalsText(of string) string {
	switch of {
	case TotalsCgroup:
		return "its own cgroup (its processes, not its containers)"
	case TotalsContainers:
		return "its containers"
	}
	return strconv.Quote(of)
}
