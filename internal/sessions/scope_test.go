// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"slices"
	"testing"

	"github.com/crmon-dev/crmon/pkg/session"
)

// TestPointsBounded checks that a long session keeps at most maxPoints
// plot points per scope, spread over the whole run, with its first and
// final values.
func TestPointsBounded(t *testing.T) {
	s := &scope{}
	const n = 20 * maxPoints
	for i := range n {
		s.addPoint(float64(i)*0.2, false, false)
	}
	end := float64(n) * 0.2
	s.addPoint(end, true, true)
	if len(s.points) > maxPoints+1 {
		t.Errorf("%d points after %d samples, want at most %d", len(s.points), n+1, maxPoints+1)
	}
	if len(s.points) < maxPoints/2 {
		t.Errorf("%d points after %d samples, want at least %d", len(s.points), n+1, maxPoints/2)
	}
	if first := s.points[0].T; first != 0 {
		t.Errorf("first point at %v s, want 0", first)
	}
	if last := s.points[len(s.points)-1].T; last != end {
		t.Errorf("last point at %v s, want the final one at %v", last, end)
	}
	for i := 1; i < len(s.points); i++ {
		if s.points[i].T <= s.points[i-1].T {
			t.Fatalf("points out of order at %d: %v after %v", i, s.points[i].T, s.points[i-1].T)
		}
	}
	// Evenly spread: no gap wider than twice the median one.
	gaps := make([]float64, 0, len(s.points)-1)
	for i := 1; i < len(s.points); i++ {
		gaps = append(gaps, s.points[i].T-s.points[i-1].T)
	}
	sorted := slices.Clone(gaps)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	for i, gap := range gaps {
		if gap > 2*median {
			t.Errorf("gap of %v s before point %d (at %v s), want at most twice the median gap %v s", gap, i+1, s.points[i+1].T, median)
		}
	}
}

// TestMeasuresNeverRead checks that a scope whose cgroup files were never
// read and that the probes did not see reports its CPU time and block I/O
// as not measured, not as 0, and that one read makes them measured.
func TestMeasuresNeverRead(t *testing.T) {
	s := &scope{meta: session.ContainerReport{ID: "c1", Name: "db-1"}}
	unavailable := map[string]bool{}
	m := s.measures(map[string]bool{}, unavailable)
	for _, f := range []string{"cpu_seconds", "block_read_bytes", "block_write_bytes", "block_read_operations", "block_write_operations", "processes_started"} {
		if m.Measured(f) {
			t.Errorf("%s measured from files never read", f)
		}
	}
	if !unavailable["containers.cpu_seconds"] || !unavailable["containers.block_io"] {
		t.Errorf("unavailable = %v", unavailable)
	}
	s.haveCG = true
	m = s.measures(map[string]bool{}, map[string]bool{})
	if !m.Measured("cpu_seconds") || !m.Measured("block_write_bytes") {
		t.Errorf("read once, still unmeasured: %v", m.Unmeasured)
	}
}
