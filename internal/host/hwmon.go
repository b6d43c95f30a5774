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
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// cpuSensorChips are hwmon drivers that measure the CPU package or cores;
// the snapshot's temperature is the hottest of their sensors.
var cpuSensorChips = map[string]bool{
	"coretemp": true, "k10temp": true, "k8temp": true, "zenpower": true,
	"cpu_thermal": true, "cpu-thermal": true, "soc_thermal": true,
}

type hwmonSensor struct {
	lv    []string // chip, sensor
	input cpath
	max   cpath
	crit  cpath
	label []string // chip, label, sensor; nil without a label file
}

type hwmonChip struct {
	lv      []string // chip, chip_name
	cpu     bool
	sensors []hwmonSensor
}

type hwmonCollector struct {
	metricSet
	log    *slog.Logger
	r      *reader
	dir    string
	chips  []hwmonChip
	rescan bool
	// check paces the scans on a host without a chip, or after a sensor
	// vanished: one a minute.
	check recheck
	// noChips is the error of every tick on such a host, made once.
	noChips error

	temp, tempMax, tempCrit, chipNames, sensorLabel *metricDesc

	cpuTemp *float64
}

func newHwmonCollector(o collect.Options) (*hwmonCollector, error) {
	dir := filepath.Join(o.Paths.SysFS, "class/hwmon")
	return &hwmonCollector{
		log:         logger(o),
		r:           newReader(64),
		dir:         dir,
		noChips:     fmt.Errorf("no chips in %s: %w", dir, fs.ErrNotExist),
		rescan:      true,
		temp:        newDesc("hwmon", "temp_celsius", "Hardware monitor for temperature (input)", "chip", "sensor"),
		tempMax:     newDesc("hwmon", "temp_max_celsius", "Hardware monitor for temperature (max)", "chip", "sensor"),
		tempCrit:    newDesc("hwmon", "temp_crit_celsius", "Hardware monitor for temperature (crit)", "chip", "sensor"),
		chipNames:   newDesc("hwmon", "chip_names", "Annotation metric for human-readable chip names", "chip", "chip_name"),
		sensorLabel: newDesc("hwmon", "sensor_label", "Label for given chip and sensor", "chip", "label", "sensor"),
	}, nil
}

func (c *hwmonCollector) Name() string { return "hwmon" }

// cleanName is node_exporter's cleanMetricName: runs of characters other
// than [0-9A-Za-z_] become "_", and "_" is trimmed from both ends.
func cleanName(s string) string {
	var b strings.Builder
	under := false
	for _, r := range s {
		ok := r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			if !under {
				b.WriteByte('_')
				under = true
			}
			continue
		}
		if r == '_' && under {
			continue
		}
		under = r == '_'
		b.WriteRune(r)
	}
	return strings.Trim(b.String(), "_")
}

// hwmonChipName follows node_exporter: the device's bus type and name
// ("platform_coretemp_0"), which is stable across reboots unlike hwmonN;
// else the chip's name file; else the directory name.
func hwmonChipName(dir string) string {
	if dev, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
		prefix, name := filepath.Split(dev)
		typ := filepath.Base(strings.TrimRight(prefix, "/"))
		n, t := cleanName(name), cleanName(typ)
		if n != "" && t != "" {
			return t + "_" + n
		}
		if n != "" {
			return n
		}
	}
	if n, err := readString(filepath.Join(dir, "name")); err == nil && cleanName(n) != "" {
		return cleanName(n)
	}
	return cleanName(filepath.Base(dir))
}

func (c *hwmonCollector) scan() error {
	c.chips = c.chips[:0]
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		dir := filepath.Join(c.dir, e.Name())
		chip := hwmonChipName(dir)
		human, _ := readString(filepath.Join(dir, "name"))
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		hc := hwmonChip{lv: []string{chip, human}, cpu: cpuSensorChips[human]}
		for _, f := range files {
			n := f.Name()
			if !strings.HasPrefix(n, "temp") || !strings.HasSuffix(n, "_input") {
				continue
			}
			sensor := strings.TrimSuffix(n, "_input")
			s := hwmonSensor{lv: []string{chip, sensor}, input: mkpath(dir, n)}
			if _, err := os.Stat(filepath.Join(dir, sensor+"_max")); err == nil {
				s.max = mkpath(dir, sensor+"_max")
			}
			if _, err := os.Stat(filepath.Join(dir, sensor+"_crit")); err == nil {
				s.crit = mkpath(dir, sensor+"_crit")
			}
			if l, err := readString(filepath.Join(dir, sensor+"_label")); err == nil {
				s.label = []string{chip, l, sensor}
			}
			hc.sensors = append(hc.sensors, s)
		}
		slices.SortFunc(hc.sensors, func(a, b hwmonSensor) int { return strings.Compare(a.lv[1], b.lv[1]) })
		c.chips = append(c.chips, hc)
	}
	return nil
}

func (c *hwmonCollector) Update(_ context.Context, now time.Time) error {
	due := c.check.due(now)
	if len(c.chips) == 0 && !due {
		// Nothing to read until the next scan; the empty set stays
		// published.
		return collect.ErrNoData
	}
	if (c.rescan || len(c.chips) == 0) && due {
		c.check.wait(now)
		if err := c.scan(); err != nil {
			// No hwmon class (VMs): look again in a minute, for a
			// driver loaded late.
			c.chips = c.chips[:0]
		} else {
			c.rescan = false
		}
	}
	c.begin()
	var hottest *float64
	temps := 0
	for _, chip := range c.chips {
		c.add(c.chipNames, prometheus.GaugeValue, 1, chip.lv)
		for _, s := range chip.sensors {
			v, err := c.readTemp(s.input)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					c.rescan = true
				}
				continue // sensors may fail to read (EIO, ENODATA)
			}
			temps++
			c.add(c.temp, prometheus.GaugeValue, v, s.lv)
			if chip.cpu && (hottest == nil || v > *hottest) {
				t := v
				hottest = &t
			}
			if s.max != nil {
				if v, err := c.readTemp(s.max); err == nil {
					c.add(c.tempMax, prometheus.GaugeValue, v, s.lv)
				}
			}
			if s.crit != nil {
				if v, err := c.readTemp(s.crit); err == nil {
					c.add(c.tempCrit, prometheus.GaugeValue, v, s.lv)
				}
			}
			if s.label != nil {
				c.add(c.sensorLabel, prometheus.GaugeValue, 1, s.label)
			}
		}
	}
	c.publish(func() { c.cpuTemp = hottest })
	if len(c.chips) == 0 {
		return noData(c.log, "hwmon", c.noChips)
	}
	return nil
}

// readTemp reads a millidegree Celsius file.
func (c *hwmonCollector) readTemp(p cpath) (float64, error) {
	b, err := c.r.read(p)
	if err != nil {
		return 0, err
	}
	v, ok := parseInt(trimNL(b))
	if !ok {
		return 0, fmt.Errorf("parsing %s: bad value %q", p, b)
	}
	return float64(v) / 1000, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func (c *hwmonCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.CPU.TemperatureCelsius = hotter(m.CPU.TemperatureCelsius, c.cpuTemp)
}

// hotter returns the higher of two optional temperatures, as a new pointer
// so the snapshot never aliases collector state.
func hotter(a, b *float64) *float64 {
	switch {
	case b == nil && a == nil:
		return nil
	case b == nil:
		return a
	case a == nil || *b > *a:
		v := *b
		return &v
	}
	return a
}
