// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"sync"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
)

// ProbeMeter is a Meter over the eBPF probes. The agent passes its own
// probes and offers it the read of every tick (the sample's Probes), so
// that its sessions never read the maps between their start and stop;
// `crmon exec` without an agent loads the probes itself and refreshes.
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

// offer makes snap, the agent's read of one tick, the meter's current
// read, unless the meter holds a newer one (a session's exact read at its
// start or stop).
func (m *ProbeMeter) offer(snap *probe.Snapshot) {
	if snap == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil || snap.Time.After(m.readAt) {
		m.snap, m.readAt = snap, snap.Time
	}
}

// ReadAt is the time of the current read; zero before the first.
func (m *ProbeMeter) ReadAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readAt
}

// BlockLostCompletions is how many block completions the probes lost on
// the whole host, as of the last Refresh: requests counted in the bytes
// (at issue) but in no operation count or latency.
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

// CgroupCPU is each cgroup's own on-CPU seconds as of the last Refresh.
func (m *ProbeMeter) CgroupCPU() map[string]float64 {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil || !m.sched {
		return nil
	}
	out := make(map[string]float64, len(s.Cgroups))
	for i := range s.Cgroups {
		c := &s.Cgroups[i]
		out[c.Path] += c.CPU.Seconds()
	}
	return out
}

// DeviceLatency is, per device, the block latency histogram of the
// subtree at path, reads and writes together, as of the last Refresh.
func (m *ProbeMeter) DeviceLatency(path string) map[string][]uint64 {
	m.mu.Lock()
	s := m.snap
	m.mu.Unlock()
	if s == nil || !m.block {
		return nil
	}
	st := s.Subtree(path)
	out := map[string][]uint64{}
	for _, b := range st.Block {
		h := out[b.Device]
		if h == nil {
			h = make([]uint64, len(b.Latency.Buckets))
		}
		for i, c := range b.Latency.Buckets {
			h[i] += c
		}
		out[b.Device] = h
	}
	return out
}
