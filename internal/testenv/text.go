// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crmon-dev/crmon/internal/collect"
)

// GatherText gathers c alone through a pedantic registry: its families,
// and those in the text format as client_golang writes them.
func GatherText(t testing.TB, c prometheus.Collector) ([]*dto.MetricFamily, []byte) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return mfs, b.Bytes()
}

// ParseText returns every sample of an exposition in the text format,
// parsed by Prometheus' own parser, as sorted lines: "# name TYPE help"
// for each family, and "name{labels} value" with the labels sorted, a
// histogram's bucket by bucket. Two expositions of the same series give
// the same lines whatever the order of their families, series and labels.
func ParseText(t testing.TB, b []byte) []string {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parsing %d bytes: %v", len(b), err)
	}
	var out []string
	for name, mf := range mfs {
		out = append(out, "# "+name+" "+mf.GetType().String()+" "+mf.GetHelp())
		for _, m := range mf.GetMetric() {
			var l []string
			for _, p := range m.GetLabel() {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			sort.Strings(l)
			ls := strings.Join(l, ",")
			if h := m.GetHistogram(); h != nil {
				for _, bk := range h.GetBucket() {
					out = append(out, name+"_bucket{"+ls+",le="+model.SampleValue(bk.GetUpperBound()).String()+"} "+model.SampleValue(bk.GetCumulativeCount()).String())
				}
				out = append(out, name+"_sum{"+ls+"} "+model.SampleValue(h.GetSampleSum()).String(),
					name+"_count{"+ls+"} "+model.SampleValue(h.GetSampleCount()).String())
				continue
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out = append(out, name+"{"+ls+"} "+model.SampleValue(v).String())
		}
	}
	sort.Strings(out)
	return out
}

// CheckPoints checks that sa gives exactly the series of fams (its
// Collect's, gathered), both ways (ComparePoints), and the same
// *collect.Series when asked again. It returns the points.
func CheckPoints(t testing.TB, sa collect.SeriesAppender, fams []*dto.MetricFamily) []collect.Point {
	t.Helper()
	pts := sa.AppendSeries(nil)
	ComparePoints(t, pts, fams)
	SameSeries(t, pts, sa.AppendSeries(nil), "when asked again")
	return pts
}

// SameSeries checks that after gives the very *collect.Series of before,
// point by point: a collector keeps a series while its labels stay.
func SameSeries(t testing.TB, before, after []collect.Point, when string) {
	t.Helper()
	if len(after) != len(before) {
		t.Fatalf("%d points, then %d %s", len(before), len(after), when)
	}
	for i := range before {
		if after[i].Series != before[i].Series {
			t.Errorf("%s%v: a new *collect.Series %s", before[i].Series.Name, before[i].Series.Labels, when)
		}
	}
}
