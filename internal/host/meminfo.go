// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Meminfo holds the /proc/meminfo fields the snapshot needs, in bytes.
type Meminfo struct {
	MemTotal, MemFree, MemAvailable, Buffers, Cached, SReclaimable uint64
	SwapTotal, SwapFree                                            uint64
	HasMemAvailable                                                bool
}

// meminfoField is one line of /proc/meminfo as node_exporter exports it.
type meminfoField struct {
	desc  *metricDesc
	bytes bool // the line has a kB unit
}

// meminfoMetricName is node_exporter's name for a /proc/meminfo key:
// "Active(anon)" becomes "Active_anon", and "_bytes" is appended when the
// value has a unit.
func meminfoMetricName(key []byte, hasUnit bool) string {
	k := bytes.ReplaceAll(key, []byte("("), []byte("_"))
	k = bytes.ReplaceAll(k, []byte(")"), nil)
	if hasUnit {
		return string(k) + "_bytes"
	}
	return string(k)
}

// parseMeminfo calls fn for each "Key: value [kB]" line of /proc/meminfo
// with the value in bytes when it has a unit.
func parseMeminfo(b []byte, fn func(key []byte, value uint64, hasUnit bool)) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return fmt.Errorf("parsing /proc/meminfo: bad line %q", line)
		}
		key := line[:i]
		f, rest := nextField(line[i+1:])
		v, ok := parseUint(f)
		if !ok {
			return fmt.Errorf("parsing /proc/meminfo %s: bad value %q", key, f)
		}
		unit, _ := nextField(rest)
		hasUnit := len(unit) > 0
		if hasUnit {
			v *= 1024 // the kernel's "kB" is KiB
		}
		fn(key, v, hasUnit)
	}
	return nil
}

func (mi *Meminfo) set(key []byte, v uint64) {
	switch string(key) {
	case "MemTotal":
		mi.MemTotal = v
	case "MemFree":
		mi.MemFree = v
	case "MemAvailable":
		mi.MemAvailable, mi.HasMemAvailable = v, true
	case "Buffers":
		mi.Buffers = v
	case "Cached":
		mi.Cached = v
	case "SReclaimable":
		mi.SReclaimable = v
	case "SwapTotal":
		mi.SwapTotal = v
	case "SwapFree":
		mi.SwapFree = v
	}
}

type meminfoCollector struct {
	metricSet
	log    *slog.Logger
	r      *reader
	path   openFile
	fields map[string]meminfoField
	mi     Meminfo
}

func newMeminfoCollector(o collect.Options) (*meminfoCollector, error) {
	return &meminfoCollector{
		log:    logger(o),
		r:      newReader(8192),
		path:   openFile{path: mkpath(o.Paths.ProcFS, "meminfo")},
		fields: map[string]meminfoField{},
	}, nil
}

func (c *meminfoCollector) Name() string { return "meminfo" }

func (c *meminfoCollector) Close() error { return c.path.Close() }

func (c *meminfoCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.path.read(c.r)
	if err != nil {
		return noData(c.log, "meminfo", fmt.Errorf("reading meminfo: %w", err))
	}
	var mi Meminfo
	c.begin()
	err = parseMeminfo(b, func(key []byte, v uint64, hasUnit bool) {
		mi.set(key, v)
		f, ok := c.fields[string(key)]
		if !ok || f.bytes != hasUnit {
			name := meminfoMetricName(key, hasUnit)
			f = meminfoField{
				desc:  newDesc("memory", name, "Memory information field "+name+"."),
				bytes: hasUnit,
			}
			c.fields[string(key)] = f
		}
		c.add(f.desc, prometheus.GaugeValue, float64(v), nil)
	})
	if err != nil {
		return err
	}
	c.publish(func() { c.mi = mi })
	return nil
}

// Fill reports memory as free(1) of procps-ng 4 does: used is total minus
// available, and cached includes reclaimable slab (Cached + SReclaimable).
func (c *meminfoCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	mi := c.mi
	c.mu.RUnlock()
	fillMemory(&m.Memory, mi)
}

func fillMemory(mm *metrics.MemoryMetrics, mi Meminfo) {
	avail := mi.MemAvailable
	if !mi.HasMemAvailable {
		// Kernels before 3.14 lack MemAvailable; free(1) then estimates
		// it as free + buffers + cache.
		avail = mi.MemFree + mi.Buffers + mi.Cached + mi.SReclaimable
	}
	avail = min(avail, mi.MemTotal)
	mm.TotalBytes = mi.MemTotal
	mm.AvailableBytes = avail
	mm.UsedBytes = mi.MemTotal - avail
	mm.FreeBytes = mi.MemFree
	mm.CachedBytes = mi.Cached + mi.SReclaimable
	mm.BuffersBytes = mi.Buffers
	mm.UsagePercent = 0
	if mi.MemTotal > 0 {
		mm.UsagePercent = float64(mm.UsedBytes) / float64(mi.MemTotal) * 100
	}
	mm.SwapTotalBytes = mi.SwapTotal
	mm.SwapFreeBytes = min(mi.SwapFree, mi.SwapTotal)
	mm.SwapUsedBytes = mi.SwapTotal - mm.SwapFreeBytes
}
