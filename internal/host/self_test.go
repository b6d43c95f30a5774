// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"math"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// TestSelfCollectorMatchesClientGolang: the agent's own process metrics
// are client_golang's, name, help and value, read the cheap way; the
// descriptors opened between the two reads are counted.
func TestSelfCollectorMatchesClientGolang(t *testing.T) {
	ours := NewSelfCollector("crmon")
	// A few descriptors more, to see the count follow them.
	var files []*os.File
	for range 5 {
		f, err := os.Open("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	theirs := gatherValues(t, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "crmon"}))
	got := gatherValues(t, ours)
	want := []string{
		"crmon_process_cpu_seconds_total", "crmon_process_open_fds", "crmon_process_max_fds",
		"crmon_process_virtual_memory_bytes", "crmon_process_virtual_memory_max_bytes",
		"crmon_process_resident_memory_bytes", "crmon_process_start_time_seconds",
	}
	if len(got) != len(want) {
		t.Errorf("%d families, want %d: %v", len(got), len(want), got)
	}
	for _, name := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		w, ok := theirs[name]
		if !ok {
			t.Fatalf("client_golang has no %s: %v", name, theirs)
		}
		var tol float64
		switch name {
		case "crmon_process_cpu_seconds_total":
			tol = 0.05 // the two reads are apart
		case "crmon_process_open_fds":
			tol = 2 // client_golang's own reads keep one open
		case "crmon_process_virtual_memory_bytes", "crmon_process_resident_memory_bytes":
			tol = 0.05 * w
		case "crmon_process_start_time_seconds":
			tol = 0.011
		}
		if math.Abs(g-w) > tol {
			t.Errorf("%s = %v, client_golang's %v", name, g, w)
		}
	}
	if got["crmon_process_open_fds"] < 5 {
		t.Errorf("crmon_process_open_fds %v with 5 files open here", got["crmon_process_open_fds"])
	}
	// The listing kernels before 6.2 need counts the same.
	if n, ok := ours.listFDs(); !ok || float64(n) != got["crmon_process_open_fds"] {
		t.Errorf("listing /proc/self/fd counts %d (%v), its size %v", n, ok, got["crmon_process_open_fds"])
	}
	before := got["crmon_process_open_fds"]
	files[0].Close()
	files = files[1:]
	if after := gatherValues(t, ours)["crmon_process_open_fds"]; after != before-1 {
		t.Errorf("crmon_process_open_fds %v after closing one of %v", after, before)
	}
}

// BenchmarkSelfCollector against client_golang's process collector, each
// collecting once:
//
//	go test -run '^$' -bench SelfCollector ./internal/host
func BenchmarkSelfCollector(b *testing.B) {
	for name, c := range map[string]prometheus.Collector{
		"crmon":         NewSelfCollector("crmon"),
		"client_golang": collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "crmon"}),
	} {
		b.Run(name, func(b *testing.B) {
			ch := make(chan prometheus.Metric, 16)
			for b.Loop() {
				c.Collect(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}
