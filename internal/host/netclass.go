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
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"
	"golang.org/x/sys/unix"

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

// netclassInts and netclassStrings are the files of /sys/class/net/<iface>
// that sysfs.FS.NetClassByIface parses, and where each goes. That function
// lists the directory and reads each of its 30-odd files through os.Open
// (each registered with the runtime's poller: sysfs files are pollable);
// reading these 25 by name relative to the open directory took a full read
// of five interfaces from 2.9 to 1.1 ms (BenchmarkNetclassFullRead).
var (
	netclassInts = []struct {
		name cpath
		ptr  func(*sysfs.NetClassIface) **int64
	}{
		{mkpath("addr_assign_type"), func(i *sysfs.NetClassIface) **int64 { return &i.AddrAssignType }},
		{mkpath("addr_len"), func(i *sysfs.NetClassIface) **int64 { return &i.AddrLen }},
		{mkpath("carrier"), func(i *sysfs.NetClassIface) **int64 { return &i.Carrier }},
		{mkpath("carrier_changes"), func(i *sysfs.NetClassIface) **int64 { return &i.CarrierChanges }},
		{mkpath("carrier_up_count"), func(i *sysfs.NetClassIface) **int64 { return &i.CarrierUpCount }},
		{mkpath("carrier_down_count"), func(i *sysfs.NetClassIface) **int64 { return &i.CarrierDownCount }},
		{mkpath("dev_id"), func(i *sysfs.NetClassIface) **int64 { return &i.DevID }},
		{mkpath("dormant"), func(i *sysfs.NetClassIface) **int64 { return &i.Dormant }},
		{mkpath("flags"), func(i *sysfs.NetClassIface) **int64 { return &i.Flags }},
		{mkpath("ifindex"), func(i *sysfs.NetClassIface) **int64 { return &i.IfIndex }},
		{mkpath("iflink"), func(i *sysfs.NetClassIface) **int64 { return &i.IfLink }},
		{mkpath("link_mode"), func(i *sysfs.NetClassIface) **int64 { return &i.LinkMode }},
		{mkpath("mtu"), func(i *sysfs.NetClassIface) **int64 { return &i.MTU }},
		{mkpath("name_assign_type"), func(i *sysfs.NetClassIface) **int64 { return &i.NameAssignType }},
		{mkpath("netdev_group"), func(i *sysfs.NetClassIface) **int64 { return &i.NetDevGroup }},
		{mkpath("speed"), func(i *sysfs.NetClassIface) **int64 { return &i.Speed }},
		{mkpath("tx_queue_len"), func(i *sysfs.NetClassIface) **int64 { return &i.TxQueueLen }},
		{mkpath("type"), func(i *sysfs.NetClassIface) **int64 { return &i.Type }},
	}
	netclassStrings = []struct {
		name cpath
		ptr  func(*sysfs.NetClassIface) *string
	}{
		{mkpath("address"), func(i *sysfs.NetClassIface) *string { return &i.Address }},
		{mkpath("broadcast"), func(i *sysfs.NetClassIface) *string { return &i.Broadcast }},
		{mkpath("duplex"), func(i *sysfs.NetClassIface) *string { return &i.Duplex }},
		{mkpath("ifalias"), func(i *sysfs.NetClassIface) *string { return &i.IfAlias }},
		{mkpath("operstate"), func(i *sysfs.NetClassIface) *string { return &i.OperState }},
		{mkpath("phys_port_id"), func(i *sysfs.NetClassIface) *string { return &i.PhysPortID }},
		{mkpath("phys_port_name"), func(i *sysfs.NetClassIface) *string { return &i.PhysPortName }},
		{mkpath("phys_switch_id"), func(i *sysfs.NetClassIface) *string { return &i.PhysSwitchID }},
	}
)

// excludedRefreshes is how many full reads an excluded interface's speed
// is kept for: on a host with many containers those are veths, whose
// speed is fixed, and re-reading each one's was most of a full read
// (300 veths beside five other interfaces: 9.4 ms, 2.2 ms with the speeds
// kept). A new interface is read when it appears.
const excludedRefreshes = 10

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
	fulls   int       // full reads so far
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
		if c.excluded(n) {
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
	excludedToo := c.fulls%excludedRefreshes == 0
	c.fulls++
	nc := make(sysfs.NetClass, len(devs))
	for _, d := range devs {
		if old, ok := c.cache[d]; ok && !excludedToo && c.excluded(d) {
			nc[d] = old
			continue
		}
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
	if !c.excluded(name) {
		return c.readProps(name)
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

// excluded reports whether the interface is left out of /metrics.
func (c *netclassCollector) excluded(name string) bool {
	return c.ex != nil && c.ex.MatchString(name)
}

// readProps reads an interface's properties as sysfs.FS.NetClassByIface
// does: a file that is absent or that the kernel will not give (a virtual
// link's speed, a down link's duplex) leaves its field unset, a number
// that does not parse is 0, and any other error fails the read.
func (c *netclassCollector) readProps(name string) (sysfs.NetClassIface, error) {
	dir := mkpath(c.dir, name)
	dfd, err := openat(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return sysfs.NetClassIface{}, &os.PathError{Op: "open", Path: dir.String(), Err: err}
	}
	defer unix.Close(dfd)
	i := sysfs.NetClassIface{Name: name}
	read := func(file cpath) ([]byte, bool, error) {
		b, err := c.r.readAt(dfd, file)
		if err != nil {
			if ignorableAttrError(err) {
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("reading %s/%s: %w", dir, file, err)
		}
		return bytes.TrimSpace(b), true, nil
	}
	for _, a := range netclassInts {
		b, ok, err := read(a.name)
		if err != nil {
			return sysfs.NetClassIface{}, err
		}
		if ok {
			v, _ := strconv.ParseInt(string(b), 0, 64)
			*a.ptr(&i) = &v
		}
	}
	for _, a := range netclassStrings {
		b, ok, err := read(a.name)
		if err != nil {
			return sysfs.NetClassIface{}, err
		}
		if ok {
			*a.ptr(&i) = string(b)
		}
	}
	return i, nil
}

// ignorableAttrError reports whether reading an interface's attribute
// failed in a way procfs' sysfs package takes for "no value".
func ignorableAttrError(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODATA)
}

func (c *netclassCollector) Fill(*metrics.ResourceMetrics) {}
