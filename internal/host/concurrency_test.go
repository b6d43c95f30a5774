// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
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
