// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHistQuantile(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    float64
		h    []uint64
		want float64
	}{
		{"empty", 0.5, make([]uint64, 34), 0},
		{"all zero values", 0.99, []uint64{5}, 0},
		// 100 values in [1024, 2048) ns: the median interpolates to 1536 ns.
		{"one bucket", 0.5, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100}, 1536e-9},
		// 99 small values and one in [2^19, 2^20) ns: p99 is the end of the small bucket.
		{"p99", 0.99, append(append([]uint64{0, 0, 0, 0, 0, 99}, make([]uint64, 14)...), 1), 32e-9},
		{"p100 tail", 1, append(append([]uint64{0, 0, 0, 0, 0, 99}, make([]uint64, 14)...), 1), math.Ldexp(1, 20) / 1e9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HistQuantile(tc.q, tc.h); math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("HistQuantile(%v) = %g, want %g", tc.q, got, tc.want)
			}
		})
	}
}

func TestCountersSub(t *testing.T) {
	a := Counters{CPUSeconds: 3, BlockWriteBytes: 100, RunqueueWaitHist: []uint64{1, 5, 7}, NetTxBytes: 5}
	b := Counters{CPUSeconds: 1, BlockWriteBytes: 40, RunqueueWaitHist: []uint64{1, 2, 3}, NetTxBytes: 9}
	want := Counters{CPUSeconds: 2, BlockWriteBytes: 60, RunqueueWaitHist: []uint64{0, 3, 4}, NetTxBytes: 5, BlockLatencyHist: []uint64{}}
	if diff := cmp.Diff(want, a.sub(b)); diff != "" {
		t.Errorf("sub (-want +got):\n%s", diff)
	}
}
