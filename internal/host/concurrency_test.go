// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestCollectDuringUpdate scrapes while the collectors update, as the agent
// does; run with -race it checks the double buffers.
func TestCollectDuringUpdate(t *testing.T) {
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	reg := s.registry(t)
	now := time.Now()
	s.update(now)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		s.update(now.Add(time.Duration(i) * time.Second))
		_ = s.fill(now)
	}
	close(stop)
	wg.Wait()
}

// TestClose checks the collectors that hold resources between ticks
// release them: every descriptor the set opened is closed again.
func TestClose(t *testing.T) {
	before := openFDs(t)
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	s.update(time.Now())
	if len(openFDs(t)) <= len(before) {
		t.Fatal("the collectors keep no file open between ticks: nothing to check")
	}
	var closed []string
	for _, c := range s.cs {
		if cl, ok := c.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				t.Errorf("%s: Close: %v", c.Name(), err)
			}
			closed = append(closed, c.Name())
		}
	}
	slices.Sort(closed)
	if want := []string{"arp", "conntrack", "cpu", "cpufreq", "diskstats", "entropy", "filefd", "filesystem", "kernel_hung", "loadavg", "machine", "meminfo", "netdev", "netstat", "pressure", "processes", "sockstat", "softnet", "stat", "time", "udp_queues", "uname", "vmstat"}; !slices.Equal(closed, want) {
		t.Errorf("closers %v, want %v", closed, want)
	}
	for fd, target := range openFDs(t) {
		// A descriptor open before may now name a thread that exited.
		if _, ok := before[fd]; !ok {
			t.Errorf("fd %d (%s) still open after Close", fd, target)
		}
	}
}

// openFDs maps this process's open descriptors to what they are.
func openFDs(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		testenv.Unavailable(t, "no /proc/self/fd: %v", err)
	}
	m := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			m[fd] = target
		}
	}
	return m
}
