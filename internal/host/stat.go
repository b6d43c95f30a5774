// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// ProcStat is the non-cpu part of /proc/stat.
type ProcStat struct {
	BootTime        uint64 // btime, seconds since the epoch
	ContextSwitches uint64 // ctxt
	Forks           uint64 // processes
	Interrupts      uint64 // first field of intr
	ProcsRunning    uint64
	ProcsBlocked    uint64
}

func parseProcStat(b []byte) (ProcStat, error) {
	var s ProcStat
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		key, rest := nextField(line)
		var dst *uint64
		switch string(key) {
		case "btime":
			dst = &s.BootTime
		case "ctxt":
			dst = &s.ContextSwitches
		case "processes":
			dst = &s.Forks
		case "intr":
			dst = &s.Interrupts
		case "procs_running":
			dst = &s.ProcsRunning
		case "procs_blocked":
			dst = &s.ProcsBlocked
		default:
			continue
		}
		f, _ := nextField(rest)
		v, ok := parseUint(f)
		if !ok {
			return s, fmt.Errorf("parsing /proc/stat %s: bad value %q", key, f)
		}
		*dst = v
	}
	if s.BootTime == 0 {
		return s, fmt.Errorf("parsing /proc/stat: no btime")
	}
	return s, nil
}

// parseUptime parses the first field of /proc/uptime, seconds since boot.
func parseUptime(b []byte) (float64, error) {
	f, _ := nextField(bytes.TrimSpace(b))
	v, ok := parseFloat(f)
	if !ok {
		return 0, fmt.Errorf("parsing /proc/uptime: bad value %q", f)
	}
	return v, nil
}

type statCollector struct {
	metricSet
	log          *slog.Logger
	r            *reader
	stat, uptime openFile

	bootTime, ctxt, forks, intr, running, blocked *metricDesc

	st      ProcStat
	uptimeS float64
	haveUp  bool
}

func newStatCollector(o collect.Options) (*statCollector, error) {
	return &statCollector{
		log:      logger(o),
		r:        newReader(8192),
		stat:     openFile{path: mkpath(o.Paths.ProcFS, "stat")},
		uptime:   openFile{path: mkpath(o.Paths.ProcFS, "uptime")},
		bootTime: newDesc("", "boot_time_seconds", "Node boot time, in unixtime."),
		ctxt:     newDesc("", "context_switches_total", "Total number of context switches."),
		forks:    newDesc("", "forks_total", "Total number of forks."),
		intr:     newDesc("", "intr_total", "Total number of interrupts serviced."),
		running:  newDesc("", "procs_running", "Number of processes in runnable state."),
		blocked:  newDesc("", "procs_blocked", "Number of processes blocked waiting for I/O to complete."),
	}, nil
}

func (c *statCollector) Name() string { return "stat" }

func (c *statCollector) Close() error { return errors.Join(c.stat.Close(), c.uptime.Close()) }

func (c *statCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.stat.read(c.r)
	if err != nil {
		return noData(c.log, "stat", fmt.Errorf("reading stat: %w", err))
	}
	st, err := parseProcStat(b)
	if err != nil {
		return err
	}
	up, haveUp := 0.0, false
	if b, err := c.uptime.read(c.r); err == nil {
		if v, err := parseUptime(b); err == nil {
			up, haveUp = v, true
		}
	}
	c.begin()
	c.add(c.bootTime, prometheus.GaugeValue, float64(st.BootTime), nil)
	c.add(c.ctxt, prometheus.CounterValue, float64(st.ContextSwitches), nil)
	c.add(c.forks, prometheus.CounterValue, float64(st.Forks), nil)
	c.add(c.intr, prometheus.CounterValue, float64(st.Interrupts), nil)
	c.add(c.running, prometheus.GaugeValue, float64(st.ProcsRunning), nil)
	c.add(c.blocked, prometheus.GaugeValue, float64(st.ProcsBlocked), nil)
	c.publish(func() { c.st, c.uptimeS, c.haveUp = st, up, haveUp })
	return nil
}

// Fill reports uptime from /proc/uptime (what uptime(1) shows), and boot
// time from btime; without /proc/uptime, uptime is derived from btime.
func (c *statCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st.BootTime == 0 {
		return
	}
	m.System.BootTime = time.Unix(int64(c.st.BootTime), 0).UTC()
	m.System.ContextSwitches = c.st.ContextSwitches
	if c.haveUp {
		m.System.UptimeSeconds = uint64(c.uptimeS)
	} else if !m.Timestamp.IsZero() {
		m.System.UptimeSeconds = uint64(max(0, m.Timestamp.Unix()-int64(c.st.BootTime)))
	}
}
