// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestShortLivedFinalCounters runs containers that each write 8 MiB with
// O_DIRECT and exit at once, between two ticks: each one's final counters
// must be served, with its name and image, for RemovedRetention after it
// is gone, though its cgroup is gone before the next tick. They are read
// from cgroupfs as the last process leaves; where a busy host made crmon
// lose that race, the probes' counts stand in, as in the agent, and no
// container is left with nothing or with stale counters.
func TestShortLivedFinalCounters(t *testing.T) {
	const (
		n         = 20
		written   = 8 << 20
		tick      = time.Second
		retention = 30 * time.Second
	)
	prefix := uniq("crmon-final")
	c := newTestCollector(t, Options{Include: []string{prefix + "-*"}, RemovedRetention: retention})
	pc := probeCounts(t, c, retention)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				// In the agent's order: containers, then the probes.
				c.Update(context.Background(), now)
				pc.Update(context.Background(), now)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// check asserts the final counters of the container called name.
	check := func(name, when string) {
		t.Helper()
		mfs := gather(t, c)
		if w, ok := series(mfs, "container_fs_writes_bytes_total", name, "image", dockertest.Image); !ok || w < written {
			t.Errorf("%s, %s: container_fs_writes_bytes_total{image=%q} = %v (served %v), want at least %d", name, when, dockertest.Image, w, ok, written)
		}
		if u, ok := series(mfs, "container_cpu_usage_seconds_total", name, "image", dockertest.Image); !ok || u <= 0 {
			t.Errorf("%s, %s: container_cpu_usage_seconds_total{image=%q} = %v (served %v), want > 0", name, when, dockertest.Image, u, ok)
		}
	}
	// served waits until the container called name is served: on a busy
	// host the engine's events for it, which name it, come seconds late.
	served := func(name string) {
		for deadline := time.Now().Add(retention / 3); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if _, ok := series(gather(t, c), "container_cpu_usage_seconds_total", name, "", ""); ok {
				break
			}
		}
	}
	// Four at a time, so that the last ends well within the first's
	// retention.
	exited := make([]time.Time, n)
	var run sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 4; w++ {
		run.Add(1)
		go func() {
			defer run.Done()
			for i := range next {
				name := fmt.Sprintf("%s-%d", prefix, i)
				start := time.Now()
				// --rm: the CLI returns once the engine removed it.
				dockertest.Docker(t, "run", "--rm", "--network", "none", "--name", name, dockertest.Image,
					"dd", "if=/dev/zero", "of=/tmp/f", "bs=1M", fmt.Sprint("count=", written>>20), "oflag=direct")
				exited[i] = time.Now()
				t.Logf("%s ran and was removed in %v", name, time.Since(start).Round(time.Millisecond))
				// Once served, it is with its final values.
				served(name)
				check(name, "once served")
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	run.Wait()
	first, last := exited[0], exited[0]
	for _, e := range exited {
		first, last = minTime(first, e), maxTime(last, e)
	}
	if last.Sub(first) > retention-4*tick {
		t.Fatalf("the containers took %v, too long to check them all within a retention of %v", last.Sub(first), retention)
	}
	// Near the end of the first one's retention, every one is served.
	time.Sleep(time.Until(first.Add(retention - 2*tick)))
	for i := 0; i < n; i++ {
		check(fmt.Sprintf("%s-%d", prefix, i), "near the end of its retention")
	}
	// And after the last one's, none is.
	time.Sleep(time.Until(last.Add(retention + 3*tick)))
	mfs := gather(t, c)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if _, ok := series(mfs, "container_cpu_usage_seconds_total", name, "", ""); ok {
			t.Errorf("%s: still served %v after its retention", name, 3*tick)
		}
	}
	if k := c.Known(); k != 0 {
		t.Errorf("%d containers held after their retention, want 0", k)
	}
	for _, f := range []string{"last_read", "none"} {
		if n, _ := series(mfs, "crmon_containers_unread_total", "", "fallback", f); n != 0 {
			t.Errorf("crmon_containers_unread_total{fallback=%q} = %v, want 0: the probes count every container", f, n)
		}
	}
	fromProbes, _ := series(mfs, "crmon_containers_unread_total", "", "fallback", "ebpf")
	t.Logf("%v of %d containers served from the probes' counts", fromProbes, n)
}

// probeCounts loads the sched and block probes and gives c their counts of
// removed cgroups, as the agent does; the returned collector reads them.
func probeCounts(t *testing.T, c *Collector, retention time.Duration) collect.Collector {
	t.Helper()
	p, err := probe.New(probe.Options{Sched: true, Block: true, Required: true})
	if err != nil {
		testenv.Unavailable(t, "eBPF probes: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	pc := probe.NewCollector(p, probe.CollectorOptions{Lookup: c, RemovedRetention: retention})
	c.SetCgroupCounter(pc.(collect.CgroupCounter))
	return pc
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
