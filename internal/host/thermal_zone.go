// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// isCPUZone says whether a thermal zone type measures the CPU package or
// SoC: x86_pkg_temp on Intel, cpu-thermal/cpu_thermal/soc_thermal on ARM.
func isCPUZone(typ string) bool {
	return typ == "x86_pkg_temp" || strings.HasPrefix(typ, "cpu") || strings.HasPrefix(typ, "soc")
}

type thermalZone struct {
	lv   []string // type, zone
	cpu  bool
	temp cpath
}

type thermalZoneCollector struct {
	metricSet
	log    *slog.Logger
	r      *reader
	dir    string
	zones  []thermalZone
	rescan bool
	temp   *metricDesc
	// check paces the scans of a host with no thermal zone (VMs); noZones
	// is the error of each of its ticks, made once.
	check   recheck
	noZones error

	cpuTemp *float64
}

func newThermalZoneCollector(o collect.Options) (*thermalZoneCollector, error) {
	dir := filepath.Join(o.Paths.SysFS, "class/thermal")
	return &thermalZoneCollector{
		log:     logger(o),
		r:       newReader(64),
		dir:     dir,
		rescan:  true,
		temp:    newDesc("thermal_zone", "temp", "Zone temperature in Celsius", "type", "zone"),
		noZones: fmt.Errorf("no zones in %s: %w", dir, fs.ErrNotExist),
	}, nil
}

func (c *thermalZoneCollector) Name() string { return "thermal_zone" }

func (c *thermalZoneCollector) scan() error {
	c.zones = c.zones[:0]
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		zone, ok := strings.CutPrefix(e.Name(), "thermal_zone")
		if !ok {
			continue
		}
		dir := filepath.Join(c.dir, e.Name())
		typ, err := readString(filepath.Join(dir, "type"))
		if err != nil {
			continue
		}
		c.zones = append(c.zones, thermalZone{lv: []string{typ, zone}, cpu: isCPUZone(typ), temp: mkpath(dir, "temp")})
	}
	return nil
}

func (c *thermalZoneCollector) Update(_ context.Context, now time.Time) error {
	if len(c.zones) == 0 && !c.check.due(now) {
		return collect.ErrNoData
	}
	if c.rescan || len(c.zones) == 0 {
		if err := c.scan(); err != nil {
			c.check.wait(now)
			c.begin()
			c.publish(func() { c.cpuTemp = nil })
			return noData(c.log, "thermal_zone", fmt.Errorf("reading thermal zones: %w", err))
		}
		c.rescan = false
		if len(c.zones) == 0 {
			c.check.wait(now)
		} else {
			c.check.reset()
		}
	}
	c.begin()
	var hottest *float64
	for _, z := range c.zones {
		b, err := c.r.read(z.temp)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				c.rescan = true
			}
			continue // disabled zones fail with EAGAIN/ENODATA
		}
		v, ok := parseInt(trimNL(b))
		if !ok {
			continue
		}
		t := float64(v) / 1000
		c.add(c.temp, prometheus.GaugeValue, t, z.lv)
		if z.cpu && (hottest == nil || t > *hottest) {
			hottest = &t
		}
	}
	c.publish(func() { c.cpuTemp = hottest })
	if len(c.zones) == 0 {
		return noData(c.log, "thermal_zone", c.noZones)
	}
	return nil
}

func (c *thermalZoneCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.CPU.TemperatureCelsius = hotter(m.CPU.TemperatureCelsius, c.cpuTemp)
}
