// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"github.com/prometheus/client_golang/prometheus"
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
	oomEvents, specMemLimit                                       *prometheus.Desc

	fsReadsBytes, fsWritesBytes, fsReads, fsWrites, fsUsage *prometheus.Desc

	netRxBytes, netRxPackets, netRxErrors, netRxDropped *prometheus.Desc
	netTxBytes, netTxPackets, netTxErrors, netTxDropped *prometheus.Desc

	processes, threads, threadsMax    *prometheus.Desc
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

		memUsage:        d("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", base),
		memWorkingSet:   d("container_memory_working_set_bytes", "Current working set in bytes.", base),
		memRSS:          d("container_memory_rss", "Size of RSS in bytes.", base),
		memCache:        d("container_memory_cache", "Number of bytes of page cache memory.", base),
		memMapped:       d("container_memory_mapped_file", "Size of memory mapped files in bytes.", base),
		memSwap:         d("container_memory_swap", "Container swap usage in bytes.", base),
		memMaxUsage:     d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", base),
		memFailcnt:      d("container_memory_failcnt", "Number of memory usage hits limits", base),
		memActiveFile:   d("container_memory_total_active_file_bytes", "Current total active file in bytes.", base),
		memInactiveFile: d("container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", base),
		oomEvents:       d("container_oom_events_total", "Count of out of memory events observed for the container", base),
		specMemLimit:    d("container_spec_memory_limit_bytes", "Memory limit for the container.", base),

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
	for _, x := range []*prometheus.Desc{
		d.cpuUsage, d.cpuUser, d.cpuSystem, d.cfsPeriods, d.cfsThrottledPeriods, d.cfsThrottledSeconds,
		d.specCPUQuota, d.specCPUPeriod, d.specCPUShares,
		d.memUsage, d.memWorkingSet, d.memRSS, d.memCache, d.memMapped, d.memSwap, d.memMaxUsage, d.memFailcnt,
		d.memActiveFile, d.memInactiveFile, d.oomEvents, d.specMemLimit,
		d.fsReadsBytes, d.fsWritesBytes, d.fsReads, d.fsWrites, d.fsUsage,
		d.netRxBytes, d.netRxPackets, d.netRxErrors, d.netRxDropped, d.netTxBytes, d.netTxPackets, d.netTxErrors, d.netTxDropped,
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
	up := 0.0
	if c.up {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(d.dockerUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(d.known, prometheus.GaugeValue, float64(len(c.byID)))

	const (
		counter = prometheus.CounterValue
		gauge   = prometheus.GaugeValue
	)
	lv := make([]string, 0, 4+len(c.labelNames))
	for _, ct := range c.sample {
		if !c.exported(ct) {
			continue
		}
		lv = append(lv[:0], ct.cgroupPath, ct.name, ct.image)
		lv = append(lv, ct.labelValues...)
		n := len(lv)
		m := func(desc *prometheus.Desc, t prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, t, v, lv[:n]...)
		}
		extra := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, x string) {
			ch <- prometheus.MustNewConstMetric(desc, t, v, append(lv[:n], x)...)
		}
		s := &ct.stats

		extra(d.cpuUsage, counter, float64(s.CPU.UsageNanos)/1e9, "total")
		m(d.cpuUser, counter, float64(s.CPU.UserNanos)/1e9)
		m(d.cpuSystem, counter, float64(s.CPU.SystemNanos)/1e9)
		m(d.cfsPeriods, counter, float64(s.CPU.Periods))
		m(d.cfsThrottledPeriods, counter, float64(s.CPU.ThrottledPeriods))
		m(d.cfsThrottledSeconds, counter, float64(s.CPU.ThrottledNanos)/1e9)
		// cAdvisor leaves out the quota when there is none.
		if s.CPU.QuotaMicros > 0 {
			m(d.specCPUQuota, gauge, float64(s.CPU.QuotaMicros))
		}
		if s.CPU.PeriodMicros > 0 {
			m(d.specCPUPeriod, gauge, float64(s.CPU.PeriodMicros))
		}
		m(d.specCPUShares, gauge, float64(s.CPU.Shares))

		m(d.memUsage, gauge, float64(s.Memory.Usage))
		m(d.memWorkingSet, gauge, float64(s.Memory.WorkingSet))
		m(d.memRSS, gauge, float64(s.Memory.RSS))
		m(d.memCache, gauge, float64(s.Memory.Cache))
		m(d.memMapped, gauge, float64(s.Memory.MappedFile))
		m(d.memSwap, gauge, float64(s.Memory.Swap))
		m(d.memMaxUsage, gauge, float64(s.Memory.MaxUsage))
		m(d.memFailcnt, counter, float64(s.Memory.Failcnt))
		m(d.memActiveFile, gauge, float64(s.Memory.ActiveFile))
		m(d.memInactiveFile, gauge, float64(s.Memory.InactiveFile))
		m(d.oomEvents, counter, float64(s.Memory.OOMEvents))
		m(d.specMemLimit, gauge, float64(s.Memory.Limit))

		for i := range s.IO.Devices {
			io := &s.IO.Devices[i]
			dev := c.devNames[uint64(io.Major)<<32|uint64(io.Minor)]
			extra(d.fsReadsBytes, counter, float64(io.ReadBytes), dev)
			extra(d.fsWritesBytes, counter, float64(io.WriteBytes), dev)
			extra(d.fsReads, counter, float64(io.Reads), dev)
			extra(d.fsWrites, counter, float64(io.Writes), dev)
		}
		if ct.sizeRw >= 0 {
			extra(d.fsUsage, gauge, float64(ct.sizeRw), c.fsDevice)
		}
		for i := range ct.net {
			it := &ct.net[i]
			extra(d.netRxBytes, counter, float64(it.rxBytes), it.name)
			extra(d.netRxPackets, counter, float64(it.rxPackets), it.name)
			extra(d.netRxErrors, counter, float64(it.rxErrors), it.name)
			extra(d.netRxDropped, counter, float64(it.rxDrops), it.name)
			extra(d.netTxBytes, counter, float64(it.txBytes), it.name)
			extra(d.netTxPackets, counter, float64(it.txPackets), it.name)
			extra(d.netTxErrors, counter, float64(it.txErrors), it.name)
			extra(d.netTxDropped, counter, float64(it.txDrops), it.name)
		}

		m(d.processes, gauge, float64(s.Processes))
		m(d.threads, gauge, float64(s.Pids.Current))
		m(d.threadsMax, gauge, float64(s.Pids.Limit))
		m(d.lastSeen, gauge, float64(ct.lastRead.Unix()))
		if !ct.started.IsZero() {
			m(d.startTime, gauge, float64(ct.started.Unix()))
		}
		if !ct.created.IsZero() {
			m(d.creationTime, gauge, float64(ct.created.Unix()))
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
