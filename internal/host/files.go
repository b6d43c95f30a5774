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

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// fileValue is a metric whose value is the one integer in a file.
type fileValue struct {
	file openFile
	desc *metricDesc
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

func (c *filesCollector) Close() error {
	var errs []error
	for i := range c.files {
		errs = append(errs, c.files[i].file.Close())
	}
	return errors.Join(errs...)
}

func (c *filesCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	found := 0
	var firstErr error
	for i := range c.files {
		f := &c.files[i]
		v, err := f.file.readUint(c.r)
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
		return noData(c.log, c.name, fmt.Errorf("reading %s: %w", c.files[0].file.path, fs.ErrNotExist))
	}
	return nil
}

func (c *filesCollector) Fill(*metrics.ResourceMetrics) {}

func newEntropyCollector(o collect.Options) (*filesCollector, error) {
	return &filesCollector{
		name: "entropy", log: logger(o), r: newReader(64),
		files: []fileValue{
			{openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel/random/entropy_avail")}, newDesc("", "entropy_available_bits", "Bits of available entropy."), prometheus.GaugeValue},
			{openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel/random/poolsize")}, newDesc("", "entropy_pool_size_bits", "Bits of entropy pool."), prometheus.GaugeValue},
		},
	}, nil
}

func newKernelHungCollector(o collect.Options) (*filesCollector, error) {
	return &filesCollector{
		name: "kernel_hung", log: logger(o), r: newReader(64),
		files: []fileValue{
			{openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel/hung_task_detect_count")}, newDesc("kernel", "hung_tasks_total", "Total number of tasks that have been detected as hung since the system booted."), prometheus.CounterValue},
		},
	}, nil
}

// conntrackStatNames are the columns of /proc/net/stat/nf_conntrack that
// node_exporter exports, in the order of conntrackStat.desc.
var conntrackStatNames = [...]string{"found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop", "search_restart"}

// conntrackStat reads the per-CPU statistics in /proc/net/stat/nf_conntrack,
// kept open (see openFile): the entry goes away when nf_conntrack is
// unloaded and comes back when it is loaded.
type conntrackStat struct {
	f    openFile
	r    *reader
	desc [len(conntrackStatNames)]*metricDesc
	// cols maps each column of the header to its index in
	// conntrackStatNames, -1 for the columns not exported.
	cols []int8
}

// update adds the statistics, summed over the CPUs as node_exporter sums
// them. A missing file (no nf_conntrack) adds nothing.
func (s *conntrackStat) update(c *filesCollector) error {
	b, err := s.f.read(s.r)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	sum, err := s.parse(b)
	if err != nil {
		return err
	}
	for i, v := range sum {
		c.add(s.desc[i], prometheus.GaugeValue, float64(v), nil)
	}
	return nil
}

// parse sums the file: a header of column names, then one line of hex
// numbers per CPU. Columns are looked up by name because kernels renamed
// some (searched became clashres, delete_list chainlength) and appended
// others; a statistic without a column (search_restart before 2.6.35)
// stays 0, as in node_exporter.
func (s *conntrackStat) parse(b []byte) (sum [len(conntrackStatNames)]uint64, err error) {
	hdr, b := nextLine(b)
	s.cols = s.cols[:0]
	for {
		var name []byte
		if name, hdr = nextField(hdr); len(name) == 0 {
			break
		}
		s.cols = append(s.cols, conntrackColumn(name))
	}
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		n := 0
		for ; ; n++ {
			var f []byte
			if f, line = nextField(line); len(f) == 0 {
				break
			}
			if n >= len(s.cols) {
				return sum, fmt.Errorf("parsing nf_conntrack stat: more values than the %d columns", len(s.cols))
			}
			if k := s.cols[n]; k >= 0 {
				v, ok := parseHex(f)
				if !ok {
					return sum, fmt.Errorf("parsing nf_conntrack stat %s: bad value %q", conntrackStatNames[k], f)
				}
				sum[k] += v
			}
		}
		if n != 0 && n != len(s.cols) {
			return sum, fmt.Errorf("parsing nf_conntrack stat: %d values for %d columns", n, len(s.cols))
		}
	}
	return sum, nil
}

// conntrackColumn is the index of name in conntrackStatNames, or -1.
func conntrackColumn(name []byte) int8 {
	for i, n := range conntrackStatNames {
		if string(name) == n {
			return int8(i)
		}
	}
	return -1
}

// conntrackCollector is the conntrack filesCollector with the statistics
// file it keeps open, for Close.
type conntrackCollector struct {
	*filesCollector
	stat *conntrackStat
}

func (c *conntrackCollector) Close() error {
	return errors.Join(c.stat.f.Close(), c.filesCollector.Close())
}

func newConntrackCollector(o collect.Options) (*conntrackCollector, error) {
	d := func(name, help string) *metricDesc { return newDesc("nf_conntrack", name, help) }
	st := &conntrackStat{
		f: openFile{path: procNetPath(o.Paths.ProcFS, "stat/nf_conntrack")},
		r: newReader(1024),
		desc: [...]*metricDesc{
			d("stat_found", "Number of searched entries which were successful."),
			d("stat_invalid", "Number of packets seen which can not be tracked."),
			d("stat_ignore", "Number of packets seen which are already connected to a conntrack entry."),
			d("stat_insert", "Number of entries inserted into the list."),
			d("stat_insert_failed", "Number of entries for which list insertion was attempted but failed."),
			d("stat_drop", "Number of packets dropped due to conntrack failure."),
			d("stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."),
			d("stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."),
		},
	}
	return &conntrackCollector{stat: st, filesCollector: &filesCollector{
		name: "conntrack", log: logger(o), r: newReader(64),
		files: []fileValue{
			{openFile{path: mkpath(o.Paths.ProcFS, "sys/net/netfilter/nf_conntrack_count")}, d("entries", "Number of currently allocated flow entries for connection tracking."), prometheus.GaugeValue},
			{openFile{path: mkpath(o.Paths.ProcFS, "sys/net/netfilter/nf_conntrack_max")}, d("entries_limit", "Maximum size of connection tracking table."), prometheus.GaugeValue},
		},
		extra: st.update,
	}}, nil
}
