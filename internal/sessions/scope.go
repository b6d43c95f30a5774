// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/pkg/session"
)

// cgValues are the cgroup files' cumulative values a report uses.
type cgValues struct {
	cpuNanos              uint64
	readBytes, writeBytes uint64
	readOps, writeOps     uint64
}

// scope is one measured cgroup: the run's, or a container's.
type scope struct {
	name  string
	meta  session.ContainerReport
	paths cgroups.Paths
	// fresh: created for or during the run, so counters since creation
	// are the run's.
	fresh bool

	reader *cgroups.Reader
	// cpuStat is the cgroup2 cpu.stat, read for CPU time when the cpu
	// controller lives in v1: it counts from clone on, where the v1
	// cpuacct cgroup is joined only after execve.
	cpuStat  *os.File
	opened   bool
	openedAt time.Time
	gone     bool
	// final says the cgroup files were read after the last process left:
	// what they said then is the whole story.
	final bool
	// watch is the inotify watch on cgroup.events, -1 for none.
	watch     int
	stats     cgroups.Stats
	cur, base cgValues
	haveCG    bool
	memUsage  uint64
	memPeak   uint64 // highest sampled usage
	memMax    uint64 // the kernel's own peak (max_usage_in_bytes, memory.peak)
	meter     Counters
	meterBase Counters
	haveMeter bool
	// ev is the evidence of findings the cgroup files gave at the last
	// read, evBase at the start; settingsRead says the limits were read.
	ev, evBase   evidence
	haveEv       bool
	settingsRead bool
	points       []session.Point
	// anchor is the point of the last probe read (or of the start, where
	// every counter is zero): the probe-based values of the points after
	// it are spread between it and the next read.
	anchor   session.Point
	anchored bool
	// stride is how many addPoint calls make one point (1 until the
	// points reach maxPoints); skipped counts the calls since the last.
	stride, skipped int
}

func (tr *Tracker) newScope(name string, p cgroups.Paths, fresh bool) *scope {
	return &scope{name: name, paths: p, fresh: fresh, watch: -1}
}

// openRetry spaces the attempts to open a cgroup that is not there (a
// container created but not started) or has no v1 files (a cgroup2 path on
// a hybrid host) when a sample, not an event, asks.
const openRetry = time.Second

// readScope reads the scope's cgroup files and probe counters. force
// opens the files now, whatever the last attempt; samples pass false.
// tr.mu held.
func (tr *Tracker) readScope(s *scope, force bool) {
	if tr.opts.Meter != nil && s.paths.V2 != "" {
		if c, ok := tr.opts.Meter.Subtree(s.paths.V2); ok {
			s.meter, s.haveMeter = c, true
		}
	}
	if s.gone {
		return
	}
	h := tr.opts.Hierarchy
	if s.reader == nil && (force || time.Since(s.openedAt) >= openRetry) {
		s.openedAt = time.Now()
		if s.paths.V2 != "" && !h.OnV2(cgroups.CPU) && h.Unified != "" && s.cpuStat == nil {
			s.cpuStat, _ = os.Open(filepath.Join(h.Unified, s.paths.V2, "cpu.stat"))
		}
		if r, err := h.Open(s.paths); err == nil {
			s.reader, s.opened = r, true
		} else if s.opened {
			// Removed since the last read.
			s.gone = true
			s.close()
			return
		}
	}
	if s.reader == nil && s.cpuStat == nil {
		return
	}
	if s.reader != nil {
		// The limits (memory, CPU quota) are read once: they only change
		// when someone updates the container.
		mode := cgroups.ReadCounters
		if !s.settingsRead {
			mode, s.settingsRead = cgroups.ReadAll, true
		}
		err := s.reader.Read(&s.stats, &tr.buf, mode)
		if errors.Is(err, cgroups.ErrGone) {
			s.gone = true
			s.close()
			return
		}
		s.ev, s.haveEv = evidenceOf(&s.stats), true
	} else if len(tr.buf) < 4096 {
		tr.buf = make([]byte, 16384)
	}
	st := &s.stats
	v := cgValues{cpuNanos: st.CPU.UsageNanos}
	for _, d := range st.IO.Devices {
		v.readBytes += d.ReadBytes
		v.writeBytes += d.WriteBytes
		v.readOps += d.Reads
		v.writeOps += d.Writes
	}
	if s.cpuStat != nil {
		n, err := s.cpuStat.ReadAt(tr.buf[:4096], 0)
		if n == 0 && err != nil && !errors.Is(err, io.EOF) {
			// ENODEV: the cgroup is gone.
			s.gone = true
			s.close()
			return
		}
		if us, ok := parseUsageUsec(tr.buf[:n]); ok {
			v.cpuNanos = us * 1000
		}
	}
	s.cur, s.haveCG = v, true
	s.memUsage = st.Memory.Usage
	s.memPeak = max(s.memPeak, st.Memory.Usage)
	s.memMax = max(s.memMax, st.Memory.MaxUsage)
}

// parseUsageUsec finds usage_usec in a cgroup2 cpu.stat.
func parseUsageUsec(b []byte) (uint64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// setBaseline makes the current values the zero of the run.
func (s *scope) setBaseline() {
	s.base = s.cur
	s.evBase = s.ev
	s.meterBase = s.meter
	s.memPeak = s.memUsage
}

func (s *scope) close() {
	if s.reader != nil {
		_ = s.reader.Close()
		s.reader = nil
	}
	if s.cpuStat != nil {
		_ = s.cpuStat.Close()
		s.cpuStat = nil
	}
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// measures turns the scope's values into the report's, noting which
// sources gave them and what nothing measured.
func (s *scope) measures(sources, unavailable map[string]bool) session.Measures {
	m, _ := s.measuresFrom(sources, unavailable)
	return m
}

// fromProbes says which of a point's values the probes gave.
type fromProbes uint8

const (
	probeCPU fromProbes = 1 << iota
	probeBlock
	probeNet
)

// measuresFrom is measures, and which plotted values came from the probes.
func (s *scope) measuresFrom(sources, unavailable map[string]bool) (m session.Measures, from fromProbes) {
	if s.meta.ID != "" {
		// Containers' gaps are named apart from the run's.
		all := unavailable
		unavailable = map[string]bool{}
		defer func() {
			for k := range unavailable {
				all["containers."+k] = true
			}
		}()
	}
	cg := cgValues{
		cpuNanos:   sub(s.cur.cpuNanos, s.base.cpuNanos),
		readBytes:  sub(s.cur.readBytes, s.base.readBytes),
		writeBytes: sub(s.cur.writeBytes, s.base.writeBytes),
		readOps:    sub(s.cur.readOps, s.base.readOps),
		writeOps:   sub(s.cur.writeOps, s.base.writeOps),
	}
	m.CPUSeconds = float64(cg.cpuNanos) / 1e9
	m.BlockReadBytes, m.BlockWriteBytes = cg.readBytes, cg.writeBytes
	m.BlockReadOperations, m.BlockWriteOperations = cg.readOps, cg.writeOps
	d := s.meter.sub(s.meterBase)
	// The cgroup files never read (a cgroup that could not be opened)
	// measured nothing: the zeros above are no figures, unless the
	// probes give them below.
	if !s.haveCG && !(s.haveMeter && d.HasSched) {
		unavailable["cpu_seconds"] = true
		m.SetUnmeasured("cpu_seconds")
	}
	if !s.haveCG && !(s.haveMeter && d.HasBlock) {
		unavailable["block_io"] = true
		m.SetUnmeasured("block_read_bytes", "block_write_bytes", "block_read_operations", "block_write_operations")
	}
	if s.haveMeter && (d.HasSched || d.HasBlock || d.HasNet) {
		sources["ebpf"] = true
	}
	if s.haveMeter && d.HasSched {
		// The cgroup's own cpu.stat is the kernel's accounting of the
		// same clock; the probes' count stands in where there is none,
		// and for a cgroup removed before its final values were read.
		if !s.haveCG || s.cur.cpuNanos == 0 || (s.gone && !s.final) {
			m.CPUSeconds = d.CPUSeconds
			from |= probeCPU
		}
		m.RunqueueWaitSeconds = d.RunqueueWaitSeconds
		m.RunqueueWaitP50Seconds = HistQuantile(0.5, d.RunqueueWaitHist)
		m.RunqueueWaitP99Seconds = HistQuantile(0.99, d.RunqueueWaitHist)
		m.VoluntaryContextSwitches = d.VoluntaryContextSwitches
		m.InvoluntaryContextSwitches = d.InvoluntaryContextSwitches
		m.ContextSwitches = d.VoluntaryContextSwitches + d.InvoluntaryContextSwitches
	} else {
		unavailable["runqueue_wait"] = true
		unavailable["context_switches"] = true
		m.SetUnmeasured("runqueue_wait_seconds", "runqueue_wait_p50_seconds", "runqueue_wait_p99_seconds",
			"context_switches", "voluntary_context_switches", "involuntary_context_switches")
	}
	if s.haveMeter && d.HasBlock {
		// The probes charge a request to the cgroup the kernel charges
		// it to; the cgroup files are the fallback where they saw none.
		if d.BlockReadBytes+d.BlockWriteBytes > 0 || cg.readBytes+cg.writeBytes == 0 {
			m.BlockReadBytes, m.BlockWriteBytes = d.BlockReadBytes, d.BlockWriteBytes
			m.BlockReadOperations, m.BlockWriteOperations = d.BlockReadOperations, d.BlockWriteOperations
			from |= probeBlock
		}
		m.BlockIOLatencyP99Seconds = HistQuantile(0.99, d.BlockLatencyHist)
	} else {
		unavailable["block_io_latency"] = true
		m.SetUnmeasured("block_io_latency_p99_seconds")
	}
	if s.haveMeter && d.HasNet {
		m.NetRxBytes, m.NetTxBytes = d.NetRxBytes, d.NetTxBytes
		from |= probeNet
	} else {
		unavailable["net_rx_bytes"] = true
		unavailable["net_tx_bytes"] = true
		m.SetUnmeasured("net_rx_bytes", "net_tx_bytes")
	}
	if s.haveMeter && d.HasForks {
		m.ProcessesStarted = d.Forks
	} else {
		unavailable["processes_started"] = true
		m.SetUnmeasured("processes_started")
	}
	m.PeakMemoryBytes = s.memPeak
	if s.fresh {
		m.PeakMemoryBytes = max(s.memMax, s.memPeak)
	}
	if m.PeakMemoryBytes == 0 {
		// No memory file to read (a cgroup2 path on a hybrid host).
		unavailable["peak_memory_bytes"] = true
		m.SetUnmeasured("peak_memory_bytes")
	}
	return m, from
}

// maxPoints bounds a scope's plot points, so that a session left running
// for a day does not grow the agent: a plot is some 500 pixels wide, and
// 1024 points of 56 bytes are 56 KiB per scope.
const maxPoints = 1024

// addPoint records the scope's values at t seconds since the start. Past
// maxPoints it drops every other point and from then on records every
// second call (then every fourth, …); final, the last values, is always
// recorded. probed says the probes were read for this call: their values
// change only then, once a second, while points are taken more often, so
// a probe read's step is spread over the points since the previous one
// (a steady 1 MB/s stream plots flat, not as zeros and a spike).
func (s *scope) addPoint(t float64, final, probed bool) {
	defer func() {
		if s.gone {
			s.memUsage = 0
		}
	}()
	skip := false
	if s.stride > 1 && !final {
		if s.skipped++; s.skipped < s.stride {
			skip = true
		}
	}
	if skip && !probed {
		return
	}
	m, from := s.measuresFrom(map[string]bool{}, map[string]bool{})
	p := session.Point{
		T: t, CPUSeconds: m.CPUSeconds, MemoryBytes: s.memUsage,
		BlockReadBytes: m.BlockReadBytes, BlockWriteBytes: m.BlockWriteBytes,
		NetRxBytes: m.NetRxBytes, NetTxBytes: m.NetTxBytes,
	}
	if probed {
		s.spread(p, from)
	}
	if skip {
		return
	}
	s.skipped = 0
	if len(s.points) >= maxPoints {
		// Keep the first point and every other one after it.
		n := 0
		for i := 0; i < len(s.points); i += 2 {
			s.points[n] = s.points[i]
			n++
		}
		s.points = s.points[:n]
		s.stride = max(2, 2*s.stride)
	}
	s.points = append(s.points, p)
}

// spread makes p, the values of a probe read, the new anchor, and
// interpolates the probe-based values of the points recorded since the
// last anchor between the two.
func (s *scope) spread(p session.Point, from fromProbes) {
	a := s.anchor
	if dt := p.T - a.T; s.anchored && from != 0 && dt > 0 {
		lerp := func(x, y uint64, f float64) uint64 {
			return uint64(max(0, float64(x)+(float64(y)-float64(x))*f))
		}
		for i := len(s.points) - 1; i >= 0 && s.points[i].T > a.T; i-- {
			q := &s.points[i]
			f := (q.T - a.T) / dt
			if from&probeCPU != 0 {
				q.CPUSeconds = a.CPUSeconds + (p.CPUSeconds-a.CPUSeconds)*f
			}
			if from&probeBlock != 0 {
				q.BlockReadBytes = lerp(a.BlockReadBytes, p.BlockReadBytes, f)
				q.BlockWriteBytes = lerp(a.BlockWriteBytes, p.BlockWriteBytes, f)
			}
			if from&probeNet != 0 {
				q.NetRxBytes = lerp(a.NetRxBytes, p.NetRxBytes, f)
				q.NetTxBytes = lerp(a.NetTxBytes, p.NetTxBytes, f)
			}
		}
	}
	s.anchor, s.anchored = p, true
}
