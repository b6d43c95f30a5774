// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// SoftnetStat is one CPU's line of /proc/net/softnet_stat (hex columns).
type SoftnetStat struct {
	CPU                                       int
	Processed, Dropped, TimeSqueezed          uint64
	CPUCollision, ReceivedRps, FlowLimitCount uint64
	BacklogLen                                uint64
	HasBacklog                                bool
}

// parseSoftnet calls fn for each CPU line. Kernels since 5.10 add the
// backlog length (column 12) and the CPU number (13); older ones are
// numbered by line.
func parseSoftnet(b []byte, fn func(*SoftnetStat)) error {
	var cols [16]uint64
	for line := 0; len(b) > 0; line++ {
		var l []byte
		l, b = nextLine(b)
		n := 0
		for n < len(cols) {
			var f []byte
			f, l = nextField(l)
			if len(f) == 0 {
				break
			}
			v, ok := parseHex(f)
			if !ok {
				return fmt.Errorf("parsing softnet_stat line %d: bad value %q", line, f)
			}
			cols[n] = v
			n++
		}
		if n == 0 {
			continue
		}
		if n < 11 {
			return fmt.Errorf("parsing softnet_stat line %d: %d columns, want at least 11", line, n)
		}
		s := SoftnetStat{CPU: line, Processed: cols[0], Dropped: cols[1], TimeSqueezed: cols[2],
			CPUCollision: cols[8], ReceivedRps: cols[9], FlowLimitCount: cols[10]}
		if n >= 12 {
			s.BacklogLen, s.HasBacklog = cols[11], true
		}
		if n >= 13 {
			s.CPU = int(cols[12])
		}
		fn(&s)
	}
	return nil
}

type softnetCollector struct {
	metricSet
	log  *slog.Logger
	r    *reader
	file openFile

	processed, dropped, squeezed, collision, rps, flowLimit, backlog *metricDesc
	labels                                                           map[int][]string
}

func newSoftnetCollector(o collect.Options) (*softnetCollector, error) {
	return &softnetCollector{
		log:       logger(o),
		r:         newReader(4096),
		file:      openFile{path: procNetPath(o.Paths.ProcFS, "softnet_stat")},
		processed: newDesc("softnet", "processed_total", "Number of processed packets", "cpu"),
		dropped:   newDesc("softnet", "dropped_total", "Number of dropped packets", "cpu"),
		squeezed:  newDesc("softnet", "times_squeezed_total", "Number of times processing packets ran out of quota", "cpu"),
		collision: newDesc("softnet", "cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting", "cpu"),
		rps:       newDesc("softnet", "received_rps_total", "Number of times cpu woken up received_rps", "cpu"),
		flowLimit: newDesc("softnet", "flow_limit_count_total", "Number of times flow limit has been reached", "cpu"),
		backlog:   newDesc("softnet", "backlog_len", "Softnet backlog status", "cpu"),
		labels:    map[int][]string{},
	}, nil
}

func (c *softnetCollector) Name() string { return "softnet" }

func (c *softnetCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.file.read(c.r)
	if err != nil {
		return noData(c.log, "softnet", fmt.Errorf("reading softnet_stat: %w", err))
	}
	c.begin()
	err = parseSoftnet(b, func(s *SoftnetStat) {
		lv, ok := c.labels[s.CPU]
		if !ok {
			lv = []string{strconv.Itoa(s.CPU)}
			c.labels[s.CPU] = lv
		}
		cv := prometheus.CounterValue
		c.add(c.processed, cv, float64(s.Processed), lv)
		c.add(c.dropped, cv, float64(s.Dropped), lv)
		c.add(c.squeezed, cv, float64(s.TimeSqueezed), lv)
		c.add(c.collision, cv, float64(s.CPUCollision), lv)
		c.add(c.rps, cv, float64(s.ReceivedRps), lv)
		c.add(c.flowLimit, cv, float64(s.FlowLimitCount), lv)
		if s.HasBacklog {
			c.add(c.backlog, prometheus.GaugeValue, float64(s.BacklogLen), lv)
		}
	})
	if err != nil {
		return err
	}
	c.publish(nil)
	return nil
}

func (c *softnetCollector) Fill(*metrics.ResourceMetrics) {}

// Close closes /proc/net/softnet_stat.
func (c *softnetCollector) Close() error { return c.file.Close() }
