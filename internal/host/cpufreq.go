// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// cpufreqFiles are read per CPU from cpuN/cpufreq, in kHz.
var cpufreqFiles = [...]string{
	"cpuinfo_cur_freq", "cpuinfo_max_freq", "cpuinfo_min_freq",
	"scaling_cur_freq", "scaling_max_freq", "scaling_min_freq",
}

type cpufreqCPU struct {
	id     string
	lv     []string
	files  [len(cpufreqFiles)]openFile
	gov    cpath
	govLV  []string // {cpu, governor}; nil when unreadable
	govStr string
	static [len(cpufreqFiles)]uint64 // last reading of each file
}

type cpufreqCollector struct {
	metricSet
	log     *slog.Logger
	r       *reader
	sysCPU  string
	cpuinfo cpath
	// cpuinfoMHz is the last mean "cpu MHz" of /proc/cpuinfo, for a
	// host without cpufreq.
	cpuinfoMHz float64
	cpus       []cpufreqCPU
	rescan     bool
	// lastStatic is when the limits and governors were last read.
	lastStatic time.Time

	descs [len(cpufreqFiles)]*metricDesc
	gov   *metricDesc
	mhz   float64
}

func newCPUFreqCollector(o collect.Options) (*cpufreqCollector, error) {
	c := &cpufreqCollector{
		log:     logger(o),
		r:       newReader(16384),
		sysCPU:  filepath.Join(o.Paths.SysFS, "devices/system/cpu"),
		cpuinfo: mkpath(o.Paths.ProcFS, "cpuinfo"),
		rescan:  true,
		descs: [...]*metricDesc{
			newDesc("cpu", "frequency_hertz", "Current CPU thread frequency in hertz.", "cpu"),
			newDesc("cpu", "frequency_max_hertz", "Maximum CPU thread frequency in hertz.", "cpu"),
			newDesc("cpu", "frequency_min_hertz", "Minimum CPU thread frequency in hertz.", "cpu"),
			newDesc("cpu", "scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz.", "cpu"),
			newDesc("cpu", "scaling_frequency_max_hertz", "Maximum scaled CPU thread frequency in hertz.", "cpu"),
			newDesc("cpu", "scaling_frequency_min_hertz", "Minimum scaled CPU thread frequency in hertz.", "cpu"),
		},
		gov: newDesc("cpu", "scaling_governor", "Current enabled CPU frequency governor.", "cpu", "governor"),
	}
	return c, nil
}

func (c *cpufreqCollector) Name() string { return "cpufreq" }

// Close closes the CPUs' files.
func (c *cpufreqCollector) Close() error {
	for i := range c.cpus {
		for f := range c.cpus[i].files {
			c.cpus[i].files[f].Close()
		}
	}
	return nil
}

// scan lists the CPUs that have a cpufreq directory. It runs at the first
// tick and again after a CPU's files vanish (hotplug), not every tick.
func (c *cpufreqCollector) scan() {
	c.Close()
	c.cpus = c.cpus[:0]
	ents, err := os.ReadDir(c.sysCPU)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "cpu") {
			continue
		}
		if _, err := strconv.Atoi(n[3:]); err != nil {
			continue
		}
		dir := filepath.Join(c.sysCPU, n, "cpufreq")
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		cpu := cpufreqCPU{id: n[3:], lv: []string{n[3:]}, gov: mkpath(dir, "scaling_governor")}
		for i, f := range cpufreqFiles {
			// cpuinfo_cur_freq is root-only and absent on many drivers.
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				cpu.files[i] = openFile{path: mkpath(dir, f)}
			}
		}
		c.cpus = append(c.cpus, cpu)
	}
	slices.SortFunc(c.cpus, func(a, b cpufreqCPU) int {
		x, _ := strconv.Atoi(a.id)
		y, _ := strconv.Atoi(b.id)
		return x - y
	})
}

// cpufreqStaticRefresh is how often the limits and the governor, which
// change only by an administrator's hand, are re-read; the current
// frequencies are read every tick. On a 64-CPU host that is 128 reads a
// tick instead of 448.
const cpufreqStaticRefresh = time.Minute

// cpufreqStatic says which of cpufreqFiles are limits.
var cpufreqStatic = [len(cpufreqFiles)]bool{false, true, true, false, true, true}

func (c *cpufreqCollector) Update(_ context.Context, now time.Time) error {
	if c.rescan {
		c.scan()
		c.rescan = false
		c.lastStatic = time.Time{}
	}
	static := c.lastStatic.IsZero() || now.Sub(c.lastStatic) >= cpufreqStaticRefresh || !now.After(c.lastStatic)
	if static {
		c.lastStatic = now
	}
	c.begin()
	var sum float64
	var n int
	for i := range c.cpus {
		cpu := &c.cpus[i]
		for f := range cpufreqFiles {
			if cpu.files[f].path == nil {
				continue
			}
			var v uint64
			if cpufreqStatic[f] && !static {
				v = cpu.static[f]
			} else {
				var err error
				if v, err = cpu.files[f].readUint(c.r); err != nil {
					c.rescan = true // the CPU went offline
					continue
				}
				cpu.static[f] = v
			}
			c.add(c.descs[f], prometheus.GaugeValue, float64(v)*1000, cpu.lv)
			if cpufreqFiles[f] == "scaling_cur_freq" {
				sum += float64(v) / 1000
				n++
			}
		}
		if static {
			cpu.govLV = nil
			if b, err := c.r.read(cpu.gov); err == nil {
				g := bytes.TrimSpace(b)
				if string(g) != cpu.govStr || cpu.govLV == nil {
					cpu.govStr = string(g)
					cpu.govLV = []string{cpu.id, cpu.govStr}
				}
			}
		}
		if cpu.govLV != nil {
			c.add(c.gov, prometheus.GaugeValue, 1, cpu.govLV)
		}
	}
	mhz := 0.0
	if n > 0 {
		mhz = sum / float64(n)
	} else {
		// Without cpufreq, "cpu MHz" is the nominal frequency on nearly
		// every host (a VM's, a fixed clock's): read with the limits,
		// not every tick (/proc/cpuinfo took 37 µs a tick on 2 CPUs).
		if static || len(c.cpus) > 0 {
			c.cpuinfoMHz = 0
			if b, err := c.r.read(c.cpuinfo); err == nil {
				c.cpuinfoMHz = parseCPUInfoMHz(b)
			}
		}
		mhz = c.cpuinfoMHz
	}
	c.publish(func() { c.mhz = mhz })
	if len(c.cpus) == 0 && mhz == 0 {
		return noData(c.log, "cpufreq", fmt.Errorf("no cpufreq in %s and no cpu MHz in %s: %w", c.sysCPU, c.cpuinfo, os.ErrNotExist))
	}
	return nil
}

// parseCPUInfoMHz is the mean "cpu MHz" of /proc/cpuinfo, 0 when absent
// (arm64 has none).
func parseCPUInfoMHz(b []byte) float64 {
	var sum float64
	var n int
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if !bytes.HasPrefix(line, []byte("cpu MHz")) {
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		if v, ok := parseFloat(bytes.TrimSpace(line[i+1:])); ok {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func (c *cpufreqCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.CPU.FrequencyMHz = c.mhz
}
