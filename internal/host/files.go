// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// fileValue is a metric whose value is the one integer in a file.
type fileValue struct {
	path cpath
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

// filesCollector exports files that each hold one integer: entropy,
// kernel_hung and the conntrack table size. A missing file is skipped; all
// missing is ErrNoData.
type filesCollector struct {
	metricSet
	name  string
	log   *slog.Logger
	r     *reader
	files []fileValue
	// extra runs after the files are read, for the few families that need
	// another source (conntrack's per-CPU statistics).
	extra func(*filesCollector) error
}

func (c *filesCollector) Name() string { return c.name }

func (c *filesCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	found := 0
	var firstErr error
	for _, f := range c.files {
		v, err := c.r.readUint(f.path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		found++
		c.add(f.desc, f.typ, float64(v), nil)
	}
	if c.extra != nil {
		if err := c.extra(c); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c.publish(nil)
	if firstErr != nil {
		return fmt.Errorf("reading %s: %w", c.name, firstErr)
	}
	if found == 0 {
		return noData(c.log, c.name, fmt.Errorf("reading %s: %w", c.files[0].path, fs.ErrNotExist))
	}
	return nil
}

func (c *filesCollector) Fill(*metrics.ResourceMetrics) {}

func newEntropyCollector(o collect.Options) (*filesCollector, error) {
	return &filesCollector{
		name: "entropy", log: logger(o), r: newReader(64),
		files: []fileValue{
			{mkpath(o.Paths.ProcFS, "sys/kernel/random/entropy_avail"), newDesc("", "entropy_available_bits", "Bits of available entropy."), prometheus.GaugeValue},
			{mkpath(o.Paths.ProcFS, "sys/kernel/random/poolsize"), newDesc("", "entropy_pool_size_bits", "Bits of entropy pool."), prometheus.GaugeValue},
		},
	}, nil
}

func newKernelHungCollector(o collect.Options) (*filesCollector, error) {
	return &filesCollector{
		name: "kernel_hung", log: logger(o), r: newReader(64),
		files: []fileValue{
			{mkpath(o.Paths.ProcFS, "sys/kernel/hung_task_detect_count"), newDesc("kernel", "hung_tasks_total", "Total number of tasks that have been detected as hung since the system booted."), prometheus.CounterValue},
		},
	}, nil
}

func newConntrackCollector(o collect.Options) (*filesCollector, error) {
	pfs, err := procfs.NewFS(o.Paths.ProcFS)
	if err != nil {
		return nil, fmt.Errorf("opening procfs: %w", err)
	}
	d := func(name, help string) *prometheus.Desc { return newDesc("nf_conntrack", name, help) }
	stat := [...]*prometheus.Desc{
		d("stat_found", "Number of searched entries which were successful."),
		d("stat_invalid", "Number of packets seen which can not be tracked."),
		d("stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
		d("stat_insert", "Number of entries inserted into the list."),
		d("stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
		d("stat_drop", "Number of packets dropped due to conntrack failure."),
		d("stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
		d("stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
	}
	return &filesCollector{
		name: "conntrack", log: logger(o), r: newReader(64),
		files: []fileValue{
			{mkpath(o.Paths.ProcFS, "sys/net/netfilter/nf_conntrack_count"), d("entries", "Number of currently allocated flow entries for connection tracking."), prometheus.GaugeValue},
			{mkpath(o.Paths.ProcFS, "sys/net/netfilter/nf_conntrack_max"), d("entries_limit", "Maximum size of connection tracking table."), prometheus.GaugeValue},
		},
		// The statistics are per CPU; node_exporter sums them.
		extra: func(c *filesCollector) error {
			entries, err := pfs.ConntrackStat()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			var sum [len(stat)]uint64
			for _, e := range entries {
				for i, v := range [...]uint64{e.Found, e.Invalid, e.Ignore, e.Insert, e.InsertFailed, e.Drop, e.EarlyDrop, e.SearchRestart} {
					sum[i] += v
				}
			}
			for i, v := range sum {
				c.add(stat[i], prometheus.GaugeValue, float64(v), nil)
			}
			return nil
		},
	}, nil
}
