// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"io"
	"slices"
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
	if want := []string{"arp", "conntrack", "filesystem", "netdev", "netstat", "processes", "sockstat", "softnet", "udp_queues"}; !slices.Equal(closed, want) {
		t.Errorf("closers %v, want %v", closed, want)
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
		var kept []openFile
		switch c := c.(type) {
		case *netstatCollector:
			kept = c.files[:]
		case *arpCollector:
			kept = []openFile{c.file}
		case *softnetCollector:
			kept = []openFile{c.file}
		case *sockstatCollector:
			kept = c.files[:]
		case *udpQueuesCollector:
			kept = append(c.files[:], c.socks[:]...)
		}
		for _, f := range kept {
			if f.open {
				t.Errorf("%s: %s still open", c.Name(), f.path)
			}
		}
	}
}
