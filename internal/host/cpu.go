// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// CPUStat is one cpu line of /proc/stat, in USER_HZ ticks.
type CPUStat struct {
	User, Nice, System, Idle, Iowait, IRQ, SoftIRQ, Steal, Guest, GuestNice uint64
}

// busy and total follow top(1): idle and iowait count as idle; guest time
// is already inside user and nice, so it is not added again.
func (s CPUStat) total() uint64 {
	return s.User + s.Nice + s.System + s.Idle + s.Iowait + s.IRQ + s.SoftIRQ + s.Steal
}

func (s CPUStat) idle() uint64 { return s.Idle + s.Iowait }

// ProcStatCPU is the cpu part of /proc/stat: the "cpu" total and one entry
// per "cpuN" line.
type ProcStatCPU struct {
	Total CPUStat
	CPUs  []CPUStat // indexed by the N of cpuN; offline CPUs are absent
	IDs   []int     // the N of each entry of CPUs
}

// parseProcStatCPU parses the cpu lines of /proc/stat into s, reusing its
// slices.
func parseProcStatCPU(b []byte, s *ProcStatCPU) error {
	s.CPUs, s.IDs = s.CPUs[:0], s.IDs[:0]
	seenTotal := false
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if !bytes.HasPrefix(line, []byte("cpu")) {
			if seenTotal {
				break // cpu lines come first
			}
			continue
		}
		name, rest := nextField(line)
		var st CPUStat
		vals := [...]*uint64{&st.User, &st.Nice, &st.System, &st.Idle, &st.Iowait, &st.IRQ, &st.SoftIRQ, &st.Steal, &st.Guest, &st.GuestNice}
		for _, v := range vals {
			var f []byte
			f, rest = nextField(rest)
			if len(f) == 0 {
				break // older kernels have fewer columns
			}
			u, ok := parseUint(f)
			if !ok {
				return fmt.Errorf("parsing /proc/stat %q: bad value %q", name, f)
			}
			*v = u
		}
		if len(name) == 3 {
			s.Total, seenTotal = st, true
			continue
		}
		id, ok := parseUint(name[3:])
		if !ok {
			return fmt.Errorf("parsing /proc/stat: bad cpu %q", name)
		}
		s.CPUs = append(s.CPUs, st)
		s.IDs = append(s.IDs, int(id))
	}
	if !seenTotal {
		return fmt.Errorf("parsing /proc/stat: no cpu line")
	}
	return nil
}

// parseCPUList counts the CPUs of a sysfs cpu list such as "0-3,8,10-11".
func parseCPUList(b []byte) (int, error) {
	n := 0
	err := cpuRanges(b, func(lo, hi uint64) bool {
		n += int(hi-lo) + 1
		return true
	})
	return n, err
}

// eachCPU calls fn for each CPU of a sysfs cpu list, until fn returns false.
func eachCPU(b []byte, fn func(cpu uint64) bool) error {
	return cpuRanges(b, func(lo, hi uint64) bool {
		for cpu := lo; cpu <= hi; cpu++ {
			if !fn(cpu) {
				return false
			}
		}
		return true
	})
}

// cpuRanges calls fn for each range of a sysfs cpu list, until fn returns
// false.
func cpuRanges(b []byte, fn func(lo, hi uint64) bool) error {
	b = bytes.TrimSpace(b)
	for len(b) > 0 {
		var part []byte
		if i := bytes.IndexByte(b, ','); i >= 0 {
			part, b = b[:i], b[i+1:]
		} else {
			part, b = b, nil
		}
		lo, hi := part, part
		if i := bytes.IndexByte(part, '-'); i >= 0 {
			lo, hi = part[:i], part[i+1:]
		}
		l, ok1 := parseUint(lo)
		h, ok2 := parseUint(hi)
		if !ok1 || !ok2 || h < l {
			return fmt.Errorf("parsing cpu list %q", part)
		}
		if !fn(l, h) {
			return nil
		}
	}
	return nil
}

var cpuModes = [...]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

type cpuCollector struct {
	metricSet
	log   *slog.Logger
	r, r2 *reader
	stat  openFile
	// online is kept open as /proc/stat is: opening it by path each tick
	// (a sysfs path walk) took three times as long as reading /proc/stat,
	// 4.5 % of the agent's CPU on a quiet host.
	online openFile

	cpuDesc, guestDesc *metricDesc
	// labels[i][mode] is the {cpu, mode} label slice of CPU i.
	labels   map[int]*[len(cpuModes) + 2][]string
	curStat  ProcStatCPU // this tick's /proc/stat; metricSet.cur holds the samples
	prevStat ProcStatCPU
	last     map[int]CPUStat // highest value seen per CPU and mode
	havePrev bool
	usage    float64
	cores    uint32
}

func newCPUCollector(o collect.Options) (*cpuCollector, error) {
	return &cpuCollector{
		log:    logger(o),
		r:      newReader(8192),
		r2:     newReader(64),
		stat:   openFile{path: mkpath(o.Paths.ProcFS, "stat")},
		online: openFile{path: mkpath(o.Paths.SysFS, "devices/system/cpu/online")},
		cpuDesc: newDesc("cpu", "seconds_total", "Seconds the CPUs spent in each mode.",
			"cpu", "mode"),
		guestDesc: newDesc("cpu", "guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.",
			"cpu", "mode"),
		labels: map[int]*[len(cpuModes) + 2][]string{},
		last:   map[int]CPUStat{},
	}, nil
}

func (c *cpuCollector) Name() string { return "cpu" }

func (c *cpuCollector) Close() error { return errors.Join(c.stat.Close(), c.online.Close()) }

func (c *cpuCollector) cpuLabels(id int) *[len(cpuModes) + 2][]string {
	if l, ok := c.labels[id]; ok {
		return l
	}
	l := new([len(cpuModes) + 2][]string)
	cpu := strconv.Itoa(id)
	for i, m := range cpuModes {
		l[i] = []string{cpu, m}
	}
	l[len(cpuModes)] = []string{cpu, "user"}
	l[len(cpuModes)+1] = []string{cpu, "nice"}
	c.labels[id] = l
	return l
}

// monotonic keeps a per-CPU counter from going backwards: idle and iowait
// can dip on NO_HZ kernels, and a counter reset breaks rate().
func monotonic(v *uint64, last uint64) {
	if *v < last {
		*v = last
	}
}

func (c *cpuCollector) Update(_ context.Context, now time.Time) error {
	b, err := c.stat.read(c.r)
	if err != nil {
		return noData(c.log, "cpu", fmt.Errorf("reading cpu stats: %w", err))
	}
	// A host without the sysfs list falls back to counting cpuN lines.
	online, _ := c.online.read(c.r2)
	return c.update(b, online)
}

func (c *cpuCollector) update(stat, online []byte) error {
	c.prevStat, c.curStat = c.curStat, c.prevStat
	if err := parseProcStatCPU(stat, &c.curStat); err != nil {
		c.havePrev = false
		return err
	}
	c.begin()
	for i := range c.curStat.CPUs {
		id := c.curStat.IDs[i]
		st := &c.curStat.CPUs[i]
		if l, ok := c.last[id]; ok {
			for _, p := range [...][2]*uint64{{&st.User, &l.User}, {&st.Nice, &l.Nice}, {&st.System, &l.System},
				{&st.Idle, &l.Idle}, {&st.Iowait, &l.Iowait}, {&st.IRQ, &l.IRQ}, {&st.SoftIRQ, &l.SoftIRQ},
				{&st.Steal, &l.Steal}, {&st.Guest, &l.Guest}, {&st.GuestNice, &l.GuestNice}} {
				monotonic(p[0], *p[1])
			}
		}
		c.last[id] = *st
		l := c.cpuLabels(id)
		for m, v := range [...]uint64{st.User, st.Nice, st.System, st.Idle, st.Iowait, st.IRQ, st.SoftIRQ, st.Steal} {
			c.add(c.cpuDesc, prometheus.CounterValue, float64(v)/userHZ, l[m])
		}
		c.add(c.guestDesc, prometheus.CounterValue, float64(st.Guest)/userHZ, l[len(cpuModes)])
		c.add(c.guestDesc, prometheus.CounterValue, float64(st.GuestNice)/userHZ, l[len(cpuModes)+1])
	}

	usage := 0.0
	if c.havePrev {
		usage = usagePercent(c.prevStat.Total, c.curStat.Total)
	}
	cores := uint32(len(c.curStat.CPUs))
	if n, err := parseCPUList(online); err == nil && n > 0 {
		cores = uint32(n)
	}
	c.havePrev = true
	c.publish(func() { c.usage, c.cores = usage, cores })
	return nil
}

// usagePercent is the non-idle share of all CPUs between two readings.
func usagePercent(prev, cur CPUStat) float64 {
	dt := float64(cur.total()) - float64(prev.total())
	if dt <= 0 {
		return 0
	}
	di := float64(cur.idle()) - float64(prev.idle())
	u := (dt - di) / dt * 100
	switch {
	case u < 0:
		return 0
	case u > 100:
		return 100
	}
	return u
}

func (c *cpuCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.CPU.UsagePercent = c.usage
	m.CPU.Cores = c.cores
}
