// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"runtime"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

var testSeries = &series{key: "s", name: "s"}

func pts(vals ...float64) []point {
	p := make([]point, len(vals))
	for i, v := range vals {
		p[i] = point{s: testSeries, v: v}
	}
	return p
}

// values lists a batch's samples in order.
func values(b batch) []float64 {
	var v []float64
	for _, c := range b.chunks {
		for _, p := range c.pts[c.from:c.to] {
			v = append(v, p.v)
		}
	}
	return v
}

// TestQueueDropsOldestAndBatchesSurviveDrops: a full queue drops its
// oldest samples, the batch in flight included, and commit after the
// drop removes only what is still there.
func TestQueueDropsOldestAndBatchesSurviveDrops(t *testing.T) {
	q := newQueue(5)
	now := time.Now()
	q.push(&tick{t: now, pts: pts(1, 2, 3)}, now)
	b := q.peek(4, false)
	if got := values(b); len(got) != 3 || b.samples() != 3 {
		t.Fatalf("peek(4, false) of 3 = %v", got)
	}
	// The batch is in flight; two more ticks overflow the queue by 3.
	if d := q.push(&tick{t: now, pts: pts(4, 5)}, now); d != 0 {
		t.Errorf("dropped %d at 5 of 5", d)
	}
	if d := q.push(&tick{t: now, pts: pts(6, 7, 8)}, now); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
	if got := values(q.peek(10, false)); !equal(got, []float64{4, 5, 6, 7, 8}) {
		t.Errorf("after dropping the oldest 3: %v", got)
	}
	q.commit(b.hi) // the old batch delivered late: nothing of it is left
	if q.len() != 5 || q.droppedTotal() != 3 {
		t.Errorf("len %d dropped %d, want 5 and 3", q.len(), q.droppedTotal())
	}
	b = q.peek(3, false)
	if got := values(b); !equal(got, []float64{4, 5, 6}) {
		t.Errorf("peek(3, false) = %v, want a batch across two ticks", got)
	}
	q.commit(b.hi)
	if got := values(q.peek(10, false)); !equal(got, []float64{7, 8}) || q.len() != 2 {
		t.Errorf("after commit: %v (len %d)", got, q.len())
	}
	q.commit(q.peek(10, false).hi)
	if _, ok := q.oldest(); ok || q.len() != 0 || len(q.ticks) != 0 {
		t.Errorf("empty queue: len %d, %d ticks", q.len(), len(q.ticks))
	}
	// A single tick bigger than the queue keeps its newest samples.
	q.push(&tick{t: now, pts: pts(1, 2, 3, 4, 5, 6, 7)}, now)
	if got := values(q.peek(10, false)); !equal(got, []float64{3, 4, 5, 6, 7}) {
		t.Errorf("oversized tick: %v", got)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQueueMemory measures what a full default queue holds: 400 000
// samples as ticks of host + 50 containers (the benchmark's fleet), whose
// series are shared from tick to tick, as the intake makes them. The
// README quotes the figure.
func TestQueueMemory(t *testing.T) {
	const size = config.DefaultQueueSize
	fl := newFleet(t, 50)
	fams := fl.tick(1)
	in := newFamInterner(nil)
	in.families(fams) // the series, which live as long as they are served
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	q := newQueue(size)
	now := time.Now()
	for q.len() < size {
		q.push(&tick{t: now, pts: in.families(fams)}, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / size
	t.Logf("a full queue of %d samples: %.1f MB, %.1f bytes a sample", size, float64(after.HeapAlloc-before.HeapAlloc)/1e6, per)
	if per > 20 {
		t.Errorf("%.1f bytes a sample; the README says 16", per)
	}
	runtime.KeepAlive(q)
	runtime.KeepAlive(in)
}
