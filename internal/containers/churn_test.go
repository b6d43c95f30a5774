// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// TestChurn runs short-lived containers through the collector: each must be
// counted in some sample, and afterwards maps, series, open files and
// inotify watches must be back at their baseline.
func TestChurn(t *testing.T) {
	r := churn(t, 12, 3)
	t.Logf("%+v", r)
}

// BenchmarkChurn is the same with b.N containers; run it with
// -benchtime=1000x for the 1000-cycle figure.
func BenchmarkChurn(b *testing.B) {
	r := churn(b, b.N, 4)
	b.ReportMetric(float64(r.finalReads)/float64(r.cycles)*100, "%final-read")
	b.ReportMetric(float64(r.rssBefore)/(1<<20), "MiB-rss-before")
	b.ReportMetric(float64(r.rssAfter)/(1<<20), "MiB-rss-after")
	b.ReportMetric(float64(r.heapBefore)/(1<<10), "KiB-heap-before")
	b.ReportMetric(float64(r.heapAfter)/(1<<10), "KiB-heap-after")
	b.ReportMetric(r.maxGone.Seconds(), "max-s-served-after-rm")
}

type churnResult struct {
	cycles, counted, finalReads       int
	seriesBefore, seriesAfter         int
	fdsBefore, fdsAfter               int
	rssBefore, rssAfter               uint64
	heapBefore, heapAfter             uint64
	maxGone                           time.Duration
	knownAfter, watchesAfter, cgAfter int
}

func churn(tb testing.TB, n, parallel int) churnResult {
	prefix := uniq("crmon-churn")
	const tick = 100 * time.Millisecond
	c := newTestCollector(tb, Options{Include: []string{prefix + "-*"}, RemovedRetention: 2 * tick})

	var (
		mu      sync.Mutex
		seen    = map[string]bool{}
		final   = map[string]bool{}
		ticks   int
		goneAt  = map[string]time.Time{} // when the name was last served
		stopped = make(chan struct{})
		done    = make(chan struct{})
	)
	sample := func() {
		c.Update(context.Background(), time.Now())
		var m metrics.ResourceMetrics
		c.Fill(&m)
		var fin []string
		c.mu.RLock()
		for id, ct := range c.byID {
			if ct.finalRead {
				fin = append(fin, id)
			}
		}
		c.mu.RUnlock()
		mu.Lock()
		for _, id := range fin {
			final[id] = true
		}
		ticks++
		for _, d := range m.Containers.ContainerDetails {
			seen[d.ContainerName] = true
			goneAt[d.ContainerName] = time.Now()
		}
		mu.Unlock()
	}
	sample()
	// Warm up: the first containers grow the collector's buffers, the
	// client's connections and the runtime's pools once; the baseline is
	// taken after them.
	for i := 0; i < 3; i++ {
		dockertest.Docker(tb, "run", "--rm", "--name", fmt.Sprintf("%s-warm%d", prefix, i), dockertest.Image, "sh", "-c", "sleep 0.2")
		sample()
	}
	for deadline := time.Now().Add(10 * time.Second); c.Known() != 0 && time.Now().Before(deadline); {
		time.Sleep(tick)
		sample()
	}
	mu.Lock()
	final = map[string]bool{}
	mu.Unlock()
	base := churnResult{
		seriesBefore: collectAll(c),
		fdsBefore:    openFDs(tb),
	}
	base.rssBefore, base.heapBefore = memNow()

	// Scrapes run concurrently with ticks and events, as in the agent.
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stopped:
				return
			case <-time.After(tick / 3):
				collectAll(c)
				c.LookupCgroup("/docker/" + prefix)
			}
		}
	}()
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-stopped:
				return
			case <-t.C:
				sample()
			}
		}
	}()

	if b, ok := tb.(*testing.B); ok {
		b.ResetTimer()
	}
	names := make(chan string)
	var wg sync.WaitGroup
	var lastDone sync.Map
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				// --rm: the CLI returns once the engine removed it.
				dockertest.Docker(tb, "run", "--rm", "--name", name, dockertest.Image, "sh", "-c", "sleep 0.2")
				mu.Lock()
				lastDone.Store(name, time.Now())
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		names <- fmt.Sprintf("%s-%d", prefix, i)
	}
	close(names)
	wg.Wait()
	if b, ok := tb.(*testing.B); ok {
		b.StopTimer()
	}

	// Every removed container is dropped after RemovedRetention.
	deadline := time.Now().Add(c.opts.RemovedRetention + 36*tick)
	for c.Known() != 0 && time.Now().Before(deadline) {
		time.Sleep(tick)
	}
	time.Sleep(2 * tick)
	close(stopped)
	<-done
	<-scraped

	r := churnResult{cycles: n, seriesBefore: base.seriesBefore, fdsBefore: base.fdsBefore, rssBefore: base.rssBefore, heapBefore: base.heapBefore}
	mu.Lock()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if seen[name] {
			r.counted++
		}
		if v, ok := lastDone.Load(name); ok {
			if d := goneAt[name].Sub(v.(time.Time)); d > r.maxGone {
				r.maxGone = d
			}
		}
	}
	r.finalReads = len(final)
	// The test's own bookkeeping must not count as the collector's heap.
	seen, final, goneAt = nil, nil, nil
	lastDone.Clear()
	mu.Unlock()
	r.seriesAfter = collectAll(c)
	r.fdsAfter = openFDs(tb)
	r.rssAfter, r.heapAfter = memNow()
	c.mu.RLock()
	r.knownAfter, r.cgAfter = len(c.byID), len(c.byCgroup)
	c.mu.RUnlock()
	if c.exits != nil {
		r.watchesAfter = c.exits.size()
	}

	if r.counted != n {
		tb.Errorf("%d of %d short-lived containers were counted in a sample", r.counted, n)
	}
	if r.knownAfter != 0 || r.cgAfter != 0 || r.watchesAfter != 0 {
		tb.Errorf("after churn: %d containers, %d cgroup entries, %d watches held; want 0", r.knownAfter, r.cgAfter, r.watchesAfter)
	}
	if r.seriesAfter != r.seriesBefore {
		tb.Errorf("series: %d before, %d after", r.seriesBefore, r.seriesAfter)
	}
	if r.fdsAfter > r.fdsBefore+2 {
		tb.Errorf("open files: %d before, %d after", r.fdsBefore, r.fdsAfter)
	}
	// Served for RemovedRetention after the die or destroy event, which
	// arrives a moment after the CLI returns (seconds on a loaded host).
	if limit := c.opts.RemovedRetention + tick + 3*time.Second; r.maxGone > limit {
		tb.Errorf("a removed container was served %v after removal, want at most %v", r.maxGone, limit)
	}
	return r
}

// collectAll counts the series the collector serves, but the root
// cgroup's (id="/"), which follow the host's devices and interfaces, not
// the churn.
func collectAll(c *Collector) int {
	ch := make(chan prometheus.Metric, 256)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil && slices.ContainsFunc(d.GetLabel(), func(l *dto.LabelPair) bool {
			return l.GetName() == "id" && l.GetValue() == "/"
		}) {
			continue
		}
		n++
	}
	return n
}

func openFDs(tb testing.TB) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(es)
}

// memNow is RSS and heap in use after a full GC.
func memNow() (rss, heap uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	return rss, ms.HeapInuse
}
