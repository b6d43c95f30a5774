// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
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
	in := newInterner([]label{{"job", "crmon"}})
	want := []string{
		"c_total id=a job=crmon op=read", "c_total id=ab job=crmon op=read", "c_total id=b job=crmon op=read",
		"h_seconds_bucket id=a job=crmon le=0.1", "h_seconds_bucket id=a job=crmon le=1", "h_seconds_bucket id=a job=crmon le=+Inf",
		"h_seconds_sum id=a job=crmon", "h_seconds_count id=a job=crmon",
		"h_seconds_bucket id=b job=crmon le=0.1", "h_seconds_bucket id=b job=crmon le=1", "h_seconds_bucket id=b job=crmon le=+Inf",
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
	first := in.points(internerFamilies(1, 0.1, 1))
	check(first, want)
	second := in.points(internerFamilies(2, 0.1, 1))
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
	third := in.points(internerFamilies(3, 0.1, 2))
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
	fourth := in.points(fams)
	if fourth[1].s == third[1].s || seriesText(fourth[1].s) != "c_total id=abc job=crmon op=read" {
		t.Errorf("series %q, want c_total id=abc, a new one", seriesText(fourth[1].s))
	}
	if fourth[2].s != third[2].s {
		t.Error("the series after a new one was not found again")
	}
}

func TestInternerBounds(t *testing.T) {
	in := newInterner(nil)
	for _, c := range []struct {
		k    int
		v    float64
		want string
	}{{0, 0, "0"}, {0, math.Copysign(0, -1), "-0"}, {1, 0.5, "0.5"}, {1, math.NaN(), "NaN"}, {1, math.NaN(), "NaN"}, {1, math.Inf(1), "+Inf"}, {0, 0, "0"}, {1, 0.5, "0.5"}} {
		if got := in.bound(c.k, c.v); got != c.want {
			t.Errorf("bound(%d, %v) = %q, want %q", c.k, c.v, got, c.want)
		}
	}
}

func slicesReplace(ss []string, old, new string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Replace(s, old, new, 1)
	}
	return out
}
