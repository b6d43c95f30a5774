// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"sync"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
)

// ProbeMeter is a Meter over the eBPF probes. The agent passes its own
// probes; `crmon exec` without an agent loads them itself.
type ProbeMeter struct {
	p                 *probe.Probes
	sched, block, net bool
	mu                sync.Mutex
	snap              *probe.Snapshot
	readAt            time.Time
}

// NewProbeMeter wraps loaded probes.
func NewProbeMeter(p *probe.Probes) *ProbeMeter {
	return &ProbeMeter{
		p:     p,
		sched: p.Up(probe.ProbeSched),
		block: p.Up(probe.ProbeBlock),
		net:   p.Up(probe.ProbeNet),
	}
}

// Refresh reads the maps unless the last read is younger than maxAge.
func (m *ProbeMeter) Refresh(now time.Time, maxAge time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap != nil && now.Sub(m.readAt) >= 0 && now.Sub(m.readAt) < maxAge {
		return nil
	}
	s, err := m.p.Read(now)
	if s != nil {
		m.snap, m.readAt = s, now
	}
	return err
}

// BlockLostCompletions is how many block completions the probes lost on
// the whole host, as of the last Refresh: requests whose bytes are not
// in any count.
func (m *ProbeMeter) BlockLostCompletions() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return 0
	}
	return m.snap.Dropped(probe.ProbeBlock, "lost_completion")
}

// Subtree sums path and its descendants, removed ones included.
func (m *ProbeMeter) Subtree(path string) (Counters, bool) {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil {
		return Counters{}, false
	}
	st := s.Subtree(path)
	c := Counters{
		HasSched: m.sched, HasBlock: m.block, HasNet: m.net,
		CPUSeconds:                 st.CPU.Seconds(),
		RunqueueWaitSeconds:        st.RunqueueWait.Seconds(),
		RunqueueWaitHist:           append([]uint64(nil), st.RunqueueLatency.Buckets[:]...),
		VoluntaryContextSwitches:   st.VoluntarySwitches,
		InvoluntaryContextSwitches: st.InvoluntarySwitches,
		BlockReadBytes:             st.BlockBytes(probe.OpRead),
		BlockWriteBytes:            st.BlockBytes(probe.OpWrite),
		BlockReadOperations:        st.BlockOps(probe.OpRead),
		BlockWriteOperations:       st.BlockOps(probe.OpWrite),
		NetRxBytes:                 st.NetReceiveBytes,
		NetTxBytes:                 st.NetTransmitBytes,
	}
	lat := st.BlockLatency(probe.OpRead)
	w := st.BlockLatency(probe.OpWrite)
	lat.Add(&w)
	c.BlockLatencyHist = append([]uint64(nil), lat.Buckets[:]...)
	return c, true
}
