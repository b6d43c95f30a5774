// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestCounterIncrease(t *testing.T) {
	ss := []sample{{0, 5}, {10, 7}, {20, 12}, {30, 2}, {40, 4}}
	for _, c := range []struct {
		name     string
		from, to int64
		born     bool
		want     float64
	}{
		{"from a sample before the window", 5, 20, false, 7},
		{"across a reset", 5, 40, false, 7 + 2 + 2},
		{"begins inside, store recorded before: from 0", -10, 10, true, 7},
		{"begins inside, store began with it: from its first value", -10, 10, false, 2},
		{"nothing inside", 41, 50, false, 0},
	} {
		if got := counterIncrease(ss, c.from, c.to, c.born); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if pts := cumulative(ss, c.from, c.to, c.born); len(pts) > 0 && pts[len(pts)-1].v != c.want {
			t.Errorf("%s: cumulative ends at %v, want %v", c.name, pts[len(pts)-1].v, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	b := func(le string, n float64) labeledSamples {
		return labeledSamples{labels.FromStrings("le", le), []sample{{0, 0}, {10, n}}}
	}
	// 100 observations: 50 at or below 0.1, 90 at or below 1, 100 below +Inf.
	bs := []labeledSamples{b("0.1", 50), b("1.0", 90), b("+Inf", 100)}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.1}, {0.7, 0.1 + 0.9*0.5}, {0.99, 1}} {
		if got := quantile(c.q, bs, 0, 10, false); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
}
