// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
)

// fam names one of the container families.
type fam uint8

const (
	fCPUUsage fam = iota
	fCPUUser
	fCPUSystem
	fCFSPeriods
	fCFSThrottledPeriods
	fCFSThrottledSeconds
	fSpecCPUQuota
	fSpecCPUPeriod
	fSpecCPUShares

	fMemUsage
	fMemWorkingSet
	fMemRSS
	fMemCache
	fMemMapped
	fMemSwap
	fMemMaxUsage
	fMemFailcnt
	fMemActiveFile
	fMemInactiveFile
	fOOMEvents
	fSpecMemLimit
	fSpecMemReservation
	fSpecMemSwap

	fFSReadsBytes
	fFSWritesBytes
	fFSReads
	fFSWrites
	fFSUsage

	fNetRxBytes
	fNetRxPackets
	fNetRxErrors
	fNetRxDropped
	fNetTxBytes
	fNetTxPackets
	fNetTxErrors
	fNetTxDropped

	fPSICPUWaiting
	fPSICPUStalled
	fPSIMemWaiting
	fPSIMemStalled
	fPSIIOWaiting
	fPSIIOStalled

	fProcesses
	fThreads
	fThreadsMax
	fLastSeen
	fStartTime
	fCreationTime

	fDockerUp
	fKnown
	fEvicted
	fUnread
	fFromEBPF

	numFams
)

// family is a family's name, help and type, and the label its series carry
// beyond the container's own (id, name, image, container_label_*).
type family struct {
	name, help string
	typ        prometheus.ValueType
	// extra is "cpu", "device", "interface" or "family"; "-" for no
	// container labels, "-name" for name alone.
	extra string
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// families are cAdvisor's container families, with its names, help, units
// and labels, plus crmon's own health gauges.
var families = [numFams]family{
	fCPUUsage:            {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, "cpu"},
	fCPUUser:             {"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, ""},
	fCPUSystem:           {"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, ""},
	fCFSPeriods:          {"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, ""},
	fCFSThrottledPeriods: {"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, ""},
	fCFSThrottledSeconds: {"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, ""},
	fSpecCPUQuota:        {"container_spec_cpu_quota", "CPU quota of the container.", gauge, ""},
	fSpecCPUPeriod:       {"container_spec_cpu_period", "CPU period of the container.", gauge, ""},
	fSpecCPUShares:       {"container_spec_cpu_shares", "CPU share of the container.", gauge, ""},

	fMemUsage:           {"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", gauge, ""},
	fMemWorkingSet:      {"container_memory_working_set_bytes", "Current working set in bytes.", gauge, ""},
	fMemRSS:             {"container_memory_rss", "Size of RSS in bytes.", gauge, ""},
	fMemCache:           {"container_memory_cache", "Number of bytes of page cache memory.", gauge, ""},
	fMemMapped:          {"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, ""},
	fMemSwap:            {"container_memory_swap", "Container swap usage in bytes.", gauge, ""},
	fMemMaxUsage:        {"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", gauge, ""},
	fMemFailcnt:         {"container_memory_failcnt", "Number of memory usage hits limits", counter, ""},
	fMemActiveFile:      {"container_memory_total_active_file_bytes", "Current total active file in bytes.", gauge, ""},
	fMemInactiveFile:    {"container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", gauge, ""},
	fOOMEvents:          {"container_oom_events_total", "Count of out of memory events observed for the container", counter, ""},
	fSpecMemLimit:       {"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, ""},
	fSpecMemReservation: {"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, ""},
	fSpecMemSwap:        {"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, ""},

	fFSReadsBytes:  {"container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, "device"},
	fFSWritesBytes: {"container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, "device"},
	fFSReads:       {"container_fs_reads_total", "Cumulative count of reads completed", counter, "device"},
	fFSWrites:      {"container_fs_writes_total", "Cumulative count of writes completed", counter, "device"},
	fFSUsage:       {"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, "device"},

	fNetRxBytes:   {"container_network_receive_bytes_total", "Cumulative count of bytes received", counter, "interface"},
	fNetRxPackets: {"container_network_receive_packets_total", "Cumulative count of packets received", counter, "interface"},
	fNetRxErrors:  {"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", counter, "interface"},
	fNetRxDropped: {"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", counter, "interface"},
	fNetTxBytes:   {"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", counter, "interface"},
	fNetTxPackets: {"container_network_transmit_packets_total", "Cumulative count of packets transmitted", counter, "interface"},
	fNetTxErrors:  {"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", counter, "interface"},
	fNetTxDropped: {"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", counter, "interface"},

	fPSICPUWaiting: {"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, ""},
	fPSICPUStalled: {"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, ""},
	fPSIMemWaiting: {"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, ""},
	fPSIMemStalled: {"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, ""},
	fPSIIOWaiting:  {"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, ""},
	fPSIIOStalled:  {"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, ""},

	fProcesses:    {"container_processes", "Number of processes running inside the container.", gauge, ""},
	fThreads:      {"container_threads", "Number of threads running inside the container", gauge, ""},
	fThreadsMax:   {"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", gauge, ""},
	fLastSeen:     {"container_last_seen", "Last time a container was seen by the exporter", gauge, ""},
	fStartTime:    {"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, ""},
	fCreationTime: {"container_creation_time_seconds", "Container creation time since unix epoch in seconds.", gauge, ""},

	fDockerUp: {"crmon_docker_up", "Whether the Docker engine answered crmon's last request (1) or not (0).", gauge, "-"},
	fKnown:    {"crmon_containers_known", "Containers crmon holds, including removed ones whose final values it still serves.", gauge, "-"},
	fEvicted:  {"crmon_containers_removed_evicted_total", "Removed containers dropped before removed_retention was over, to keep the number held bounded.", counter, "-"},
	fUnread:   {"crmon_containers_unread_total", "Containers that ended without crmon reading their final cgroup counters (the runtime removed the cgroup first), by what stands in for them: the eBPF probes' counts (ebpf), the last tick's counters (last_read), or nothing (none).", counter, "-fallback"},
	fFromEBPF: {"crmon_container_counters_from_ebpf", "1 for each container_* counter family whose series of this container carry the eBPF probes' per-cgroup counts: its cgroup went before crmon read its final counters, or the probes counted more block I/O bytes than cgroupfs (a cgroup v1 host where no blkio throttle rule exists counts none); other families come from cgroupfs.", gauge, "family"},
}

// textOrder lists the families by name, the order /metrics writes them in.
var textOrder = func() []fam {
	out := make([]fam, numFams)
	for i := range out {
		out[i] = fam(i)
	}
	slices.SortFunc(out, func(a, b fam) int { return strings.Compare(families[a].name, families[b].name) })
	return out
}()

// descs are the families' descriptors for client_golang, with the
// collector's container_label_* names.
type descs [numFams]*prometheus.Desc

func newDescs(labelNames []string) descs {
	base := append([]string{"id", "name", "image"}, labelNames...)
	var d descs
	for i, f := range families {
		var labels []string
		switch {
		case strings.HasPrefix(f.extra, "-"):
			if f.extra != "-" {
				labels = []string{f.extra[1:]}
			}
		case f.extra == "":
			labels = base
		default:
			labels = append(append([]string(nil), base...), f.extra)
		}
		d[i] = prometheus.NewDesc(f.name, f.help, labels, nil)
	}
	return d
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	// Every family is described, the optional ones too: describing a
	// family that is never collected is allowed.
	for _, x := range d {
		ch <- x
	}
}

// series calls emit for every series of the last Update, container by
// container. c.mu must be held.
func (c *Collector) series(emit func(f fam, l *labelSet, v float64)) {
	g := c.groups
	up := 0.0
	if c.up {
		up = 1
	}
	emit(fDockerUp, &noLabels, up)
	emit(fKnown, &noLabels, float64(len(c.byID)-c.pending))
	emit(fEvicted, &noLabels, float64(c.evicted))
	for i, l := range unreadLabels {
		emit(fUnread, l, float64(c.unread[i]))
	}

	for _, ct := range c.scrapeOrder {
		if !c.exported(ct) || ct.lp == nil {
			continue
		}
		lp := ct.lp
		emit := emit
		if !ct.running() {
			// Gone: its counters keep their final values, its gauges
			// would count it beside its replacement. Where its counters
			// came from goes with them.
			all := emit
			emit = func(f fam, l *labelSet, v float64) {
				if families[f].typ == counter || f == fFromEBPF {
					all(f, l, v)
				}
			}
		}
		if !ct.haveStats {
			// Never read from cgroupfs: what the probes counted.
			c.probeSeries(ct, emit)
			continue
		}
		m := func(f fam, v float64) { emit(f, lp.base, v) }
		s := &ct.stats

		cpu, cpuEBPF := s.CPU.UsageNanos, false
		if ct.probeHasCPU && ct.probeCPU > cpu {
			cpu, cpuEBPF = ct.probeCPU, true
		}
		emit(fCPUUsage, lp.cpuTotal, float64(cpu)/1e9)
		if cpuEBPF {
			emit(fFromEBPF, lp.fromEBPF[fCPUUsage], 1)
		}
		m(fCPUUser, float64(s.CPU.UserNanos)/1e9)
		m(fCPUSystem, float64(s.CPU.SystemNanos)/1e9)
		m(fCFSPeriods, float64(s.CPU.Periods))
		m(fCFSThrottledPeriods, float64(s.CPU.ThrottledPeriods))
		m(fCFSThrottledSeconds, float64(s.CPU.ThrottledNanos)/1e9)
		// cAdvisor leaves out the quota when there is none.
		if s.CPU.QuotaMicros > 0 {
			m(fSpecCPUQuota, float64(s.CPU.QuotaMicros))
		}
		if s.CPU.PeriodMicros > 0 {
			m(fSpecCPUPeriod, float64(s.CPU.PeriodMicros))
		}
		m(fSpecCPUShares, float64(s.CPU.Shares))

		m(fMemUsage, float64(s.Memory.Usage))
		m(fMemWorkingSet, float64(s.Memory.WorkingSet))
		m(fMemRSS, float64(s.Memory.RSS))
		m(fMemCache, float64(s.Memory.Cache))
		m(fMemMaxUsage, float64(s.Memory.MaxUsage))
		m(fMemFailcnt, float64(s.Memory.Failcnt))
		m(fOOMEvents, float64(s.Memory.OOMEvents))
		m(fSpecMemLimit, float64(s.Memory.Limit))
		if g.memoryDetail {
			m(fMemMapped, float64(s.Memory.MappedFile))
			m(fMemSwap, float64(s.Memory.Swap))
			m(fMemActiveFile, float64(s.Memory.ActiveFile))
			m(fMemInactiveFile, float64(s.Memory.InactiveFile))
		}
		if g.specDetail {
			m(fSpecMemReservation, float64(s.Memory.ReservationLimit))
			m(fSpecMemSwap, float64(s.Memory.SwapLimit))
			m(fThreadsMax, float64(s.Pids.Limit))
			if !ct.created.IsZero() {
				m(fCreationTime, float64(ct.created.Unix()))
			}
		}

		var readEBPF, writeEBPF bool
		for i := range s.IO.Devices {
			io := &s.IO.Devices[i]
			l, ok := lp.device[devKey(io.Major, io.Minor)]
			if !ok {
				continue
			}
			rb, wb := io.ReadBytes, io.WriteBytes
			if p, ok := ct.probeBytes(io.Major, io.Minor); ok {
				if p.ReadBytes > rb {
					rb, readEBPF = p.ReadBytes, true
				}
				if p.WriteBytes > wb {
					wb, writeEBPF = p.WriteBytes, true
				}
			}
			emit(fFSReadsBytes, l, float64(rb))
			emit(fFSWritesBytes, l, float64(wb))
			emit(fFSReads, l, float64(io.Reads))
			emit(fFSWrites, l, float64(io.Writes))
		}
		for _, p := range ct.probeIO {
			if ioDeviceIn(s.IO.Devices, p.Major, p.Minor) {
				continue
			}
			if l, ok := lp.device[devKey(p.Major, p.Minor)]; ok {
				emit(fFSReadsBytes, l, float64(p.ReadBytes))
				emit(fFSWritesBytes, l, float64(p.WriteBytes))
				readEBPF, writeEBPF = true, true
			}
		}
		if readEBPF {
			emit(fFromEBPF, lp.fromEBPF[fFSReadsBytes], 1)
		}
		if writeEBPF {
			emit(fFromEBPF, lp.fromEBPF[fFSWritesBytes], 1)
		}
		if ct.sizeRw >= 0 && lp.fs != nil {
			emit(fFSUsage, lp.fs, float64(ct.sizeRw))
		}
		for i := range ct.net {
			it := &ct.net[i]
			l, ok := lp.iface[it.name]
			if !ok {
				continue
			}
			emit(fNetRxBytes, l, float64(it.rxBytes))
			emit(fNetRxPackets, l, float64(it.rxPackets))
			emit(fNetRxErrors, l, float64(it.rxErrors))
			emit(fNetRxDropped, l, float64(it.rxDrops))
			emit(fNetTxBytes, l, float64(it.txBytes))
			emit(fNetTxPackets, l, float64(it.txPackets))
			emit(fNetTxErrors, l, float64(it.txErrors))
			emit(fNetTxDropped, l, float64(it.txDrops))
		}

		if g.pressure && ct.paths.V2 != "" {
			ps := &s.Pressure
			m(fPSICPUWaiting, float64(ps.CPUSome)/1e6)
			m(fPSICPUStalled, float64(ps.CPUFull)/1e6)
			m(fPSIMemWaiting, float64(ps.MemorySome)/1e6)
			m(fPSIMemStalled, float64(ps.MemoryFull)/1e6)
			m(fPSIIOWaiting, float64(ps.IOSome)/1e6)
			m(fPSIIOStalled, float64(ps.IOFull)/1e6)
		}

		m(fProcesses, float64(s.Processes))
		m(fThreads, float64(s.Pids.Current))
		m(fLastSeen, float64(ct.lastRead.Unix()))
		if !ct.started.IsZero() {
			m(fStartTime, float64(ct.started.Unix()))
		}
	}
}

// probeSeries emits the series of a container that was never read from
// cgroupfs: the probes' counts, in the families they stand in for, and
// which those are. c.mu must be held.
func (c *Collector) probeSeries(ct *container, emit func(f fam, l *labelSet, v float64)) {
	lp := ct.lp
	if ct.probeHasCPU {
		emit(fCPUUsage, lp.cpuTotal, float64(ct.probeCPU)/1e9)
		emit(fFromEBPF, lp.fromEBPF[fCPUUsage], 1)
	}
	any := false
	for _, p := range ct.probeIO {
		if l, ok := lp.device[devKey(p.Major, p.Minor)]; ok {
			emit(fFSReadsBytes, l, float64(p.ReadBytes))
			emit(fFSWritesBytes, l, float64(p.WriteBytes))
			any = true
		}
	}
	if any {
		emit(fFromEBPF, lp.fromEBPF[fFSReadsBytes], 1)
		emit(fFromEBPF, lp.fromEBPF[fFSWritesBytes], 1)
	}
}

// ioDeviceIn reports whether devs has the device.
func ioDeviceIn(devs []cgroups.IODevice, maj, min uint32) bool {
	for i := range devs {
		if devs[i].Major == maj && devs[i].Minor == min {
			return true
		}
	}
	return false
}

// Collect implements prometheus.Collector from the last Update, without I/O.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	// One allocation for every series of the scrape; pointers into an
	// outgrown array stay valid.
	ms := make([]fastMetric, 0, 2+len(c.scrapeOrder)*48)
	c.series(func(f fam, l *labelSet, v float64) {
		ms = append(ms, fastMetric{desc: c.descs[f], labels: l.pairs, typ: families[f].typ, v: v})
		ch <- &ms[len(ms)-1]
	})
}

// textSample is one series of a scrape, before it is written.
type textSample struct {
	f fam
	l *labelSet
	v float64
}

// textScratch keeps a scrape's samples between scrapes: as collected, and
// grouped by family.
type textScratch struct{ in, out []textSample }

var textScratchPool = sync.Pool{New: func() any { return new(textScratch) }}

// textRank is each family's place in textOrder.
var textRank = func() (r [numFams]int) {
	for i, f := range textOrder {
		r[f] = i
	}
	return r
}()

// AppendText implements collect.TextAppender: the series of Collect, in
// the text format, family by family. A sample line is the family's name,
// the container's labels rendered when it was first seen, and the value.
func (c *Collector) AppendText(b []byte) []byte {
	sc := textScratchPool.Get().(*textScratch)
	defer textScratchPool.Put(sc)
	in := c.textSamples(sc.in[:0])
	// Grouped by family in textOrder, container order kept within each:
	// a counting sort, one pass to count and one to place.
	var at [numFams + 1]int
	for _, s := range in {
		at[textRank[s.f]+1]++
	}
	for i := 1; i <= int(numFams); i++ {
		at[i] += at[i-1]
	}
	out := slices.Grow(sc.out[:0], len(in))[:len(in)]
	for _, s := range in {
		r := textRank[s.f]
		out[at[r]] = s
		at[r]++
	}
	for i, s := range out {
		fm := &families[s.f]
		if i == 0 || out[i-1].f != s.f {
			b = collect.AppendHeader(b, fm.name, fm.help, fm.typ)
		}
		b = collect.AppendSample(b, fm.name, s.l.text, s.v)
	}
	sc.in, sc.out = in, out
	return b
}

// textSamples appends the series of the last Update to in.
func (c *Collector) textSamples(in []textSample) []textSample {
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.series(func(f fam, l *labelSet, v float64) { in = append(in, textSample{f, l, v}) })
	return in
}

// fastMetric is a series whose label pairs are built once per container
// and shared by every scrape, where prometheus.NewConstMetric would build
// and sort them for every series of every scrape. The pairs are never
// changed in place: new metadata gets new pairs.
type fastMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	typ    prometheus.ValueType
	v      float64
}

func (m *fastMetric) Desc() *prometheus.Desc { return m.desc }

func (m *fastMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.typ == prometheus.CounterValue {
		out.Counter = &dto.Counter{Value: &m.v}
	} else {
		out.Gauge = &dto.Gauge{Value: &m.v}
	}
	return nil
}

// labelSet is one series' labels, built once: sorted pairs for Collect and
// their text rendering for AppendText.
type labelSet struct {
	pairs []*dto.LabelPair
	text  string
	// series are its series by family, made when AppendSeries first
	// serves them (series.go).
	series *[numFams]*collect.Series
}

// noLabels is the label set of the families without container labels.
var noLabels labelSet

// newLabelSet builds a label set from name/value pairs.
func newLabelSet(kv ...string) *labelSet {
	pairs := make([]*dto.LabelPair, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		n, v := kv[i], collect.ValidLabelValue(kv[i+1])
		pairs = append(pairs, &dto.LabelPair{Name: &n, Value: &v})
	}
	slices.SortFunc(pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return &labelSet{pairs: pairs, text: string(collect.AppendLabels(nil, pairs))}
}

// with is l with one pair more. It shares l's pairs, which are never
// changed in place: a container's four to six label sets each had their
// own copies of its labels' pairs, 1.1 kB a container.
func (l *labelSet) with(name, value string) *labelSet {
	value = collect.ValidLabelValue(value)
	i, _ := slices.BinarySearchFunc(l.pairs, name, func(p *dto.LabelPair, n string) int { return strings.Compare(p.GetName(), n) })
	// At their exact size, as newLabelSet makes them: client_golang's
	// wrapping registerers append to a metric's pairs, which must not
	// write into spare capacity every scrape shares.
	pairs := make([]*dto.LabelPair, len(l.pairs)+1)
	copy(pairs, l.pairs[:i])
	pairs[i] = &dto.LabelPair{Name: &name, Value: &value}
	copy(pairs[i+1:], l.pairs[i:])
	return &labelSet{pairs: pairs, text: string(collect.AppendLabels(nil, pairs))}
}

// labelSets are one container's label sets: the base (id, name, image,
// container_label_*), and the base plus cpu, device or interface.
type labelSets struct {
	base, cpuTotal, fs *labelSet
	device             map[uint64]*labelSet
	iface              map[string]*labelSet
	// fromEBPF are crmon_container_counters_from_ebpf's, by family, made
	// once the probes' counts stand in for the container's.
	fromEBPF map[fam]*labelSet
}

func devKey(major, minor uint32) uint64 { return uint64(major)<<32 | uint64(minor) }

// updateLabels rebuilds ct's label sets when its metadata changed and adds
// any new device or interface. c.mu must be held for writing.
func (c *Collector) updateLabels(ct *container) {
	ct.newKeys = false
	if ct.lp != nil && ct.lpStale && slices.Equal(c.baseLabels(ct), ct.baseKV) && (ct.lp.fs != nil) == (c.fsDevice != "" || ct.sizeRw >= 0) {
		// Metadata read again with the same values (an engine event, a
		// new size): the label sets stay, and with them the identity of
		// the container's series (AppendSeries).
		ct.lpStale = false
	}
	if ct.lp == nil || ct.lpStale {
		kv := c.baseLabels(ct)
		ct.baseKV = kv
		base := newLabelSet(kv...)
		lp := &labelSets{
			base:     base,
			cpuTotal: base.with("cpu", "total"),
			device:   map[uint64]*labelSet{},
			iface:    map[string]*labelSet{},
		}
		if c.fsDevice != "" || ct.sizeRw >= 0 {
			lp.fs = base.with("device", c.fsDevice)
		}
		ct.lp, ct.lpStale = lp, false
		c.relabeled = true
	}
	base := ct.lp.base
	for i := range ct.stats.IO.Devices {
		io := &ct.stats.IO.Devices[i]
		k := devKey(io.Major, io.Minor)
		if _, ok := ct.lp.device[k]; !ok {
			ct.lp.device[k] = base.with("device", c.devName(io.Major, io.Minor))
		}
	}
	for i := range ct.net {
		if _, ok := ct.lp.iface[ct.net[i].name]; !ok {
			ct.lp.iface[ct.net[i].name] = base.with("interface", ct.net[i].name)
		}
	}
	if !ct.fromProbes && len(ct.probeIO) == 0 {
		return
	}
	for _, p := range ct.probeIO {
		k := devKey(p.Major, p.Minor)
		if _, ok := ct.lp.device[k]; !ok {
			ct.lp.device[k] = base.with("device", c.devName(p.Major, p.Minor))
		}
	}
	if ct.lp.fromEBPF == nil {
		ct.lp.fromEBPF = make(map[fam]*labelSet, len(probeFamilies))
		for _, f := range probeFamilies {
			ct.lp.fromEBPF[f] = base.with("family", families[f].name)
		}
	}
}

// baseLabels are the names and values of ct's base labels: id, name,
// image and container_label_*.
func (c *Collector) baseLabels(ct *container) []string {
	kv := []string{"id", ct.cgroupPath, "name", ct.name, "image", ct.image}
	for i, n := range c.labelNames {
		// A container the engine has not described yet (pending, not
		// served) has no label values: empty until setMeta.
		v := ""
		if i < len(ct.labelValues) {
			v = ct.labelValues[i]
		}
		kv = append(kv, n, v)
	}
	return kv
}

// exported reports whether ct's cgroup series are served: while it runs,
// and its counters for RemovedRetention after it stopped or was removed,
// so that scrapes at a slower interval than the tick still see their
// final values. c.mu must be held.
func (c *Collector) exported(ct *container) bool {
	if (!ct.haveStats && !ct.fromProbes) || ct.pending || c.awaitingProbes(ct) {
		return false
	}
	return ct.running() || c.lastUpdate.Sub(ct.goneAt) <= c.opts.RemovedRetention
}
