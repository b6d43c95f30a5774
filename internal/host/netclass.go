// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

type netclassProp struct {
	name string
	typ  prometheus.ValueType
	get  func(*sysfs.NetClassIface) *int64
}

// netclassProps are node_exporter's numeric netclass properties.
var netclassProps = []netclassProp{
	{"address_assign_type", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.AddrAssignType }},
	{"carrier", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.Carrier }},
	{"carrier_changes_total", prometheus.CounterValue, func(i *sysfs.NetClassIface) *int64 { return i.CarrierChanges }},
	{"carrier_up_changes_total", prometheus.CounterValue, func(i *sysfs.NetClassIface) *int64 { return i.CarrierUpCount }},
	{"carrier_down_changes_total", prometheus.CounterValue, func(i *sysfs.NetClassIface) *int64 { return i.CarrierDownCount }},
	{"device_id", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.DevID }},
	{"dormant", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.Dormant }},
	{"flags", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.Flags }},
	{"iface_id", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.IfIndex }},
	{"iface_link", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.IfLink }},
	{"iface_link_mode", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.LinkMode }},
	{"mtu_bytes", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.MTU }},
	{"name_assign_type", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.NameAssignType }},
	{"net_dev_group", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.NetDevGroup }},
	{"transmit_queue_length", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.TxQueueLen }},
	{"protocol_type", prometheus.GaugeValue, func(i *sysfs.NetClassIface) *int64 { return i.Type }},
}

type netclassCollector struct {
	metricSet
	ex      *regexp.Regexp
	log     *slog.Logger
	fs      sysfs.FS
	dir     string // <sysfs>/class/net
	r       *reader
	refresh time.Duration
	sh      *shared
	last    time.Time // of the last full read
	gen     uint64
	cache   sysfs.NetClass

	props      []*metricDesc
	up, info   *metricDesc
	speedBytes *metricDesc
}

func newNetclassCollector(o collect.Options, ho Options, sh *shared) (*netclassCollector, error) {
	fs, err := sysfs.NewFS(o.Paths.SysFS)
	if err != nil {
		return nil, fmt.Errorf("opening sysfs: %w", err)
	}
	ex, err := compileExclude(ho.NetclassDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("parsing netclass device exclude: %w", err)
	}
	c := &netclassCollector{
		ex:         ex,
		log:        logger(o),
		fs:         fs,
		dir:        filepath.Join(o.Paths.SysFS, "class/net"),
		r:          newReader(64),
		refresh:    ho.NetclassRefresh,
		sh:         sh,
		up:         newDesc("network", "up", "Value is 1 if operstate is 'up', 0 otherwise.", "device"),
		info:       newDesc("network", "info", "Non-numeric data from /sys/class/net/<iface>, value is always 1.", "device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"),
		speedBytes: newDesc("network", "speed_bytes", "Network device property: speed_bytes", "device"),
	}
	for _, p := range netclassProps {
		c.props = append(c.props, newDesc("network", p.name, "Network device property: "+p.name, "device"))
	}
	return c, nil
}

func (c *netclassCollector) Name() string { return "netclass" }

// Update re-reads every interface's properties each NetclassRefresh. When
// netdev sees interfaces come or go in between, only the new ones are read
// (containers starting and stopping churn veths all the time). Interfaces
// left out of /metrics are read for their link speed only. In between,
// Collect serves the last reading.
func (c *netclassCollector) Update(_ context.Context, now time.Time) error {
	c.sh.mu.Lock()
	gen := c.sh.ifaceGen
	c.sh.mu.Unlock()
	full := c.cache == nil || now.Sub(c.last) >= c.refresh || !now.After(c.last)
	if !full && gen == c.gen {
		return nil
	}
	c.gen = gen
	if full {
		nc, err := c.readAll()
		if err != nil {
			c.cache = nil
			c.clear()
			return noData(c.log, "netclass", fmt.Errorf("reading net class: %w", err))
		}
		c.cache, c.last = nc, now
	} else {
		devs, err := c.fs.NetClassDevices()
		if err != nil {
			return fmt.Errorf("reading net class: %w", err)
		}
		present := make(map[string]bool, len(devs))
		for _, d := range devs {
			present[d] = true
			if _, ok := c.cache[d]; ok {
				continue
			}
			i, err := c.readIface(d)
			if err != nil {
				continue // gone again
			}
			c.cache[d] = i
		}
		for n := range c.cache {
			if !present[n] {
				delete(c.cache, n)
			}
		}
	}
	nc := c.cache
	names := make([]string, 0, len(nc))
	for n := range nc {
		names = append(names, n)
	}
	slices.Sort(names)
	speeds := make(map[string]uint64, len(nc))
	c.begin()
	for _, n := range names {
		i := nc[n]
		// speed is in Mb/s; -1 or absent on virtual links. The snapshot
		// gets it even for interfaces left out of /metrics.
		speed, hasSpeed := uint64(0), i.Speed != nil && *i.Speed >= 0
		if hasSpeed {
			speed = uint64(*i.Speed) * 1000 * 1000 / 8
			speeds[n] = speed
		}
		if c.ex != nil && c.ex.MatchString(n) {
			continue
		}
		lv := []string{n}
		up := 0.0
		if i.OperState == "up" {
			up = 1
		}
		c.add(c.up, prometheus.GaugeValue, up, lv)
		admin := "down"
		if i.Flags != nil && *i.Flags&1 == 1 {
			admin = "up"
		}
		c.add(c.info, prometheus.GaugeValue, 1, []string{n, i.Address, i.Broadcast, i.Duplex, i.OperState, admin, i.IfAlias})
		for j, p := range netclassProps {
			if v := p.get(&i); v != nil {
				c.add(c.props[j], p.typ, float64(*v), lv)
			}
		}
		if hasSpeed {
			c.add(c.speedBytes, prometheus.GaugeValue, float64(speed), lv)
		}
	}
	c.publish(nil)
	c.sh.mu.Lock()
	c.sh.speeds = speeds
	c.sh.mu.Unlock()
	return nil
}

// readAll reads every interface as sysfs.FS.NetClass does, except that
// excluded ones are read for their speed only (see readIface).
func (c *netclassCollector) readAll() (sysfs.NetClass, error) {
	devs, err := c.fs.NetClassDevices()
	if err != nil {
		return nil, err
	}
	nc := make(sysfs.NetClass, len(devs))
	for _, d := range devs {
		i, err := c.readIface(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a container's veth, gone since the listing
		}
		if err != nil {
			return nil, err
		}
		nc[d] = i
	}
	return nc, nil
}

// readIface reads an interface's properties, about twenty files. Of an
// interface left out of /metrics it reads only the speed, which the
// snapshot reports for every interface: on a host with fifty veths,
// reading all of theirs would be most of this collector's cost.
func (c *netclassCollector) readIface(name string) (sysfs.NetClassIface, error) {
	if c.ex == nil || !c.ex.MatchString(name) {
		i, err := c.fs.NetClassByIface(name)
		if err != nil {
			return sysfs.NetClassIface{}, err
		}
		return *i, nil
	}
	i := sysfs.NetClassIface{Name: name}
	// Virtual links have no speed file, and reading it fails with EINVAL
	// while the link is down; either way there is no speed, as with
	// NetClassByIface.
	if b, err := c.r.read(mkpath(c.dir, name, "speed")); err == nil {
		if v, ok := parseInt(bytes.TrimSpace(b)); ok {
			i.Speed = &v
		}
	}
	return i, nil
}

func (c *netclassCollector) Fill(*metrics.ResourceMetrics) {}
