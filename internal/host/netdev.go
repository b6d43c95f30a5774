// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/rtnl"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// netdevFields are the columns of /proc/net/dev in order, named as
// node_exporter names them.
var netdevFields = [...]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop",
	"receive_fifo", "receive_frame", "receive_compressed", "receive_multicast",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop",
	"transmit_fifo", "transmit_colls", "transmit_carrier", "transmit_compressed",
}

const (
	ndRxBytes   = 0
	ndRxPackets = 1
	ndRxErrs    = 2
	ndTxBytes   = 8
	ndTxPackets = 9
	ndTxErrs    = 10
)

// NetDevLine is one interface of /proc/net/dev.
type NetDevLine struct {
	Name   []byte // valid until the next read
	Fields [len(netdevFields)]uint64
}

// parseNetDev calls fn for each interface line of /proc/net/dev.
func parseNetDev(b []byte, fn func(*NetDevLine)) error {
	var l NetDevLine
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue // the two header lines
		}
		l.Name = bytes.TrimSpace(line[:i])
		rest := line[i+1:]
		for j := range l.Fields {
			var f []byte
			f, rest = nextField(rest)
			v, ok := parseUint(f)
			if !ok {
				return fmt.Errorf("parsing net/dev %s: bad value %q", l.Name, f)
			}
			l.Fields[j] = v
		}
		fn(&l)
	}
	return nil
}

type netIface struct {
	lv       []string
	excluded bool
	// nohandler is sysfs's statistics/rx_nohandler, kept open while the
	// interface is exported (see maxNohandlerOpen).
	nohandler openFile
	// physical: a NIC with a device behind it (class/net/<name>/device),
	// not a bridge, veth, bond or VLAN whose bytes a NIC counts too.
	physical bool
	// index is rtnetlink's, 0 when read from the file.
	index int32
	// f, nh and haveNH are the counters of its last read, at readAt, and
	// rate its bytes per second since the read before.
	f      [len(netdevFields)]uint64
	nh     uint64
	haveNH bool
	readAt time.Time
	rate   uint64
	// quiet counts the reads in a row that found its counters as they
	// were; one quiet for quietAfter reads is read with every device only
	// (see hot).
	quiet int
	seen  uint64
}

// quietAfter is how many reads in a row must find an interface's counters
// unchanged before it is read only with every interface; dumpCost is what
// a dump costs per interface against asking one alone: with fewer than
// one in dumpCost interfaces to read alone, they are asked one by one.
// Measured on this kernel with 150 idle containers' veths, a dump cost
// 230 µs of the agent's tick and one interface asked alone 6 µs.
const (
	quietAfter = 2
	dumpCost   = 4
)

type netdevCollector struct {
	metricSet
	ex   *regexp.Regexp // nil: none excluded
	log  *slog.Logger
	r    *reader
	path cpath
	// nl reads the counters by rtnetlink when procfs is this process's
	// own (not a fixture tree): the kernel's text of /proc/net/dev costs
	// about 1 µs a device to make, and a host of many containers has a
	// veth each (3.7 ms a tick for 1 000 of them, 0.47 ms by rtnetlink).
	nl *rtnl.Conn
	sh *shared
	// classNet is sysfs's class/net, where physical NICs have a device.
	classNet string
	descs    [len(netdevFields)]*metricDesc
	// nohandlerDesc is node_exporter's receive_nohandler, which
	// /proc/net/dev lacks: node_exporter reads it over netlink, crmon from
	// sysfs (both dev_get_stats()'s rx_nohandler).
	nohandlerDesc *metricDesc
	nr            *reader
	open          int // nohandler files open

	ifaces map[string]*netIface
	// order is the interfaces in the order of the last reading of all.
	order []*netIface
	gen   uint64
	last  time.Time
	// refresh is how often every interface is read by rtnetlink, quiet or
	// not (Options.NetdevIdleRefresh); allAt is when they last were.
	refresh time.Duration
	allAt   time.Time
	hot     []int32

	snap     []metrics.InterfaceMetrics
	nextSnap []metrics.InterfaceMetrics
	// phys[i] says whether snap[i] is a physical NIC.
	phys, nextPhys []bool
}

func newNetdevCollector(o collect.Options, ho Options, sh *shared) (*netdevCollector, error) {
	ex, err := compileExclude(ho.NetdevDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("parsing netdev device exclude: %w", err)
	}
	c := &netdevCollector{
		ex:       ex,
		log:      logger(o),
		r:        newReader(4096),
		path:     procNetPath(o.Paths.ProcFS, "dev"),
		classNet: filepath.Join(o.Paths.SysFS, "class/net"),
		sh:       sh,
		ifaces:   map[string]*netIface{},
		refresh:  ho.NetdevIdleRefresh,
	}
	for i, f := range netdevFields {
		c.descs[i] = newDesc("network", f+"_total", "Network device statistic "+f+".", "device")
	}
	c.nohandlerDesc = newDesc("network", "receive_nohandler_total", "Network device statistic receive_nohandler.", "device")
	c.nr = newReader(64)
	if ownNetns(o.Paths.ProcFS) {
		if c.nl, err = rtnl.Open(""); err != nil {
			c.log.Debug("reading /proc/net/dev: no rtnetlink", "err", err)
		}
	}
	return c, nil
}

// ownNetns reports whether procFS's net/dev is this process's network
// namespace's: the live /proc, or another mount of it.
func ownNetns(procFS string) bool {
	var a, b unix.Stat_t
	if unix.Stat(filepath.Join(procFS, "self", "ns", "net"), &a) != nil || unix.Stat("/proc/self/ns/net", &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// maxNohandlerOpen bounds the rx_nohandler files kept open between ticks
// (one pread each, instead of an open, a read and a close); interfaces
// beyond it are read by path. Interfaces come and go with containers.
const maxNohandlerOpen = 256

// readNohandler returns ifc's rx_nohandler; ok is false when sysfs does
// not have it (an interface gone since /proc/net/dev was read, a kernel
// before 4.6).
func (c *netdevCollector) readNohandler(ifc *netIface) (v uint64, ok bool) {
	var b []byte
	var err error
	if ifc.nohandler.open || c.open < maxNohandlerOpen {
		wasOpen := ifc.nohandler.open
		b, err = ifc.nohandler.read(c.nr)
		switch {
		case !wasOpen && ifc.nohandler.open:
			c.open++
		case wasOpen && !ifc.nohandler.open:
			c.open--
		}
	} else {
		b, err = c.nr.read(ifc.nohandler.path)
	}
	if err != nil {
		return 0, false
	}
	return parseUint(bytes.TrimSpace(b))
}

// closeNohandler closes ifc's rx_nohandler file.
func (c *netdevCollector) closeNohandler(ifc *netIface) {
	if ifc.nohandler.open {
		ifc.nohandler.Close()
		c.open--
	}
}

// Close closes the rx_nohandler files and the rtnetlink sockets.
func (c *netdevCollector) Close() error {
	for _, ifc := range c.ifaces {
		c.closeNohandler(ifc)
	}
	if c.nl != nil {
		return c.nl.Close()
	}
	return nil
}

func (c *netdevCollector) Name() string { return "netdev" }

func (c *netdevCollector) Update(_ context.Context, now time.Time) error {
	tick := now.Sub(c.last)
	c.gen++
	changed := false
	// read notes an interface's counters; nh is its rx_nohandler when the
	// source has it, read from sysfs otherwise.
	read := func(ifc *netIface, name string, index int32, f *[len(netdevFields)]uint64, nh uint64, haveNH bool) *netIface {
		if ifc == nil {
			ifc = &netIface{lv: []string{collect.ValidLabelValue(name)}, excluded: c.ex != nil && c.ex.MatchString(name)}
			ifc.nohandler.path = mkpath(c.classNet, name, "statistics", "rx_nohandler")
			_, err := os.Lstat(filepath.Join(c.classNet, name, "device"))
			ifc.physical = err == nil
			c.ifaces[name] = ifc
			changed = true
		}
		ifc.seen, ifc.index = c.gen, index
		if !haveNH && !ifc.excluded {
			nh, haveNH = c.readNohandler(ifc)
		}
		ifc.rate = 0
		if !ifc.readAt.IsZero() && now.After(ifc.readAt) {
			dt := now.Sub(ifc.readAt).Seconds()
			ifc.rate = perSec(f[ndRxBytes], ifc.f[ndRxBytes], dt) + perSec(f[ndTxBytes], ifc.f[ndTxBytes], dt)
		}
		if !ifc.readAt.IsZero() && ifc.f == *f && ifc.nh == nh && ifc.haveNH == haveNH {
			ifc.quiet++
		} else {
			ifc.quiet = 0
		}
		ifc.f, ifc.nh, ifc.haveNH, ifc.readAt = *f, nh, haveNH, now
		return ifc
	}
	err := errors.ErrUnsupported
	if c.nl != nil {
		// The interfaces that move, alone; all of them every refresh,
		// when the namespace's interfaces changed, or when too many move.
		some := false
		if hot, ok := c.hotOnly(now, tick); ok {
			some, err = c.nl.Read(hot, func(l *rtnl.Link) {
				if ifc := c.ifaces[l.Name]; ifc != nil {
					f := l.Stats.ProcNetDev()
					read(ifc, l.Name, l.Index, &f, l.Stats.RxNohandler, l.Fields >= 24)
				}
			})
			if err != nil {
				some = false
				c.log.Debug("reading network devices by rtnetlink", "err", err)
			}
			if some {
				for _, ifc := range c.order {
					// The quiet ones keep their counters.
					ifc.seen = c.gen
				}
			}
		}
		if !some {
			// Links calls back only once the whole dump is in: on an
			// error, nothing was noted yet and the file serves this tick.
			c.order = c.order[:0]
			err = c.nl.Links(func(l *rtnl.Link) {
				f := l.Stats.ProcNetDev()
				c.order = append(c.order, read(c.ifaces[l.Name], l.Name, l.Index, &f, l.Stats.RxNohandler, l.Fields >= 24))
			})
			if err != nil {
				c.log.Debug("reading network devices by rtnetlink", "err", err)
			} else {
				c.allAt = now
			}
		}
	}
	if err != nil {
		b, rerr := c.r.read(c.path)
		if rerr != nil {
			return noData(c.log, "netdev", fmt.Errorf("reading net/dev: %w", rerr))
		}
		// Read from the file, the interfaces have no index: the next
		// rtnetlink read is a dump.
		c.order, c.allAt = c.order[:0], time.Time{}
		err = parseNetDev(b, func(l *NetDevLine) {
			ifc := c.ifaces[string(l.Name)]
			name := ""
			if ifc == nil {
				name = string(l.Name)
			}
			c.order = append(c.order, read(ifc, name, 0, &l.Fields, 0, false))
		})
	}
	if err != nil {
		return err
	}
	for n, ifc := range c.ifaces {
		if ifc.seen != c.gen {
			c.closeNohandler(ifc)
			delete(c.ifaces, n)
			changed = true
		}
	}
	c.begin()
	snap, phys := c.nextSnap[:0], c.nextPhys[:0]
	for _, ifc := range c.order {
		if ifc.seen != c.gen {
			continue
		}
		if !ifc.readAt.Equal(now) {
			// Quiet: not read, and no move seen since.
			ifc.rate = 0
		}
		if !ifc.excluded {
			for i, v := range ifc.f {
				c.add(c.descs[i], prometheus.CounterValue, float64(v), ifc.lv)
			}
			if ifc.haveNH {
				c.add(c.nohandlerDesc, prometheus.CounterValue, float64(ifc.nh), ifc.lv)
			}
		}
		f := &ifc.f
		snap = append(snap, metrics.InterfaceMetrics{
			Name:                 ifc.lv[0],
			BytesSent:            f[ndTxBytes],
			BytesReceived:        f[ndRxBytes],
			PacketsSent:          f[ndTxPackets],
			PacketsReceived:      f[ndRxPackets],
			ErrorsSent:           f[ndTxErrs],
			ErrorsReceived:       f[ndRxErrs],
			BandwidthBytesPerSec: ifc.rate,
		})
		phys = append(phys, ifc.physical)
	}
	// The first reading is no change: netclass reads everything at its
	// own first tick.
	if changed && !c.last.IsZero() {
		c.sh.mu.Lock()
		c.sh.ifaceGen++
		c.sh.mu.Unlock()
	}
	c.last = now
	c.publish(func() {
		c.snap, c.nextSnap = snap, c.snap
		c.phys, c.nextPhys = phys, c.phys
	})
	return nil
}

// hotOnly lists the interfaces to read alone this tick, those whose
// counters moved lately, and reports whether to: not when every
// interface is due (at the first tick and every refresh) or when so many
// move that a dump of all costs less. A quiet interface's counters are
// then at most refresh old; one that moves is read every tick from its
// next reading on. Hosts with many idle containers have as many quiet
// veths, each a cost in every dump (veth_get_stats64 sums its counters
// over the CPUs).
func (c *netdevCollector) hotOnly(now time.Time, tick time.Duration) ([]int32, bool) {
	if c.refresh <= 0 || c.allAt.IsZero() || now.Sub(c.allAt)+tick/2 >= c.refresh {
		return nil, false
	}
	hot := c.hot[:0]
	for _, ifc := range c.order {
		if ifc.quiet < quietAfter {
			hot = append(hot, ifc.index)
		}
	}
	c.hot = hot
	return hot, len(hot)*dumpCost <= len(c.order)
}

// isLoopback leaves lo out of the host totals: its traffic never leaves the
// host and is counted twice (sent and received).
func isLoopback(name string) bool { return name == "lo" }

// Fill lists every interface. The host totals sum the physical NICs: a
// container's traffic crosses its veth, the bridge and the NIC, and
// summing them all would count it three times. A host that shows no
// physical NIC (crmon in a network namespace of its own, where eth0 is a
// veth) sums every interface but loopback.
func (c *netdevCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	ifs := make([]metrics.InterfaceMetrics, len(c.snap))
	copy(ifs, c.snap)
	sum := make([]bool, len(c.phys))
	anyPhys := false
	for i, p := range c.phys {
		sum[i] = p
		anyPhys = anyPhys || p
	}
	c.mu.RUnlock()
	if !anyPhys {
		for i := range ifs {
			sum[i] = !isLoopback(ifs[i].Name)
		}
	}
	c.sh.mu.Lock()
	for i := range ifs {
		ifs[i].SpeedBytesPerSec = c.sh.speeds[ifs[i].Name]
	}
	c.sh.mu.Unlock()
	n := &m.Network
	*n = metrics.NetworkMetrics{Interfaces: ifs}
	for j, i := range ifs {
		if !sum[j] {
			continue
		}
		n.BytesSent += i.BytesSent
		n.BytesReceived += i.BytesReceived
		n.PacketsSent += i.PacketsSent
		n.PacketsReceived += i.PacketsReceived
		n.ErrorsSent += i.ErrorsSent
		n.ErrorsReceived += i.ErrorsReceived
		n.BandwidthBytesPerSec += i.BandwidthBytesPerSec
	}
}

// compileExclude compiles an optional exclusion expression; "" is nil.
func compileExclude(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	return regexp.Compile(expr)
}
