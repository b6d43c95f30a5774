// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// BenchmarkProbeMeterRefresh is what one sample of a session costs in the
// probes: a read of every map.
//
//	go test -run '^$' -bench ProbeMeterRefresh ./internal/sessions
func BenchmarkProbeMeterRefresh(b *testing.B) {
	testenv.RequireRoot(b)
	opts := probe.DefaultOptions()
	opts.NoStats = true
	p, err := probe.New(opts)
	if err != nil {
		testenv.Unavailable(b, "eBPF probes: %v", err)
	}
	defer p.Close()
	m := NewProbeMeter(p)
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if err := m.Refresh(now.Add(time.Duration(i)*time.Second), 0); err != nil {
			b.Fatal(err)
		}
		m.Subtree("/")
	}
}
