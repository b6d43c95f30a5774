// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// descs are cAdvisor's container families, with its names, help, units and
// labels (id, name, image, then the opt-in container_label_*), plus crmon's
// own health gauges.
type descs struct {
	cpuUsage, cpuUser, cpuSystem                         *prometheus.Desc
	cfsPeriods, cfsThrottledPeriods, cfsThrottledSeconds *prometheus.Desc
	specCPUQuota, specCPUPeriod, specCPUShares           *prometheus.Desc

	memUsage, memWorkingSet, memRSS, memCache, memMapped, memSwap *prometheus.Desc
	memMaxUsage, memFailcnt, memActiveFile, memInactiveFile       *prometheus.Desc
	oomEvents, specMemLimit, specMemReservation, specMemSwap      *prometheus.Desc

	fsReadsBytes, fsWritesBytes, fsReads, fsWrites, fsUsage *prometheus.Desc

	netRxBytes, netRxPackets, netRxErrors, netRxDropped *prometheus.Desc
	netTxBytes, netTxPackets, netTxErrors, netTxDropped *prometheus.Desc

	processes, threads, threadsMax    *prometheus.Desc
	psiCPUWaiting, psiCPUStalled      *prometheus.Desc
	psiMemWaiting, psiMemStalled      *prometheus.Desc
	psiIOWaiting, psiIOStalled        *prometheus.Desc
	lastSeen, startTime, creationTime *prometheus.Desc
	dockerUp, known                   *prometheus.Desc
}

func newDescs(labelNames []string) descs {
	base := append([]string{"id", "name", "image"}, labelNames...)
	with := func(extra string) []string { return append(append([]string(nil), base...), extra) }
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return descs{
		cpuUsage:            d("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", with("cpu")),
		cpuUser:             d("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", base),
		cpuSystem:           d("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", base),
		cfsPeriods:          d("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", base),
		cfsThrottledPeriods: d("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", base),
		cfsThrottledSeconds: d("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", base),
		specCPUQuota:        d("container_spec_cpu_quota", "CPU quota of the container.", base),
		specCPUPeriod:       d("container_spec_cpu_period", "CPU period of the container.", base),
		specCPUShares:       d("container_spec_cpu_shares", "CPU share of the container.", base),

		memUsage:           d("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", base),
		memWorkingSet:      d("container_memory_working_set_bytes", "Current working set in bytes.", base),
		memRSS:             d("container_memory_rss", "Size of RSS in bytes.", base),
		memCache:           d("container_memory_cache", "Number of bytes of page cache memory.", base),
		memMapped:          d("container_memory_mapped_file", "Size of memory mapped files in bytes.", base),
		memSwap:            d("container_memory_swap", "Container swap usage in bytes.", base),
		memMaxUsage:        d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", base),
		memFailcnt:         d("container_memory_failcnt", "Number of memory usage hits limits", base),
		memActiveFile:      d("container_memory_total_active_file_bytes", "Current total active file in bytes.", base),
		memInactiveFile:    d("container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", base),
		oomEvents:          d("container_oom_events_total", "Count of out of memory events observed for the container", base),
		specMemLimit:       d("container_spec_memory_limit_bytes", "Memory limit for the container.", base),
		specMemReservation: d("container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", base),
		specMemSwap:        d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", base),

		fsReadsBytes:  d("container_fs_reads_bytes_total", "Cumulative count of bytes read", with("device")),
		fsWritesBytes: d("container_fs_writes_bytes_total", "Cumulative count of bytes written", with("device")),
		fsReads:       d("container_fs_reads_total", "Cumulative count of reads completed", with("device")),
		fsWrites:      d("container_fs_writes_total", "Cumulative count of writes completed", with("device")),
		fsUsage:       d("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", with("device")),

		netRxBytes:   d("container_network_receive_bytes_total", "Cumulative count of bytes received", with("interface")),
		netRxPackets: d("container_network_receive_packets_total", "Cumulative count of packets received", with("interface")),
		netRxErrors:  d("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", with("interface")),
		netRxDropped: d("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", with("interface")),
		netTxBytes:   d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", with("interface")),
		netTxPackets: d("container_network_transmit_packets_total", "Cumulative count of packets transmitted", with("interface")),
		netTxErrors:  d("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", with("interface")),
		netTxDropped: d("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", with("interface")),

		psiCPUWaiting: d("container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", base),
		psiCPUStalled: d("container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", base),
		psiMemWaiting: d("container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", base),
		psiMemStalled: d("container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", base),
		psiIOWaiting:  d("container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", base),
		psiIOStalled:  d("container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", base),

		processes:    d("container_processes", "Number of processes running inside the container.", base),
		threads:      d("container_threads", "Number of threads running inside the container", base),
		threadsMax:   d("container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", base),
		lastSeen:     d("container_last_seen", "Last time a container was seen by the exporter", base),
		startTime:    d("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", base),
		creationTime: d("container_creation_time_seconds", "Container creation time since unix epoch in seconds.", base),

		dockerUp: d("crmon_docker_up", "Whether the Docker engine answered crmon's last request (1) or not (0).", nil),
		known:    d("crmon_containers_known", "Containers crmon holds, including removed ones whose final values it still serves.", nil),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	// Every family is described, the optional ones too: describing a
	// family that is never collected is allowed.
	for _, x := range []*prometheus.Desc{
		d.cpuUsage, d.cpuUser, d.cpuSystem, d.cfsPeriods, d.cfsThrottledPeriods, d.cfsThrottledSeconds,
		d.specCPUQuota, d.specCPUPeriod, d.specCPUShares,
		d.memUsage, d.memWorkingSet, d.memRSS, d.memCache, d.memMapped, d.memSwap, d.memMaxUsage, d.memFailcnt,
		d.memActiveFile, d.memInactiveFile, d.oomEvents, d.specMemLimit, d.specMemReservation, d.specMemSwap,
		d.fsReadsBytes, d.fsWritesBytes, d.fsReads, d.fsWrites, d.fsUsage,
		d.netRxBytes, d.netRxPackets, d.netRxErrors, d.netRxDropped, d.netTxBytes, d.netTxPackets, d.netTxErrors, d.netTxDropped,
		d.psiCPUWaiting, d.psiCPUStalled, d.psiMemWaiting, d.psiMemStalled, d.psiIOWaiting, d.psiIOStalled,
		d.processes, d.threads, d.threadsMax, d.lastSeen, d.startTime, d.creationTime, d.dockerUp, d.known,
	} {
		ch <- x
	}
}

// Collect implements prometheus.Collector from the last Update, without I/O.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d := &c.descs
	g := c.groups
	up := 0.0
	if c.up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(d.dockerUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(d.known, prometheus.GaugeValue, float64(len(c.byID)))

	// One allocation for every series of the scrape; pointers into an
	// outgrown array stay valid.
	ms := make([]fastMetric, 0, len(c.scrapeOrder)*48)
	emit := func(desc *prometheus.Desc, labels []*dto.LabelPair, counter bool, v float64) {
		ms = append(ms, fastMetric{desc: desc, labels: labels, counter: counter, v: v})
		ch <- &ms[len(ms)-1]
	}
	for _, ct := range c.scrapeOrder {
		if !c.exported(ct) || ct.lp == nil {
			continue
		}
		lp := ct.lp
		m := func(desc *prometheus.Desc, counter bool, v float64) { emit(desc, lp.base, counter, v) }
		s := &ct.stats

		emit(d.cpuUsage, lp.cpuTotal, true, float64(s.CPU.UsageNanos)/1e9)
		m(d.cpuUser, true, float64(s.CPU.UserNanos)/1e9)
		m(d.cpuSystem, true, float64(s.CPU.SystemNanos)/1e9)
		m(d.cfsPeriods, true, float64(s.CPU.Periods))
		m(d.cfsThrottledPeriods, true, float64(s.CPU.ThrottledPeriods))
		m(d.cfsThrottledSeconds, true, float64(s.CPU.ThrottledNanos)/1e9)
		// cAdvisor leaves out the quota when there is none.
		if s.CPU.QuotaMicros > 0 {
			m(d.specCPUQuota, false, float64(s.CPU.QuotaMicros))
		}
		if s.CPU.PeriodMicros > 0 {
			m(d.specCPUPeriod, false, float64(s.CPU.PeriodMicros))
		}
		m(d.specCPUShares, false, float64(s.CPU.Shares))

		m(d.memUsage, false, float64(s.Memory.Usage))
		m(d.memWorkingSet, false, float64(s.Memory.WorkingSet))
		m(d.memRSS, false, float64(s.Memory.RSS))
		m(d.memCache, false, float64(s.Memory.Cache))
		m(d.memMaxUsage, false, float64(s.Memory.MaxUsage))
		m(d.memFailcnt, true, float64(s.Memory.Failcnt))
		m(d.oomEvents, true, float64(s.Memory.OOMEvents))
		m(d.specMemLimit, false, float64(s.Memory.Limit))
		if g.memoryDetail {
			m(d.memMapped, false, float64(s.Memory.MappedFile))
			m(d.memSwap, false, float64(s.Memory.Swap))
			m(d.memActiveFile, false, float64(s.Memory.ActiveFile))
			m(d.memInactiveFile, false, float64(s.Memory.InactiveFile))
		}
		if g.specDetail {
			m(d.specMemReservation, false, float64(s.Memory.ReservationLimit))
			m(d.specMemSwap, false, float64(s.Memory.SwapLimit))
			m(d.threadsMax, false, float64(s.Pids.Limit))
			if !ct.created.IsZero() {
				m(d.creationTime, false, float64(ct.created.Unix()))
			}
		}

		for i := range s.IO.Devices {
			io := &s.IO.Devices[i]
			l, ok := lp.device[devKey(io.Major, io.Minor)]
			if !ok {
				continue
			}
			emit(d.fsReadsBytes, l, true, float64(io.ReadBytes))
			emit(d.fsWritesBytes, l, true, float64(io.WriteBytes))
			emit(d.fsReads, l, true, float64(io.Reads))
			emit(d.fsWrites, l, true, float64(io.Writes))
		}
		if ct.sizeRw >= 0 && lp.fs != nil {
			emit(d.fsUsage, lp.fs, false, float64(ct.sizeRw))
		}
		for i := range ct.net {
			it := &ct.net[i]
			l, ok := lp.iface[it.name]
			if !ok {
				continue
			}
			emit(d.netRxBytes, l, true, float64(it.rxBytes))
			emit(d.netRxPackets, l, true, float64(it.rxPackets))
			emit(d.netRxErrors, l, true, float64(it.rxErrors))
			emit(d.netRxDropped, l, true, float64(it.rxDrops))
			emit(d.netTxBytes, l, true, float64(it.txBytes))
			emit(d.netTxPackets, l, true, float64(it.txPackets))
			emit(d.netTxErrors, l, true, float64(it.txErrors))
			emit(d.netTxDropped, l, true, float64(it.txDrops))
		}

		if g.pressure && ct.paths.V2 != "" {
			ps := &s.Pressure
			m(d.psiCPUWaiting, true, float64(ps.CPUSome)/1e6)
			m(d.psiCPUStalled, true, float64(ps.CPUFull)/1e6)
			m(d.psiMemWaiting, true, float64(ps.MemorySome)/1e6)
			m(d.psiMemStalled, true, float64(ps.MemoryFull)/1e6)
			m(d.psiIOWaiting, true, float64(ps.IOSome)/1e6)
			m(d.psiIOStalled, true, float64(ps.IOFull)/1e6)
		}

		m(d.processes, false, float64(s.Processes))
		m(d.threads, false, float64(s.Pids.Current))
		m(d.lastSeen, false, float64(ct.lastRead.Unix()))
		if !ct.started.IsZero() {
			m(d.startTime, false, float64(ct.started.Unix()))
		}
	}
}

// fastMetric is a series whose label pairs are built once per container
// and shared by every scrape, where prometheus.NewConstMetric would build
// and sort them for every series of every scrape. The pairs are never
// changed in place: new metadata gets new pairs.
type fastMetric struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	counter bool
	v       float64
}

func (m *fastMetric) Desc() *prometheus.Desc { return m.desc }

func (m *fastMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.counter {
		out.Counter = &dto.Counter{Value: &m.v}
	} else {
		out.Gauge = &dto.Gauge{Value: &m.v}
	}
	return nil
}

// labelPairs are one container's label sets: the base (id, name, image,
// container_label_*), and the base plus cpu, device or interface.
type labelPairs struct {
	base, cpuTotal, fs []*dto.LabelPair
	device             map[uint64][]*dto.LabelPair
	iface              map[string][]*dto.LabelPair
}

func devKey(major, minor uint32) uint64 { return uint64(major)<<32 | uint64(minor) }

// pairs builds sorted label pairs from name/value pairs.
func pairs(kv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		n, v := kv[i], kv[i+1]
		out = append(out, &dto.LabelPair{Name: &n, Value: &v})
	}
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// updateLabels rebuilds ct's label pairs when its metadata changed and adds
// any new device or interface. c.mu must be held for writing.
func (c *Collector) updateLabels(ct *container) {
	if ct.lp == nil || ct.lpStale {
		kv := []string{"id", ct.cgroupPath, "name", ct.name, "image", ct.image}
		for i, n := range c.labelNames {
			kv = append(kv, n, ct.labelValues[i])
		}
		ct.baseKV = kv
		lp := &labelPairs{
			base:     pairs(kv...),
			cpuTotal: pairs(append(kv[:len(kv):len(kv)], "cpu", "total")...),
			device:   map[uint64][]*dto.LabelPair{},
			iface:    map[string][]*dto.LabelPair{},
		}
		if c.fsDevice != "" || ct.sizeRw >= 0 {
			lp.fs = pairs(append(kv[:len(kv):len(kv)], "device", c.fsDevice)...)
		}
		ct.lp, ct.lpStale = lp, false
	}
	kv := ct.baseKV
	for i := range ct.stats.IO.Devices {
		io := &ct.stats.IO.Devices[i]
		k := devKey(io.Major, io.Minor)
		if _, ok := ct.lp.device[k]; !ok {
			ct.lp.device[k] = pairs(append(kv[:len(kv):len(kv)], "device", c.devName(io.Major, io.Minor))...)
		}
	}
	for i := range ct.net {
		if _, ok := ct.lp.iface[ct.net[i].name]; !ok {
			ct.lp.iface[ct.net[i].name] = pairs(append(kv[:len(kv):len(kv)], "interface", ct.net[i].name)...)
		}
	}
}

// exported reports whether ct's cgroup series are served: while it runs,
// and for Linger ticks after it stopped or was removed, so that the last
// scrape and sample hold its final counters. c.mu must be held.
func (c *Collector) exported(ct *container) bool {
	if !ct.haveStats {
		return false
	}
	switch {
	case ct.removed:
		return ct.removedTicks <= c.opts.Linger
	case ct.running():
		return true
	default:
		return ct.stoppedTicks <= c.opts.Linger
	}
}
