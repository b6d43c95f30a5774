// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// BenchmarkTrackerSample is one sample of a session measuring a cgroup,
// without probes: what the agent pays per session per sample interval.
//
//	go test -run '^$' -bench TrackerSample -benchmem ./internal/sessions
func BenchmarkTrackerSample(b *testing.B) {
	testenv.RequireRoot(b)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(b, "no cgroups: %v", err)
	}
	p := fmt.Sprintf("/crmon-bench-%d", os.Getpid())
	dir := filepath.Join(h.Unified, p)
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.Remove(dir)
	tr, err := NewTracker(TrackerOptions{Hierarchy: h, SampleInterval: time.Hour}, Target{Name: "bench", Cgroup: cgroups.Paths{V2: p}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Stop()
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		tr.mu.Lock()
		tr.sample(now.Add(time.Duration(i)*time.Millisecond), false)
		tr.mu.Unlock()
	}
}
