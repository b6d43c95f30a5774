// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// CollectorOptions selects what the "ebpf" collector exports.
type CollectorOptions struct {
	// Lookup names the containers that own cgroups; nil leaves name and
	// image empty.
	Lookup collect.ContainerLookup
	// Include and Exclude are path.Match globs on the cgroup path
	// ("/docker/*"). A cgroup is exported when it matches an Include
	// pattern (or Include is empty) and no Exclude pattern.
	Include, Exclude []string
	// MaxSeries caps the number of cgroups exported per update; the rest
	// (the last by path) are counted in crmon_cgroups_series_cap_dropped_total.
	// 0 means 1000.
	MaxSeries int
	// RemovedRetention is how long a removed cgroup's counters are
	// exported after it was reaped, with their final values and the name
	// and image it had; 0 exports them until the next update.
	RemovedRetention time.Duration
	Logger           *slog.Logger
}

// ValidatePatterns returns an error naming the first malformed glob.
func ValidatePatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, "/"); err != nil {
			return fmt.Errorf("cgroup pattern %q: %w", p, err)
		}
	}
	return nil
}

// exported is one cgroup as the last update exports it, with its label
// values made valid (collect.ValidLabelValue): anyone allowed to make a
// cgroup chooses its name. stats points into the snapshot it was read
// from, which is never changed: a copy of each cgroup's stats was most of
// what a tick allocated beside 150 idle containers (80 of 230 kB).
type exported struct {
	stats *CgroupStats
	*cgroupLabels
}

// cgroupLabels are an exported cgroup's label values, and their text as
// AppendText writes them, made when the cgroup is first exported under a
// name and image and kept while it is.
type cgroupLabels struct {
	path string
	// ref is the container's name and image as the lookup gave them;
	// named says whether one did.
	ref             collect.ContainerRef
	named           bool
	id, name, image string
	// text is `id="…",image="…",name="…"`.
	text string
	// series are the cgroup's series as AppendSeries gives them, made
	// the first time each is served; the collector's seriesMu guards it.
	series map[seriesKey][]*collect.Series
}

func newCgroupLabels(path string, ref collect.ContainerRef, named bool) *cgroupLabels {
	l := &cgroupLabels{path: path, ref: ref, named: named, id: collect.ValidLabelValue(path),
		name: collect.ValidLabelValue(ref.Name), image: collect.ValidLabelValue(ref.Image)}
	b := collect.AppendLabel(nil, "id", l.id)
	b = append(b, ',')
	b = collect.AppendLabel(b, "image", l.image)
	b = append(b, ',')
	l.text = string(collect.AppendLabel(b, "name", l.name))
	return l
}

type collector struct {
	p    *Probes
	opts CollectorOptions
	log  *slog.Logger

	mu      sync.Mutex
	snap    *Snapshot
	cgroups []exported
	capped  uint64
	// labels are the label values of each cgroup the last update
	// exported (nil for the others), by its index in the snapshots of
	// layout, and sel whether each is selected (Include, Exclude): while
	// the probes' layout stays, a tick neither matches patterns nor
	// hashes paths. A removed cgroup keeps the container name and image
	// it had while it ran after the containers collector forgot its
	// container, so its series do not end and restart under name="".
	// Only Update uses them.
	layout uint64
	labels []*cgroupLabels
	sel    []bool
	// built caches the metrics of the last Update, built by the first
	// scrape after it: scrapes are rarer than ticks, and two scrapes of
	// one tick share the work.
	built []prometheus.Metric

	// seriesMu guards the series AppendSeries keeps: own are those of the
	// collector's own families (probes, maps, programs, drops: sets fixed
	// by the code), each cgroup's are in its labels.
	seriesMu sync.Mutex
	own      map[seriesKey][]*collect.Series

	// readMu guards the tick's reading: CgroupActivity (the containers
	// collector, earlier in the tick) and Update share one read of the
	// maps per tick, made by whichever asks first; act is its activity.
	readMu   sync.Mutex
	readAt   time.Time
	readSnap *Snapshot
	readErr  error
	act      collect.Activity
	actOK    bool

	cpu, wait, waitHist, switches                              *family
	blockBytes, blockOps, blockHist                            *family
	netBytes, netPackets                                       *family
	up, downInfo, mapMem, progRuns, progTime, drops, nExported *family
	cappedTotal, evicted, reads                                *family
}

// NewCollector returns the "ebpf" collector over p, which may be nil when
// the probes could not be created at all (then every probe is down).
func NewCollector(p *Probes, opts CollectorOptions) collect.Collector {
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// A cgroup's families have its id, image and name, and may have
	// labels before them (by name) and after.
	cg := func(name, typ, help string, before, after []string) *family {
		return newFamily(name, typ, help, true, before, after)
	}
	own := func(name, typ, help string, labels ...string) *family {
		return newFamily(name, typ, help, false, nil, labels)
	}
	return &collector{
		p: p, opts: opts, log: opts.Logger,
		cpu: cg("crmon_container_cpu_seconds_total", counter,
			"CPU time of the cgroup's tasks, measured at context switch (se.sum_exec_runtime).", nil, nil),
		wait: cg("crmon_container_runqueue_wait_seconds_total", counter,
			"Time the cgroup's tasks spent runnable, waiting for a CPU.", nil, nil),
		waitHist: cg("crmon_container_runqueue_latency_seconds", histogram,
			"Run-queue latency of the cgroup's tasks, from wakeup or preemption to running.", nil, nil),
		switches: cg("crmon_container_context_switches_total", counter,
			"Context switches of the cgroup's tasks by type.", nil, []string{"type"}),
		blockBytes: cg("crmon_container_block_io_bytes_total", counter,
			"Block I/O bytes charged to the cgroup (the bio's blkcg) by device and op.", []string{"device"}, []string{"op"}),
		blockOps: cg("crmon_container_block_io_operations_total", counter,
			"Completed block I/O requests charged to the cgroup by device and op.", []string{"device"}, []string{"op"}),
		blockHist: cg("crmon_container_block_io_latency_seconds", histogram,
			"Block I/O latency from issue to completion by op.", nil, []string{"op"}),
		netBytes: cg("crmon_container_network_bytes_total", counter,
			"Network bytes of the cgroup's sockets (IP packet length) by direction.", []string{"direction"}, nil),
		netPackets: cg("crmon_container_network_packets_total", counter,
			"Network packets of the cgroup's sockets by direction.", []string{"direction"}, nil),
		up: own("crmon_probe_up", gauge,
			"Whether the eBPF probe is loaded and attached.", "probe"),
		downInfo: own("crmon_probe_down_info", gauge,
			"Why an eBPF probe is not loaded (a missing capability, a kernel feature); 1 for each probe that is down.", "probe", "reason"),
		mapMem: own("crmon_bpf_map_memory_bytes", gauge,
			"Kernel memory of a BPF map.", "map"),
		progRuns: own("crmon_bpf_program_run_count_total", counter,
			"Runs of a BPF program (BPF run-time statistics).", "program"),
		progTime: own("crmon_bpf_program_run_seconds_total", counter,
			"Time spent in a BPF program (BPF run-time statistics).", "program"),
		drops: own("crmon_bpf_dropped_events_total", counter,
			"Updates the probes could not make, by reason.", "probe", "reason"),
		nExported: own("crmon_cgroups_exported", gauge,
			"Cgroups exported by the last update."),
		cappedTotal: own("crmon_cgroups_series_cap_dropped_total", counter,
			"Cgroups left out of an update by the series cap, summed over updates."),
		reads: own("crmon_bpf_map_reads_total", counter,
			"Reads of every probe map: one per collection, plus the exact reads a test session takes at its start and stop."),
		evicted: own("crmon_cgroups_removed_evicted_total", counter,
			"Removed cgroups whose final counts were forgotten before their retention was over, to keep the number held bounded."),
	}
}

var (
	_ collect.CgroupCounter  = (*collector)(nil)
	_ collect.CgroupActivity = (*collector)(nil)
)

func (c *collector) Name() string { return "ebpf" }

// Update reads the probes once.
func (c *collector) Update(_ context.Context, now time.Time) error {
	if c.p == nil {
		return collect.ErrNoData
	}
	snap, err := c.reading(now)
	if snap == nil {
		return err
	}
	c.export(snap, now)
	return err
}

// export makes snap, read at now, the one the collector serves: which of
// its cgroups are exported, and under which labels.
func (c *collector) export(snap *Snapshot, now time.Time) {
	if snap.layout == 0 || snap.layout != c.layout || len(c.sel) != len(snap.Cgroups) {
		c.relayout(snap)
	}
	out := make([]exported, 0, min(len(snap.Cgroups), c.opts.MaxSeries))
	var capped uint64
	repaired := false
	for i := range snap.Cgroups {
		cg := &snap.Cgroups[i]
		prev := c.labels[i]
		c.labels[i] = nil
		// A removed cgroup's counters are served for the retention, then
		// dropped (the probes keep them longer, for test runs).
		if cg.Removed && now.Sub(cg.RemovedAt) > c.opts.RemovedRetention {
			continue
		}
		if !c.sel[i] || !cg.Active() {
			continue
		}
		if len(out) >= c.opts.MaxSeries {
			capped++
			continue
		}
		l := prev
		var ref collect.ContainerRef
		named := l != nil && l.named
		if named {
			ref = l.ref
		}
		if c.opts.Lookup != nil {
			if r, found := c.opts.Lookup.LookupCgroup(cg.Path); found && (r.Name != "" || !named) {
				ref, named = collect.ContainerRef{Name: r.Name, Image: r.Image}, true
			}
		}
		if l == nil || l.named != named || l.ref.Name != ref.Name || l.ref.Image != ref.Image {
			l = newCgroupLabels(cg.Path, ref, named)
		}
		c.labels[i] = l
		repaired = repaired || l.id != cg.Path
		out = append(out, exported{stats: cg, cgroupLabels: l})
	}
	if repaired {
		out = dedupIDs(out, c.log)
	}
	c.mu.Lock()
	c.capped += capped
	c.snap = snap
	c.cgroups = out
	c.built = nil
	c.mu.Unlock()
}

// relayout indexes the labels the last update exported and whether each
// cgroup is selected by the order of snap's cgroups.
func (c *collector) relayout(snap *Snapshot) {
	byPath := make(map[string]*cgroupLabels, len(c.labels))
	for _, l := range c.labels {
		if l != nil {
			byPath[l.path] = l
		}
	}
	c.layout = snap.layout
	c.labels = make([]*cgroupLabels, len(snap.Cgroups))
	c.sel = make([]bool, len(snap.Cgroups))
	for i := range snap.Cgroups {
		p := snap.Cgroups[i].Path
		c.labels[i], c.sel[i] = byPath[p], c.selected(p)
	}
}

// reading returns the probes' reading for the tick at now, reading the
// maps if this tick has not yet, and sums each cgroup's activity.
func (c *collector) reading(now time.Time) (*Snapshot, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.readSnap != nil && c.readAt.Equal(now) {
		return c.readSnap, c.readErr
	}
	snap, err := c.p.Read(now)
	c.readAt, c.readSnap, c.readErr = now, snap, err
	c.act, c.actOK = collect.Activity{}, false
	if snap == nil {
		return snap, err
	}
	// Without the sched probe, a cgroup that only computes is not seen.
	if !snap.OnCPUKnown || !c.p.Up(ProbeSched) {
		return snap, err
	}
	// Its removed cgroups' counts no longer move. Left out, a parent's
	// sum drops once, when one goes: one read in full.
	live := make([]int, 0, len(snap.Cgroups))
	for i := range snap.Cgroups {
		if !snap.Cgroups[i].Removed {
			live = append(live, i)
		}
	}
	act := collect.Activity{
		Counts: collect.MakeCounts(len(live), func(i int) (string, uint64) {
			cg := &snap.Cgroups[live[i]]
			return cg.Path, activityCount(cg)
		}),
		OnCPU: make(map[string]bool, len(snap.OnCPU)),
		Block: c.p.Up(ProbeBlock),
		Net:   c.p.Up(ProbeNet),
	}
	for _, p := range snap.OnCPU {
		for ; !act.OnCPU[p]; p = path.Dir(p) {
			act.OnCPU[p] = true
			if p == "/" || p == "." || p == "" {
				break
			}
		}
	}
	c.act, c.actOK = act, true
	return snap, err
}

// activityCount sums a cgroup's counts of events that only happen when
// it does something: context switches, block requests (their bytes,
// counted as they are issued, and their completions: writeback charged
// to the cgroup moves these without any of its tasks running, and a
// request whose completion the probe lost still moves its bytes),
// packets. The sum moves when one of them does (a requeued request's
// bytes go back until it is issued again: a change all the same).
func activityCount(cg *CgroupStats) uint64 {
	n := cg.VoluntarySwitches + cg.InvoluntarySwitches + cg.NetReceivePackets + cg.NetTransmitPackets
	for i := range cg.Block {
		n += cg.Block[i].Bytes + cg.Block[i].Ops
	}
	return n
}

// CgroupActivity implements collect.CgroupActivity from the tick's
// reading.
func (c *collector) CgroupActivity(now time.Time) (collect.Activity, bool) {
	if c.p == nil {
		return collect.Activity{}, false
	}
	if snap, _ := c.reading(now); snap == nil {
		return collect.Activity{}, false
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if !c.actOK || !c.readAt.Equal(now) {
		return collect.Activity{}, false
	}
	return c.act, true
}

// ProbeSnapshot is the probes' read of the last Update: every cgroup's
// counters, removed ones included, unfiltered. It is shared and never
// changed; the agent publishes it with the tick's sample (agent.Sample's
// Probes), so that no consumer reads the maps again.
func (c *collector) ProbeSnapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// dedupIDs keeps the first of the cgroups whose repaired ids coincide
// ("/a\xff" and "/a\xfe" both become "/a\uFFFD"): two series with one
// label set would fail the scrape's checks. The others are left out.
func dedupIDs(out []exported, log *slog.Logger) []exported {
	seen := make(map[string]struct{}, len(out))
	kept := out[:0]
	for _, e := range out {
		if _, dup := seen[e.id]; dup {
			log.Debug("cgroup left out: its name, made valid UTF-8, is another cgroup's", "id", e.id)
			continue
		}
		seen[e.id] = struct{}{}
		kept = append(kept, e)
	}
	return kept
}

func (c *collector) selected(p string) bool {
	if len(c.opts.Include) > 0 {
		ok := false
		for _, pat := range c.opts.Include {
			if m, _ := path.Match(pat, p); m {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, pat := range c.opts.Exclude {
		if m, _ := path.Match(pat, p); m {
			return false
		}
	}
	return true
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.families() {
		ch <- f.desc
	}
}

// families are the collector's families in the order it serves them.
func (c *collector) families() []*family {
	return []*family{c.up, c.downInfo, c.nExported, c.cappedTotal, c.reads, c.evicted, c.mapMem,
		c.progRuns, c.progTime, c.drops, c.cpu, c.wait, c.waitHist, c.switches, c.blockBytes, c.blockOps,
		c.blockHist, c.netBytes, c.netPackets}
}

// A log2 ns histogram's Prometheus buckets have upper bounds 2^b ns for b
// in [firstBucket, NumBuckets-2]: 1.024e-06 s up to 4.29 s; everything
// above is only in +Inf, bucket NumBuckets-1.
const firstBucket = 10

// promBound is the upper bound in seconds of Prometheus bucket b.
func promBound(b int) float64 {
	if b == NumBuckets-1 {
		return math.Inf(1)
	}
	return float64(int64(1)<<b) / 1e9
}

// promCounts returns the cumulative count of each of h's Prometheus
// buckets, by b from firstBucket to NumBuckets-1 (+Inf: the count).
func promCounts(h *Histogram) (cum [NumBuckets]uint64) {
	var n uint64
	for b, c := range h.Buckets {
		// Bucket b holds values below 2^b ns, so it is within le=2^b.
		n += c
		cum[b] = n
	}
	return cum
}

// promBuckets converts h into client_golang's constant histogram.
func promBuckets(h *Histogram) (count uint64, sum float64, buckets map[float64]uint64) {
	cum := promCounts(h)
	buckets = make(map[float64]uint64, NumBuckets-1-firstBucket)
	for b := firstBucket; b < NumBuckets-1; b++ {
		buckets[promBound(b)] = cum[b]
	}
	return cum[NumBuckets-1], h.Sum.Seconds(), buckets
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics() {
		ch <- m
	}
}

// metrics returns the last update's metrics, built by the first scrape
// after it. The lock is not held while they are built: a panic there must
// not leave it held, and an update need not wait for a scrape.
func (c *collector) metrics() []prometheus.Metric {
	c.mu.Lock()
	snap, cgroups, capped, built := c.snap, c.cgroups, c.capped, c.built
	c.mu.Unlock()
	if built != nil {
		return built
	}
	built = c.build(snap, cgroups, capped)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == snap && c.built == nil {
		c.built = built
	}
	return built
}

// build makes every metric of one update.
func (c *collector) build(snap *Snapshot, cgroups []exported, capped uint64) []prometheus.Metric {
	n := 16 + len(cgroups)*12
	if snap != nil {
		n += len(snap.Maps) + 2*len(snap.Programs) + len(snap.Drops)
	}
	out := make([]prometheus.Metric, 0, n)
	var lv []string
	c.series(snap, cgroups, capped, func(s *series) {
		lv = lv[:0]
		if s.cg != nil {
			lv = append(lv, s.cg.id, s.cg.name, s.cg.image)
		}
		lv = append(lv, s.lv[:s.f.nlv]...)
		if s.h != nil {
			n, sum, b := promBuckets(s.h)
			out = append(out, prometheus.MustNewConstHistogram(s.f.desc, n, sum, b, lv...))
			return
		}
		typ := prometheus.GaugeValue
		if s.f.typ == counter {
			typ = prometheus.CounterValue
		}
		out = append(out, prometheus.MustNewConstMetric(s.f.desc, typ, s.v, lv...))
	})
	return out
}

// CgroupCounts implements collect.CgroupCounter from the tick's
// reading, removed cgroups' final counts included: it asks nothing of the
// kernel.
func (c *collector) CgroupCounts(path string) (collect.CgroupCounts, bool) {
	if c.p == nil {
		return collect.CgroupCounts{}, false
	}
	// The tick's reading, also when CgroupActivity made it before
	// Update; Update's is the last one that succeeded.
	c.readMu.Lock()
	snap := c.readSnap
	c.readMu.Unlock()
	if snap == nil {
		c.mu.Lock()
		snap = c.snap
		c.mu.Unlock()
	}
	return c.countsOf(snap, path)
}

// ReadCgroupCounts implements collect.CgroupCounter with a read of the
// probes now. The reading is not served: the next Update makes the
// collector's own.
func (c *collector) ReadCgroupCounts(path string) (collect.CgroupCounts, bool) {
	if c.p == nil {
		return collect.CgroupCounts{}, false
	}
	snap, _ := c.p.Read(time.Now())
	return c.countsOf(snap, path)
}

// countsOf returns the counts of the cgroup at path in snap.
func (c *collector) countsOf(snap *Snapshot, path string) (collect.CgroupCounts, bool) {
	if snap == nil {
		return collect.CgroupCounts{}, false
	}
	cg, ok := snap.Cgroup(path)
	if !ok {
		return collect.CgroupCounts{}, false
	}
	out := collect.CgroupCounts{Since: c.p.loaded, At: snap.Time, Removed: cg.Removed, HasCPU: c.p.Up(ProbeSched), HasBlock: c.p.Up(ProbeBlock)}
	if out.HasCPU {
		out.CPU = cg.CPU
	}
	if out.HasBlock {
		for i := range cg.Block {
			b := &cg.Block[i]
			j := slices.IndexFunc(out.Block, func(o collect.BlockBytes) bool { return o.Major == b.Major && o.Minor == b.Minor })
			if j < 0 {
				out.Block = append(out.Block, collect.BlockBytes{Major: b.Major, Minor: b.Minor})
				j = len(out.Block) - 1
			}
			if b.Op == OpWrite {
				out.Block[j].WriteBytes += b.Bytes
			} else {
				out.Block[j].ReadBytes += b.Bytes
			}
		}
	}
	return out, true
}

// Fill sets m.Cgroups and the Cgroup of every container whose cgroup was
// exported.
func (c *collector) Fill(m *metrics.ResourceMetrics) {
	c.mu.Lock()
	cgroups := c.cgroups
	c.mu.Unlock()

	m.Cgroups = make([]metrics.CgroupMetrics, 0, len(cgroups))
	for i := range cgroups {
		m.Cgroups = append(m.Cgroups, CgroupMetrics(cgroups[i].stats))
	}
	sort.Slice(m.Cgroups, func(i, j int) bool { return m.Cgroups[i].ID < m.Cgroups[j].ID })
	for i := range m.Containers.ContainerDetails {
		d := &m.Containers.ContainerDetails[i]
		if d.CgroupPath == "" {
			continue
		}
		j := sort.Search(len(m.Cgroups), func(j int) bool { return m.Cgroups[j].ID >= d.CgroupPath })
		if j < len(m.Cgroups) && m.Cgroups[j].ID == d.CgroupPath {
			cg := m.Cgroups[j]
			d.Cgroup = &cg
		}
	}
}

// CgroupMetrics converts one cgroup's counters into the snapshot's shape.
func CgroupMetrics(s *CgroupStats) metrics.CgroupMetrics {
	return metrics.CgroupMetrics{
		ID:                         s.Path,
		CgroupID:                   s.ID,
		CPUSeconds:                 s.CPU.Seconds(),
		RunqueueWaitSeconds:        s.RunqueueWait.Seconds(),
		VoluntaryContextSwitches:   s.VoluntarySwitches,
		InvoluntaryContextSwitches: s.InvoluntarySwitches,
		BlockReadBytes:             s.BlockBytes(OpRead),
		BlockWriteBytes:            s.BlockBytes(OpWrite),
		BlockReadOperations:        s.BlockOps(OpRead),
		BlockWriteOperations:       s.BlockOps(OpWrite),
		BlockLatencyBuckets:        blockLatencyBuckets(s),
		NetworkReceiveBytes:        s.NetReceiveBytes,
		NetworkTransmitBytes:       s.NetTransmitBytes,
		NetworkReceivePackets:      s.NetReceivePackets,
		NetworkTransmitPackets:     s.NetTransmitPackets,
	}
}

// blockLatencyBuckets merges the read and write latency histograms of
// every device, without trailing empty buckets.
func blockLatencyBuckets(s *CgroupStats) []uint64 {
	h := s.BlockLatency(OpRead)
	w := s.BlockLatency(OpWrite)
	h.Add(&w)
	n := len(h.Buckets)
	for n > 0 && h.Buckets[n-1] == 0 {
		n--
	}
	if n == 0 {
		return nil
	}
	return append([]uint64(nil), h.Buckets[:n]...)
}
