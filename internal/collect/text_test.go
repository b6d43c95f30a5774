// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package collect

import (
	"math"
	"strconv"
	"testing"
)

// TestAppendValue checks the integer shortcut against what client_golang
// writes (strconv's 'g', shortest), on both sides of where 'g' turns to
// an exponent.
func TestAppendValue(t *testing.T) {
	vals := []float64{2, -2, 7, 10, 99, 123, 4096, 99999, 100000, 999999, -999999, 1e6, -1e6, 1000001,
		1234567, 1e15, 1 << 53, 0.5, -0.25, 1.5, 999999.5, 1e-7, 123.456, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for i := 0; i < 2000; i++ {
		vals = append(vals, float64(i*i*7+i), float64(i)/8)
	}
	for _, v := range vals {
		got := string(AppendValue(nil, v))
		want := " " + strconv.FormatFloat(v, 'g', -1, 64) + "\n"
		if got != want {
			t.Errorf("AppendValue(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: " 0\n", 1: " 1\n", math.NaN(): " NaN\n", math.Inf(1): " +Inf\n", math.Inf(-1): " -Inf\n"} {
		if got := string(AppendValue(nil, v)); got != want {
			t.Errorf("AppendValue(%v) = %q, want %q", v, got, want)
		}
	}
}
