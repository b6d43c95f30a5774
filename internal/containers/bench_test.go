// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
)

// idleContainers starts n idle containers (in one docker run each, a few
// at a time) and a collector that watches only them.
func idleContainers(b *testing.B, n int) *Collector {
	b.Helper()
	dockertest.Require(b)
	prefix := uniq("crmon-bench")
	ids := make([]string, n)
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ids[i] = dockertest.Docker(b, "run", "-d", "--name", fmt.Sprintf("%s-%d", prefix, i), dockertest.Image, "sleep", "3600")
			errs <- nil
		}()
	}
	for range n {
		<-errs
	}
	b.Cleanup(func() { dockertest.Remove(ids...) })
	c := newTestCollector(b, Options{Include: []string{prefix + "-*"}})
	waitFor(b, 30*time.Second, "containers known", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		k := 0
		for _, ct := range c.byID {
			if ct.reader != nil {
				k++
			}
		}
		return k == n
	})
	return c
}

// BenchmarkUpdateCollect is one tick's cost: read every container's
// cgroup and net/dev files, then emit every series.
func BenchmarkUpdateCollect(b *testing.B) {
	for _, n := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			c := idleContainers(b, n)
			ctx := context.Background()
			ch := make(chan prometheus.Metric, 4096)
			series := 0
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for range b.N {
				c.Update(ctx, time.Now())
				c.Collect(ch)
				series = len(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(series), "series")
		})
	}
}

// BenchmarkUpdate is the tick alone, what the agent pays every interval.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			c := idleContainers(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for range b.N {
				c.Update(ctx, time.Now())
			}
			cpu.report(b)
			c.mu.RLock()
			files := 0
			for _, ct := range c.byID {
				if ct.reader != nil {
					files += ct.reader.Files() + 1
				}
			}
			c.mu.RUnlock()
			b.ReportMetric(float64(files)/float64(max(n, 1)), "files/container")
		})
	}
}

// BenchmarkScrape50 is a scrape of this collector's families with 50
// containers, two ways: gathered and encoded as text by client_golang, as
// promhttp does ("gather"), and written by AppendText, as /metrics does
// ("text").
func BenchmarkScrape50(b *testing.B) {
	c := idleContainers(b, 50)
	c.Update(context.Background(), time.Now())
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	b.Run("gather", func(b *testing.B) {
		var size int
		var buf bytes.Buffer
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			mfs, err := r.Gather()
			if err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					b.Fatal(err)
				}
			}
			size = buf.Len()
		}
		cpu.report(b)
		b.ReportMetric(float64(size), "bytes")
	})
	b.Run("text", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			buf = c.AppendText(buf[:0])
		}
		cpu.report(b)
		b.ReportMetric(float64(len(buf)), "bytes")
	})
}

// cpuTime reports the process's CPU time per op besides wall time, which
// on a shared host says more than ns/op.
type cpuTime struct{ start time.Duration }

func startCPU() cpuTime { return cpuTime{processCPU()} }

func (c cpuTime) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-c.start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInterval runs the collector as the agent does, one Update per
// second (one op), and reports the whole process's CPU as a share of one
// core: ticks, the event and exit watchers, the client and the GC. Run it
// with -benchtime=30x.
func BenchmarkInterval(b *testing.B) {
	for _, n := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			c := idleContainers(b, n)
			ctx := context.Background()
			c.Update(ctx, time.Now())
			b.ResetTimer()
			cpu := startCPU()
			start := time.Now()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for range b.N {
				<-t.C
				c.Update(ctx, time.Now())
			}
			used := processCPU() - cpu.start
			b.ReportMetric(float64(used)/float64(time.Since(start))*100, "%core")
			rss, heap := memNow()
			b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
			b.ReportMetric(float64(heap)/(1<<20), "MiB-heap")
		})
	}
}

// BenchmarkAppendText is the container families' text of one scrape
// (the op) with n idle containers, a tick before each (not timed), as
// the agent runs: what the tick left unchanged, the scrape can keep.
// With CRMON_BENCH_INCLUDE, a name pattern, it runs over the containers
// that match instead of starting any.
//
//	go test -run '^$' -bench AppendText -count 3 ./internal/containers/
func BenchmarkAppendText(b *testing.B) {
	run := func(b *testing.B, c *Collector) {
		ctx := context.Background()
		now := time.Now()
		c.Update(ctx, now)
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			now = now.Add(time.Second)
			c.Update(ctx, now)
			b.StartTimer()
			buf = c.AppendText(buf[:0])
		}
		b.ReportMetric(float64(len(buf)), "bytes")
	}
	if include := os.Getenv("CRMON_BENCH_INCLUDE"); include != "" {
		c := newTestCollector(b, Options{Include: []string{include}})
		known := func() int {
			c.mu.RLock()
			defer c.mu.RUnlock()
			k := 0
			for _, ct := range c.byID {
				if ct.reader != nil {
					k++
				}
			}
			return k
		}
		// Known once the count stops moving.
		last := -1
		waitFor(b, time.Minute, "the running containers known", func() bool {
			k := known()
			defer func() { last = k }()
			time.Sleep(500 * time.Millisecond)
			return k > 0 && k == last
		})
		b.Run(fmt.Sprintf("containers=%d", last), func(b *testing.B) { run(b, c) })
		return
	}
	for _, n := range []int{50} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) { run(b, idleContainers(b, n)) })
	}
}
