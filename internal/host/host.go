// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package host holds crmon's host collectors: node_exporter's families for
// CPU, memory, filesystems, disks, network and the system as a whole, read
// from a configurable procfs/sysfs/rootfs, and the host part of ADR-006's
// snapshot (CPU, Memory, Disk, Network, System).
//
// Each collector reads its files once per tick in Update, keeps the result,
// and emits it from Collect and Fill without I/O. Descriptors are built once;
// files are read into reused buffers, so a steady-state tick allocates little.
package host

import (
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
)

const namespace = "node"

// userHZ is the unit of the tick counters in /proc/stat and /proc/<pid>/stat:
// USER_HZ, which the kernel fixes at 100 on every architecture.
const userHZ = 100

// Options tune the collectors beyond collect.Options. The zero value means
// node_exporter's defaults.
type Options struct {
	// FilesystemMountPointsExclude and FilesystemFSTypesExclude are
	// regular expressions; empty means node_exporter's defaults.
	FilesystemMountPointsExclude string
	FilesystemFSTypesExclude     string
	// FilesystemMountTimeout bounds one statfs call, so that a hung NFS
	// mount cannot stall the tick; the mount is skipped until its stuck
	// call returns. Default 5s, as node_exporter.
	FilesystemMountTimeout time.Duration
	// FilesystemNoStatfs skips statfs and reports every mount with
	// node_filesystem_device_error 1 and device_error="statfs disabled", so
	// that output from a fixture tree does not depend on the disks of the
	// machine that runs it.
	FilesystemNoStatfs bool
	// DiskstatsDeviceExclude is a regular expression of block devices to
	// leave out; empty means node_exporter's default.
	DiskstatsDeviceExclude string
	// NetdevDeviceExclude and NetclassDeviceExclude are regular
	// expressions of interfaces to leave out of /metrics (node_exporter's
	// --collector.netdev.device-exclude and netclass.ignored-devices);
	// empty excludes none, as node_exporter. On a host running many
	// containers, "^veth" saves some forty series per container; the
	// containers' own network families cover them. The snapshot still lists
	// every interface.
	NetdevDeviceExclude   string
	NetclassDeviceExclude string
	// NetclassRefresh is how often the per-interface sysfs properties
	// (about twenty small files per interface, ~8 µs each) are re-read
	// when no interface came or went; they rarely change, and reading them
	// every second would cost more than all other host collectors together
	// on a host with fifty veths. Default 60s.
	NetclassRefresh time.Duration
	// NetdevIdleRefresh is how often an interface whose counters did not
	// move lately (a quiet one: an idle container's veth) is read; the
	// others are read every tick, alone, when they are few. Default 10s;
	// negative reads every interface every tick.
	NetdevIdleRefresh time.Duration
	// ProcessesScanInterval is the time between two full reads of every
	// /proc/<pid>/stat, the most expensive read of a tick (about 7 µs of
	// kernel time per process). In between, the thread count still comes
	// fresh each tick from /proc/loadavg, while the process count, process
	// states and the top lists keep the last scan's values and the top CPU
	// percentages cover the whole interval. 0 scans every tick.
	ProcessesScanInterval time.Duration
	// NetstatFields and VmstatFields select the /proc/net/{netstat,snmp,snmp6}
	// and /proc/vmstat fields to export; empty means node_exporter's
	// defaults.
	NetstatFields string
	VmstatFields  string
}

func (o Options) withDefaults() Options {
	if o.FilesystemMountPointsExclude == "" {
		o.FilesystemMountPointsExclude = defMountPointsExcluded
	}
	if o.FilesystemFSTypesExclude == "" {
		o.FilesystemFSTypesExclude = defFSTypesExcluded
	}
	if o.FilesystemMountTimeout <= 0 {
		o.FilesystemMountTimeout = 5 * time.Second
	}
	if o.DiskstatsDeviceExclude == "" {
		o.DiskstatsDeviceExclude = defDiskstatsDeviceExclude
	}
	if o.NetdevIdleRefresh == 0 {
		o.NetdevIdleRefresh = 10 * time.Second
	}
	if o.NetclassRefresh <= 0 {
		o.NetclassRefresh = 60 * time.Second
	}
	if o.NetstatFields == "" {
		o.NetstatFields = defNetstatFields
	}
	if o.VmstatFields == "" {
		o.VmstatFields = defVmstatFields
	}
	return o
}

// shared carries what one collector reads and another reports in the
// snapshot: partitions show their device's I/O rates (diskstats), interfaces
// their link speed (netclass). Writers fill it in Update, readers use it in
// Fill, which runs after every Update of the tick, so the order of the
// collectors does not matter.
type shared struct {
	mu        sync.Mutex
	diskRates map[uint64]ioRates // by device number (major<<32 | minor)
	speeds    map[string]uint64  // link speed in bytes/s, by interface
	// ifaceGen changes whenever netdev sees an interface come or go, so
	// that netclass re-reads sysfs at once.
	ifaceGen uint64
}

type ioRates struct {
	readBytes, writeBytes, readOps, writeOps uint64
}

func devNum(major, minor uint32) uint64 { return uint64(major)<<32 | uint64(minor) }

// Registrations lists the host collectors with node_exporter's defaults.
func Registrations() []collect.Registration { return RegistrationsWithOptions(Options{}) }

// RegistrationsWithOptions lists the host collectors. Collectors built from
// one call's list share the data that joins them (partition I/O rates,
// interface speeds); build each at most once per list.
func RegistrationsWithOptions(o Options) []collect.Registration {
	o = o.withDefaults()
	sh := &shared{diskRates: map[uint64]ioRates{}, speeds: map[string]uint64{}}
	reg := func(name string, on bool, help string, f func(collect.Options) (collect.Collector, error)) collect.Registration {
		return collect.Registration{Name: name, DefaultEnabled: on, Help: help, New: f}
	}
	return []collect.Registration{
		reg("arp", true, "ARP entries by device from /proc/net/arp.", func(co collect.Options) (collect.Collector, error) { return newARPCollector(co) }),
		reg("conntrack", true, "Netfilter connection tracking table size and statistics.", func(co collect.Options) (collect.Collector, error) { return newConntrackCollector(co) }),
		reg("cpu", true, "CPU time per CPU and mode from /proc/stat; host CPU usage, cores.", func(co collect.Options) (collect.Collector, error) { return newCPUCollector(co) }),
		reg("cpufreq", true, "CPU frequency from cpufreq in sysfs, else /proc/cpuinfo.", func(co collect.Options) (collect.Collector, error) { return newCPUFreqCollector(co) }),
		reg("diskstats", true, "Block device I/O statistics from /proc/diskstats.", func(co collect.Options) (collect.Collector, error) { return newDiskstatsCollector(co, o, sh) }),
		reg("entropy", true, "Kernel entropy pool.", func(co collect.Options) (collect.Collector, error) { return newEntropyCollector(co) }),
		reg("filefd", true, "Allocated and maximum file handles from /proc/sys/fs/file-nr.", func(co collect.Options) (collect.Collector, error) { return newFilefdCollector(co) }),
		reg("filesystem", true, "Filesystem capacity (statfs) of mounted filesystems.", func(co collect.Options) (collect.Collector, error) { return newFilesystemCollector(co, o, sh) }),
		reg("hwmon", true, "Temperature sensors from /sys/class/hwmon.", func(co collect.Options) (collect.Collector, error) { return newHwmonCollector(co) }),
		reg("kernel_hung", true, "Hung task count from /proc/sys/kernel/hung_task_detect_count.", func(co collect.Options) (collect.Collector, error) { return newKernelHungCollector(co) }),
		reg("loadavg", true, "Load averages from /proc/loadavg.", func(co collect.Options) (collect.Collector, error) { return newLoadavgCollector(co) }),
		reg("machine", true, "cAdvisor's machine_* families: logical CPUs, physical cores, sockets, memory and swap.", func(co collect.Options) (collect.Collector, error) { return newMachineCollector(co) }),
		reg("meminfo", true, "Memory statistics from /proc/meminfo.", func(co collect.Options) (collect.Collector, error) { return newMeminfoCollector(co) }),
		reg("netclass", true, "Network interface properties from /sys/class/net.", func(co collect.Options) (collect.Collector, error) { return newNetclassCollector(co, o, sh) }),
		reg("netdev", true, "Network interface statistics (rtnetlink, or /proc/net/dev).", func(co collect.Options) (collect.Collector, error) { return newNetdevCollector(co, o, sh) }),
		reg("netstat", true, "Network statistics from /proc/net/{netstat,snmp,snmp6}.", func(co collect.Options) (collect.Collector, error) { return newNetstatCollector(co, o) }),
		reg("os", true, "OS release from etc/os-release under the root filesystem.", func(co collect.Options) (collect.Collector, error) { return newOSCollector(co) }),
		reg("pressure", true, "Pressure stall information from /proc/pressure.", func(co collect.Options) (collect.Collector, error) { return newPressureCollector(co) }),
		reg("processes", true, "Processes and threads from /proc/<pid>/stat; top processes by CPU and memory.", func(co collect.Options) (collect.Collector, error) { return newProcessesCollector(co, o) }),
		reg("selinux", true, "SELinux status.", func(co collect.Options) (collect.Collector, error) { return newSELinuxCollector(co) }),
		reg("sockstat", true, "Socket statistics from /proc/net/sockstat{,6}.", func(co collect.Options) (collect.Collector, error) { return newSockstatCollector(co) }),
		reg("softnet", true, "Softnet statistics from /proc/net/softnet_stat.", func(co collect.Options) (collect.Collector, error) { return newSoftnetCollector(co) }),
		reg("stat", true, "Boot time, context switches, forks, interrupts, runnable and blocked processes from /proc/stat; uptime.", func(co collect.Options) (collect.Collector, error) { return newStatCollector(co) }),
		reg("thermal_zone", true, "Thermal zone temperatures from /sys/class/thermal.", func(co collect.Options) (collect.Collector, error) { return newThermalZoneCollector(co) }),
		reg("time", true, "System time, time zone and clock sources.", func(co collect.Options) (collect.Collector, error) { return newTimeCollector(co) }),
		reg("timex", true, "Kernel clock discipline (adjtimex) of the host crmon runs on.", func(co collect.Options) (collect.Collector, error) { return newTimexCollector(co) }),
		reg("udp_queues", true, "UDP queue lengths from /proc/net/udp{,6}.", func(co collect.Options) (collect.Collector, error) { return newUDPQueuesCollector(co) }),
		reg("uname", true, "Kernel and host name from /proc/sys/kernel.", func(co collect.Options) (collect.Collector, error) { return newUnameCollector(co) }),
		reg("users", true, "Logged-in users from utmp under the root filesystem.", func(co collect.Options) (collect.Collector, error) { return newUsersCollector(co) }),
		reg("vmstat", true, "Virtual memory statistics from /proc/vmstat.", func(co collect.Options) (collect.Collector, error) { return newVmstatCollector(co, o) }),
	}
}

// sample is one metric of the last Update. Label value slices are cached
// per device or state by the collectors and never mutated, so a steady-state
// tick allocates none.
type sample struct {
	desc  *metricDesc
	typ   prometheus.ValueType
	value float64
	lv    []string
}

// metricSet double-buffers a collector's samples: Update appends to next
// without a lock and publishes with a swap; Collect reads cur under the read
// lock. The write lock waits for readers, so nobody reads next while Update
// fills it.
type metricSet struct {
	mu        sync.RWMutex
	cur, next []sample
	// ids are the samples' series for AppendSeries (series.go).
	ids seriesIDs
}

func (m *metricSet) begin() { m.next = m.next[:0] }

func (m *metricSet) add(d *metricDesc, t prometheus.ValueType, v float64, lv []string) {
	// A label value from the host (a mount point, an interface alias) may
	// not be UTF-8: repaired here, where every host collector's values
	// enter, for both formats.
	lv = collect.ValidLabelValues(lv)
	m.next = append(m.next, sample{desc: d, typ: t, value: v, lv: lv})
}

// publish makes next current. extra, if set, runs under the write lock, for
// a collector's own snapshot state.
func (m *metricSet) publish(extra func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur, m.next = m.next, m.cur
	if extra != nil {
		extra()
	}
}

// clear drops the published samples, e.g. when the source disappeared.
func (m *metricSet) clear() {
	m.begin()
	m.publish(nil)
}

// Describe sends nothing: the families depend on what the host has, so the
// collectors are unchecked, as node_exporter's are.
func (m *metricSet) Describe(chan<- *prometheus.Desc) {}

// Collect emits the last Update's samples.
func (m *metricSet) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i := range m.cur {
		s := &m.cur[i]
		ch <- prometheus.MustNewConstMetric(s.desc.pd, s.typ, s.value, s.lv...)
	}
}

// AppendText implements collect.TextAppender with the samples Collect
// emits, in the order client_golang would write them: families by name,
// each family's series by label values. A collector's samples of one
// family need not be adjacent (netclass goes interface by interface).
func (m *metricSet) AppendText(b []byte) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var stack [512]int32
	idx := stack[:0]
	for i := range m.cur {
		idx = append(idx, int32(i))
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &m.cur[i], &m.cur[j]
		if a.desc != b.desc {
			return strings.Compare(a.desc.name, b.desc.name)
		}
		for _, k := range a.desc.order {
			if c := strings.Compare(a.lv[k], b.lv[k]); c != 0 {
				return c
			}
		}
		return 0
	})
	var last *metricDesc
	for _, i := range idx {
		s := &m.cur[i]
		if s.desc != last {
			last = s.desc
			b = collect.AppendHeader(b, s.desc.name, s.desc.help, s.typ)
		}
		b = s.desc.appendSample(b, s.lv, s.value)
	}
	return b
}

// metricDesc is a family as a host collector declares it: the descriptor
// client_golang takes, and what the text format needs, the name, help and
// label names, with the order client_golang writes the labels in (sorted
// by name), so that both write the same lines.
type metricDesc struct {
	pd         *prometheus.Desc
	name, help string
	labels     []string
	order      []int
}

func newDesc(subsystem, name, help string, labels ...string) *metricDesc {
	return newFQDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels...)
}

func newFQDesc(name, help string, labels ...string) *metricDesc {
	d := &metricDesc{pd: prometheus.NewDesc(name, help, labels, nil), name: name, help: help, labels: labels}
	d.order = make([]int, len(labels))
	for i := range d.order {
		d.order[i] = i
	}
	slices.SortFunc(d.order, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	return d
}

// appendSample appends one sample line of d with label values lv.
func (d *metricDesc) appendSample(b []byte, lv []string, v float64) []byte {
	b = append(b, d.name...)
	if len(d.labels) > 0 {
		b = append(b, '{')
		for i, j := range d.order {
			if i > 0 {
				b = append(b, ',')
			}
			b = collect.AppendLabel(b, d.labels[j], lv[j])
		}
		b = append(b, '}')
	}
	return collect.AppendValue(b, v)
}

// noData turns a missing file into collect.ErrNoData with a debug log, so a
// host without a feature is not a failing collector.
func noData(log *slog.Logger, collector string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		log.Debug("source not present", "collector", collector, "err", err)
		return collect.ErrNoData
	}
	return err
}

// absentRecheck is how long a collector whose source is absent (no
// SELinux, no utmp, no thermal zone, no hwmon chip) waits before it looks
// again. Looking each tick cost such a collector 10-20 µs of the agent's
// tick (a failed path walk or an empty directory listing, an error made
// and logged, an empty set published: cold each time), some 60 µs for the
// four on a virtual machine that has none of them, 3 % of the agent with
// no container. A source that appears (a driver loaded late, a first
// login) is seen within this.
const absentRecheck = time.Minute

// recheck paces a collector's looks at a source: after a look that found
// it absent (or, for hwmon, any scan) the next is due a minute later.
type recheck struct {
	at, next time.Time // the look that set the pace, and the next one due
}

// due reports whether to look at the source at now: always until a look
// set the pace, else from a minute after that look on, or when the clock
// went back before it.
func (r *recheck) due(now time.Time) bool {
	return r.next.IsZero() || !now.Before(r.next) || now.Before(r.at)
}

// wait notes a look at now: the next is due absentRecheck later.
func (r *recheck) wait(now time.Time) { r.at, r.next = now, now.Add(absentRecheck) }

// reset notes a look that found the source: the next is due at once.
func (r *recheck) reset() { r.at, r.next = time.Time{}, time.Time{} }

func logger(o collect.Options) *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// labelCache hands out one immutable label-value slice per key, so
// per-device samples do not allocate each tick. Keys not seen since the last
// sweep are dropped, so churning veths do not grow it.
type labelCache struct {
	m   map[string]*labelEntry
	gen uint64
}

type labelEntry struct {
	lv   []string
	seen uint64
}

func newLabelCache() *labelCache { return &labelCache{m: map[string]*labelEntry{}} }

func (c *labelCache) get(key []byte) []string {
	e, ok := c.m[string(key)]
	if !ok {
		k := string(key)
		e = &labelEntry{lv: []string{k}}
		c.m[k] = e
	}
	e.seen = c.gen
	return e.lv
}

func (c *labelCache) sweep() {
	for k, e := range c.m {
		if e.seen != c.gen {
			delete(c.m, k)
		}
	}
	c.gen++
}
