// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

type clocksource struct {
	device             string
	available, current openFile
	availRaw, curRaw   []byte
	availLV            [][]string // clocksource, device
	curLV              []string
}

// timeCollector reports the tick's wall clock, the local time zone and the
// kernel's clock sources. node_time_seconds is the one value that differs
// between two runs on the same fixture tree.
type timeCollector struct {
	metricSet
	log     *slog.Logger
	r       *reader
	dir     string
	scanned bool
	sources []clocksource

	now, zone, avail, current *metricDesc
	zoneLV                    []string
}

func newTimeCollector(o collect.Options) (*timeCollector, error) {
	return &timeCollector{
		log:     logger(o),
		r:       newReader(256),
		dir:     filepath.Join(o.Paths.SysFS, "devices/system/clocksource"),
		now:     newDesc("time", "seconds", "System time in seconds since epoch (1970)."),
		zone:    newDesc("time", "zone_offset_seconds", "System time zone offset in seconds.", "time_zone"),
		avail:   newDesc("time", "clocksource_available_info", "Available clocksources read from '/sys/devices/system/clocksource'.", "clocksource", "device"),
		current: newDesc("time", "clocksource_current_info", "Current clocksource read from '/sys/devices/system/clocksource'.", "clocksource", "device"),
	}, nil
}

func (c *timeCollector) Name() string { return "time" }

func (c *timeCollector) Close() error {
	var errs []error
	for i := range c.sources {
		errs = append(errs, c.sources[i].available.Close(), c.sources[i].current.Close())
	}
	return errors.Join(errs...)
}

func (c *timeCollector) scan() {
	c.scanned = true
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		dev, ok := strings.CutPrefix(e.Name(), "clocksource")
		if !ok {
			continue
		}
		d := filepath.Join(c.dir, e.Name())
		c.sources = append(c.sources, clocksource{
			device:    dev,
			available: openFile{path: mkpath(d, "available_clocksource")},
			current:   openFile{path: mkpath(d, "current_clocksource")},
		})
	}
}

func (c *timeCollector) Update(_ context.Context, now time.Time) error {
	if !c.scanned {
		c.scan()
	}
	c.begin()
	c.add(c.now, prometheus.GaugeValue, float64(now.UnixNano())/1e9, nil)
	name, off := now.Zone()
	if c.zoneLV == nil || c.zoneLV[0] != name {
		c.zoneLV = []string{name}
	}
	c.add(c.zone, prometheus.GaugeValue, float64(off), c.zoneLV)
	for i := range c.sources {
		s := &c.sources[i]
		if b, err := s.available.read(c.r); err == nil {
			b = bytes.TrimSpace(b)
			if s.availLV == nil || !bytes.Equal(b, s.availRaw) {
				s.availRaw = append(s.availRaw[:0], b...)
				s.availLV = s.availLV[:0]
				for _, cs := range strings.Fields(string(b)) {
					s.availLV = append(s.availLV, []string{cs, s.device})
				}
			}
			for _, lv := range s.availLV {
				c.add(c.avail, prometheus.GaugeValue, 1, lv)
			}
		}
		if b, err := s.current.read(c.r); err == nil {
			b = bytes.TrimSpace(b)
			if s.curLV == nil || !bytes.Equal(b, s.curRaw) {
				s.curRaw = append(s.curRaw[:0], b...)
				s.curLV = []string{string(b), s.device}
			}
			c.add(c.current, prometheus.GaugeValue, 1, s.curLV)
		}
	}
	c.publish(nil)
	return nil
}

func (c *timeCollector) Fill(*metrics.ResourceMetrics) {}
