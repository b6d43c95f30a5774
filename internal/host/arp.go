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

// parseARP calls fn with the device of each entry of /proc/net/arp.
func parseARP(b []byte, fn func(device []byte)) error {
	_, b = nextLine(b) // header
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		var f, dev []byte
		rest := line
		n := 0
		for {
			f, rest = nextField(rest)
			if len(f) == 0 {
				break
			}
			dev = f
			n++
		}
		if n == 0 {
			continue
		}
		if n != 6 {
			return fmt.Errorf("parsing arp: bad line %q", line)
		}
		fn(dev)
	}
	return nil
}

type arpCollector struct {
	metricSet
	log     *slog.Logger
	r       *reader
	file    openFile
	entries *metricDesc
	labels  *labelCache
	counts  map[string]int
	order   []string
}

func newARPCollector(o collect.Options) (*arpCollector, error) {
	return &arpCollector{
		log:     logger(o),
		r:       newReader(4096),
		file:    openFile{path: procNetPath(o.Paths.ProcFS, "arp")},
		entries: newDesc("arp", "entries", "ARP entries by device", "device"),
		labels:  newLabelCache(),
		counts:  map[string]int{},
	}, nil
}

func (c *arpCollector) Name() string { return "arp" }

func (c *arpCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.file.read(c.r)
	if err != nil {
		return noData(c.log, "arp", fmt.Errorf("reading arp: %w", err))
	}
	clear(c.counts)
	c.order = c.order[:0]
	err = parseARP(b, func(dev []byte) {
		lv := c.labels.get(dev)
		if _, ok := c.counts[lv[0]]; !ok {
			c.order = append(c.order, lv[0])
		}
		c.counts[lv[0]]++
	})
	if err != nil {
		return err
	}
	c.begin()
	for _, d := range c.order {
		c.add(c.entries, prometheus.GaugeValue, float64(c.counts[d]), c.labels.m[d].lv)
	}
	c.labels.sweep()
	c.publish(nil)
	return nil
}

func (c *arpCollector) Fill(*metrics.ResourceMetrics) {}

// Close closes /proc/net/arp.
func (c *arpCollector) Close() error { return c.file.Close() }
