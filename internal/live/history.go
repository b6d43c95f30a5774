// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"math"
	"strconv"
	"time"
)

// series is a chart's values; NaN is a gap, written as null.
type series []float32

// MarshalJSON writes the values with 4 significant digits, which is what a
// chart can show, to keep the page's payload small.
func (s series) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+6*len(s))
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, float64(v), 'g', 4, 32)
	}
	return append(b, ']'), nil
}

func f32(p *float64) float32 {
	if p == nil {
		return float32(math.NaN())
	}
	return float32(*p)
}

// ring keeps the newest cap values of a few series side by side, with
// their times; it grows up to cap and then overwrites the oldest.
type ring struct {
	cap   int
	next  int // where the next point goes once full
	times []int64
	cols  [][]float32
}

func newRing(cols, capacity int) *ring {
	return &ring{cap: capacity, cols: make([][]float32, cols)}
}

func (r *ring) add(t time.Time, vals ...float32) {
	if len(r.times) < r.cap {
		r.times = append(r.times, t.UnixMilli())
		for i := range r.cols {
			r.cols[i] = append(r.cols[i], vals[i])
		}
		return
	}
	r.times[r.next] = t.UnixMilli()
	for i := range r.cols {
		r.cols[i][r.next] = vals[i]
	}
	r.next = (r.next + 1) % r.cap
}

func (r *ring) len() int { return len(r.times) }

// since copies the points from t on, oldest first: times in Unix
// milliseconds and each column. With last > 0, only the last ones.
func (r *ring) since(t time.Time, last int) ([]int64, []series) {
	n := len(r.times)
	order := func(i int) int { // i-th oldest
		if n < r.cap {
			return i
		}
		return (r.next + i) % r.cap
	}
	from := 0
	ms := t.UnixMilli()
	for from < n && r.times[order(from)] < ms {
		from++
	}
	if last > 0 && n-from > last {
		from = n - last
	}
	times := make([]int64, 0, n-from)
	cols := make([]series, len(r.cols))
	for c := range cols {
		cols[c] = make(series, 0, n-from)
	}
	for i := from; i < n; i++ {
		j := order(i)
		times = append(times, r.times[j])
		for c := range cols {
			cols[c] = append(cols[c], r.cols[c][j])
		}
	}
	return times, cols
}

// lastTime is the newest point's time, zero when empty.
func (r *ring) lastTime() time.Time {
	n := len(r.times)
	if n == 0 {
		return time.Time{}
	}
	i := n - 1
	if n == r.cap {
		i = (r.next + r.cap - 1) % r.cap
	}
	return time.UnixMilli(r.times[i])
}
