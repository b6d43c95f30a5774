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

// parseLoadavg parses the three load averages of /proc/loadavg.
func parseLoadavg(b []byte) ([3]float64, error) {
	var l [3]float64
	rest := b
	for i := range l {
		var f []byte
		f, rest = nextField(rest)
		v, ok := parseFloat(f)
		if !ok {
			return l, fmt.Errorf("parsing /proc/loadavg: bad value %q", f)
		}
		l[i] = v
	}
	return l, nil
}

type loadavgCollector struct {
	metricSet
	log   *slog.Logger
	r     *reader
	path  openFile
	descs [3]*metricDesc
	load  [3]float64
}

func newLoadavgCollector(o collect.Options) (*loadavgCollector, error) {
	return &loadavgCollector{
		log:  logger(o),
		r:    newReader(128),
		path: openFile{path: mkpath(o.Paths.ProcFS, "loadavg")},
		descs: [3]*metricDesc{
			newDesc("", "load1", "1m load average."),
			newDesc("", "load5", "5m load average."),
			newDesc("", "load15", "15m load average."),
		},
	}, nil
}

func (c *loadavgCollector) Name() string { return "loadavg" }

func (c *loadavgCollector) Close() error { return c.path.Close() }

func (c *loadavgCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.path.read(c.r)
	if err != nil {
		return noData(c.log, "loadavg", fmt.Errorf("reading load average: %w", err))
	}
	l, err := parseLoadavg(b)
	if err != nil {
		return err
	}
	c.begin()
	for i, d := range c.descs {
		c.add(d, prometheus.GaugeValue, l[i], nil)
	}
	c.publish(func() { c.load = l })
	return nil
}

func (c *loadavgCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.CPU.LoadAverage = c.load
}
