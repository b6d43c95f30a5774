// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// parseFileNr parses /proc/sys/fs/file-nr: allocated, unused (always 0
// since 2.6), maximum.
func parseFileNr(b []byte) (allocated, maximum uint64, err error) {
	f1, rest := nextField(b)
	_, rest = nextField(rest)
	f3, _ := nextField(rest)
	a, ok1 := parseUint(f1)
	m, ok2 := parseUint(f3)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("parsing file-nr: bad line %q", b)
	}
	return a, m, nil
}

type filefdCollector struct {
	metricSet
	log            *slog.Logger
	r              *reader
	path           openFile
	alloc, maximum *metricDesc
	allocated      uint64
}

func newFilefdCollector(o collect.Options) (*filefdCollector, error) {
	return &filefdCollector{
		log:     logger(o),
		r:       newReader(128),
		path:    openFile{path: mkpath(o.Paths.ProcFS, "sys/fs/file-nr")},
		alloc:   newDesc("filefd", "allocated", "File descriptor statistics: allocated."),
		maximum: newDesc("filefd", "maximum", "File descriptor statistics: maximum."),
	}, nil
}

func (c *filefdCollector) Name() string { return "filefd" }

func (c *filefdCollector) Close() error { return c.path.Close() }

func (c *filefdCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.path.read(c.r)
	if err != nil {
		return noData(c.log, "filefd", fmt.Errorf("reading file-nr: %w", err))
	}
	a, m, err := parseFileNr(b)
	if err != nil {
		return err
	}
	c.begin()
	c.add(c.alloc, prometheus.GaugeValue, float64(a), nil)
	c.add(c.maximum, prometheus.GaugeValue, float64(m), nil)
	c.publish(func() { c.allocated = a })
	return nil
}

func (c *filefdCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.System.OpenFiles = uint32(min(c.allocated, 1<<32-1))
}
