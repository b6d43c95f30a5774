// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"slices"
	"testing"
)

// TestCgroupMetricsLatencyBuckets checks that the snapshot carries one
// block latency histogram per cgroup: reads and writes of every device
// merged, without the empty buckets past the slowest request.
func TestCgroupMetricsLatencyBuckets(t *testing.T) {
	var r, w, w2 Histogram
	r.Buckets[3], w.Buckets[3], w.Buckets[10], w2.Buckets[5] = 1, 2, 4, 8
	s := &CgroupStats{Path: "/x", Block: []BlockStats{
		{Device: "vda", Op: OpRead, Bytes: 512, Ops: 1, Latency: r},
		{Device: "vda", Op: OpWrite, Bytes: 4096, Ops: 6, Latency: w},
		{Device: "vdb", Op: OpWrite, Bytes: 4096, Ops: 8, Latency: w2},
	}}
	want := []uint64{0, 0, 0, 3, 0, 8, 0, 0, 0, 0, 4}
	if got := CgroupMetrics(s).BlockLatencyBuckets; !slices.Equal(got, want) {
		t.Errorf("BlockLatencyBuckets = %v, want %v", got, want)
	}
	if got := CgroupMetrics(&CgroupStats{Path: "/idle"}).BlockLatencyBuckets; got != nil {
		t.Errorf("a cgroup without block I/O: %v, want none", got)
	}
}
