// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
)

// ComparePoints fails t unless pts are exactly the series of fams, both
// ways: the same names, labels and values (NaN equal to NaN), a histogram
// as its _bucket{le}, _sum and _count series and a summary as its
// {quantile}, _sum and _count series, le and quantile written as
// Prometheus stores them (collect.FormatBound). It also checks that every
// point's labels are sorted by name and that no series comes twice.
func ComparePoints(t testing.TB, pts []collect.Point, fams []*dto.MetricFamily) {
	t.Helper()
	got := map[string]float64{}
	for _, p := range pts {
		if !slices.IsSortedFunc(p.Series.Labels, func(a, b collect.Label) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("%s: labels not sorted by name", p.Series.Name)
		}
		var ls []string
		for _, l := range p.Series.Labels {
			ls = append(ls, fmt.Sprintf("%s=%q", l.Name, l.Value))
		}
		k := seriesKey(p.Series.Name, ls)
		if _, dup := got[k]; dup {
			t.Errorf("%s served twice", k)
		}
		got[k] = p.Value
	}
	want := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			add := func(suffix string, extra []string, v float64) {
				want[seriesKey(f.GetName()+suffix, append(slices.Clone(ls), extra...))] = v
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				add("", nil, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				add("", nil, m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				add("", nil, m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					add("", []string{fmt.Sprintf("quantile=%q", collect.FormatBound(q.GetQuantile()))}, q.GetValue())
				}
				add("_sum", nil, s.GetSampleSum())
				add("_count", nil, float64(s.GetSampleCount()))
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					add("_bucket", []string{fmt.Sprintf("le=%q", collect.FormatBound(b.GetUpperBound()))}, float64(b.GetCumulativeCount()))
				}
				add("_bucket", []string{`le="+Inf"`}, float64(h.GetSampleCount()))
				add("_sum", nil, h.GetSampleSum())
				add("_count", nil, float64(h.GetSampleCount()))
			default:
				t.Errorf("%s: type %v has no points", f.GetName(), f.GetType())
			}
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("points differ from the gathered series (-gathered +points):\n%s", diff)
	}
}

// seriesKey writes name{labels}, labels sorted.
func seriesKey(name string, labels []string) string {
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}
