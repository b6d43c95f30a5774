// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/crmon-dev/crmon/internal/collect"
)

func lps(kv ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

// internerFamilies is one tick of a counter, a histogram and a summary,
// each metric made afresh (new pointers), as a scrape gives them.
func internerFamilies(v float64, bounds ...float64) []*dto.MetricFamily {
	counter := &dto.MetricFamily{Name: proto.String("c_total"), Type: dto.MetricType_COUNTER.Enum()}
	for _, n := range []string{"a", "ab", "b"} {
		counter.Metric = append(counter.Metric, &dto.Metric{Label: lps("id", n, "op", "read"), Counter: &dto.Counter{Value: proto.Float64(v)}})
	}
	hist := &dto.MetricFamily{Name: proto.String("h_seconds"), Type: dto.MetricType_HISTOGRAM.Enum()}
	for _, n := range []string{"a", "b"} {
		h := &dto.Histogram{SampleCount: proto.Uint64(9), SampleSum: proto.Float64(v)}
		for k, b := range bounds {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(uint64(k))})
		}
		hist.Metric = append(hist.Metric, &dto.Metric{Label: lps("id", n), Histogram: h})
	}
	sum := &dto.MetricFamily{Name: proto.String("s"), Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{
		Summary: &dto.Summary{SampleCount: proto.Uint64(3), SampleSum: proto.Float64(v),
			Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(v)}, {Quantile: proto.Float64(0.99), Value: proto.Float64(v)}}},
	}}}
	return []*dto.MetricFamily{counter, hist, sum}
}

// seriesText is a point's series as the text format writes it.
func seriesText(s *series) string {
	var b strings.Builder
	b.WriteString(s.name)
	for _, l := range s.labels {
		b.WriteString(" " + l.name + "=" + l.value)
	}
	return b.String()
}

// TestInternerSeries checks that the interner keeps each series from one
// tick to the next (the same *series for the same name and labels, new
// ones for new labels or bounds), and that every series' key, name and
// labels are what its family says.
func TestInternerSeries(t *testing.T) {
	in := newFamInterner([]label{{"job", "crmon"}})
	want := []string{
		"c_total id=a job=crmon op=read", "c_total id=ab job=crmon op=read", "c_total id=b job=crmon op=read",
		"h_seconds_bucket id=a job=crmon le=0.1", "h_seconds_bucket id=a job=crmon le=1.0", "h_seconds_bucket id=a job=crmon le=+Inf",
		"h_seconds_sum id=a job=crmon", "h_seconds_count id=a job=crmon",
		"h_seconds_bucket id=b job=crmon le=0.1", "h_seconds_bucket id=b job=crmon le=1.0", "h_seconds_bucket id=b job=crmon le=+Inf",
		"h_seconds_sum id=b job=crmon", "h_seconds_count id=b job=crmon",
		"s job=crmon quantile=0.5", "s job=crmon quantile=0.99", "s_sum job=crmon", "s_count job=crmon",
	}
	check := func(pts []point, want []string) {
		t.Helper()
		if len(pts) != len(want) {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		for i, p := range pts {
			if got := seriesText(p.s); got != want[i] {
				t.Errorf("point %d: series %q, want %q", i, got, want[i])
			}
			if name, ls := splitKey(p.s.key, nil); name != p.s.name || len(ls) != len(p.s.labels)-1 {
				t.Errorf("point %d: key %q does not give the series' name and own labels", i, p.s.key)
			}
		}
	}
	first := in.families(internerFamilies(1, 0.1, 1))
	check(first, want)
	second := in.families(internerFamilies(2, 0.1, 1))
	check(second, want)
	for i := range first {
		if first[i].s != second[i].s {
			t.Errorf("point %d: a new series for %q at the second tick", i, seriesText(first[i].s))
		}
		if strings.HasPrefix(want[i], "c_total") && second[i].v != 2 {
			t.Errorf("point %d: value %v at the second tick, want 2", i, second[i].v)
		}
	}

	// Other bounds: new series for the buckets that changed, the same for
	// the others.
	third := in.families(internerFamilies(3, 0.1, 2))
	want3 := slicesReplace(want, "le=1", "le=2")
	check(third, want3)
	for i := range third {
		same := third[i].s == second[i].s
		if changed := want3[i] != want[i]; changed == same {
			t.Errorf("point %d (%s): same series %v", i, want3[i], same)
		}
	}

	// A label value that only differs in its tail is another series.
	fams := internerFamilies(4, 0.1, 2)
	fams[0].Metric[1].Label = lps("id", "abc", "op", "read")
	fourth := in.families(fams)
	if fourth[1].s == third[1].s || seriesText(fourth[1].s) != "c_total id=abc job=crmon op=read" {
		t.Errorf("series %q, want c_total id=abc, a new one", seriesText(fourth[1].s))
	}
	if fourth[2].s != third[2].s {
		t.Error("the series after a new one was not found again")
	}
}

// TestInternerIdentity checks that the exporter's series follow the
// agent's by identity: the same *collect.Series is the same series
// wherever it comes in a tick, another *collect.Series with the same name
// and labels (the agent's series came back after a tick away) is a new
// one, and the series gone from a tick leave the intake's table.
func TestInternerIdentity(t *testing.T) {
	a := collect.NewSeries("a", []collect.Label{{Name: "id", Value: "1"}})
	b := collect.NewSeries("b", []collect.Label{{Name: "job", Value: "mine"}, {Name: "id", Value: "2"}})
	c := collect.NewSeries("c", nil)
	in := newInterner([]label{{"instance", "h"}, {"job", "crmon"}})
	in.shared = newSeriesTable()
	first := in.points([]collect.Point{{Series: a, Value: 1}, {Series: b, Value: 2}, {Series: c, Value: 3}})
	if got := seriesText(first[1].s); got != "b id=2 instance=h job=mine" {
		t.Errorf("series %q: the series' own labels must win over the exporter's", got)
	}
	if first[1].s.key != "b"+sep+"id"+sep+"2"+sep+"job"+sep+"mine" {
		t.Errorf("key %q", first[1].s.key)
	}
	// Another order: found by identity all the same.
	second := in.points([]collect.Point{{Series: c, Value: 4}, {Series: a, Value: 5}, {Series: b, Value: 6}})
	if second[0].s != first[2].s || second[1].s != first[0].s || second[2].s != first[1].s {
		t.Error("a series that moved in the tick was not found again")
	}
	if second[0].v != 4 || second[2].v != 6 {
		t.Errorf("values %v %v, want 4 6", second[0].v, second[2].v)
	}
	// c leaves; a is served by a new *collect.Series of the same name and
	// labels.
	a2 := collect.NewSeries("a", []collect.Label{{Name: "id", Value: "1"}})
	third := in.points([]collect.Point{{Series: a2, Value: 7}, {Series: b, Value: 8}})
	if third[0].s == first[0].s || seriesText(third[0].s) != "a id=1 instance=h job=crmon" {
		t.Errorf("series %q of a new *collect.Series: a new one is wanted", seriesText(third[0].s))
	}
	if third[1].s != first[1].s {
		t.Error("b was not found again")
	}
	if in.shared.get("c") != nil {
		t.Error("the intake's table kept a series gone from the last tick")
	}
	if in.shared.get(third[0].s.key) != third[0].s || in.shared.get(third[1].s.key) != third[1].s {
		t.Error("the intake's table lacks a series of the last tick")
	}
	// c comes back: a new series.
	fourth := in.points([]collect.Point{{Series: a2, Value: 9}, {Series: b, Value: 10}, {Series: c, Value: 11}})
	if fourth[2].s == first[2].s {
		t.Error("a series back after a tick away is still the old one")
	}
	if name, ls := splitKey(fourth[1].s.key, nil); name != "b" || !slices.Equal(ls, []label{{"id", "2"}, {"job", "mine"}}) {
		t.Errorf("key read back as %s %v", name, ls)
	}
}

func slicesReplace(ss []string, old, new string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Replace(s, old, new, 1)
	}
	return out
}
