// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
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
// release them.
func TestClose(t *testing.T) {
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	s.update(time.Now())
	closed := 0
	for _, c := range s.cs {
		if cl, ok := c.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				t.Errorf("%s: Close: %v", c.Name(), err)
			}
			closed++
		}
	}
	if closed != 5 {
		t.Errorf("%d closers, want 5 (conntrack, filesystem, netdev, netstat, processes)", closed)
	}
	for _, c := range s.cs {
		if p, ok := c.(*processesCollector); ok && len(p.fds) != 0 {
			t.Errorf("processes: %d stat files still open", len(p.fds))
		}
		if ct, ok := c.(*conntrackCollector); ok && ct.stat.f.open {
			t.Errorf("conntrack: statistics file still open")
		}
		if nd, ok := c.(*netdevCollector); ok {
			for name, ifc := range nd.ifaces {
				if ifc.nohandler.open {
					t.Errorf("netdev: %s's rx_nohandler still open", name)
				}
			}
		}
		if ns, ok := c.(*netstatCollector); ok {
			for _, f := range ns.files {
				if f.open {
					t.Errorf("netstat: %s still open", f.path)
				}
			}
		}
	}
}
