// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/crmon-dev/crmon/pkg/session"
)

// maxReportContainers bounds the containers one report holds.
const maxReportContainers = 1000

// lookback is how far before a window a report looks for the counters'
// values at its start (Prometheus' default staleness).
const lookback = 5 * time.Minute

// reportSampleCost is what a sample a report reads costs in samples a
// query may hold (Limits.MaxSamples): a report keeps about 70
// bytes of heap per sample it reads (the samples, then a point per tick
// and container) where a query keeps 16, so that both bound the agent's
// heap alike. Measured: a day of 20 containers at 2 s, 1.7 M samples,
// left the heap 117 MB larger at the report's end.
const reportSampleCost = 4

// TooManySamples is a report's window holding more samples than it may
// read.
type TooManySamples struct{ Max int }

func (e *TooManySamples) Error() string {
	return fmt.Sprintf("the window holds more than %d samples of the containers' series, more than a report may read: choose a shorter window", e.Max)
}

// budget counts the samples a report reads, up to max (0: no bound), and
// ends the reading when its context does.
type budget struct{ n, max int }

func (b *budget) take(ctx context.Context) error {
	b.n++
	if b.max > 0 && b.n > b.max {
		return &TooManySamples{Max: b.max}
	}
	if b.n%(1<<14) == 0 {
		return ctx.Err()
	}
	return nil
}

// sample is one stored value.
type sample struct {
	t int64
	v float64
}

// counterIncrease is what a counter counted from from to to (ms): from its
// last value at or before from (0 when its series began inside the window:
// a container's counters start at 0 with its cgroup), across resets.
func counterIncrease(ss []sample, from, to int64, bornInside bool) float64 {
	prev, have := 0.0, bornInside
	var inc float64
	for _, s := range ss {
		if s.t <= from {
			prev, have = s.v, true
			continue
		}
		if s.t > to {
			break
		}
		if !have {
			// The store began after the series did: count from its
			// first value, a lower bound.
			prev, have = s.v, true
			continue
		}
		if s.v >= prev {
			inc += s.v - prev
		} else {
			inc += s.v // a reset
		}
		prev = s.v
	}
	return inc
}

// cumulative is counterIncrease at each sample inside the window.
func cumulative(ss []sample, from, to int64, bornInside bool) []sample {
	prev, have := 0.0, bornInside
	var inc float64
	var out []sample
	for _, s := range ss {
		if s.t <= from {
			prev, have = s.v, true
			continue
		}
		if s.t > to {
			break
		}
		switch {
		case !have:
			have = true
		case s.v >= prev:
			inc += s.v - prev
		default:
			inc += s.v
		}
		prev = s.v
		out = append(out, sample{s.t, inc})
	}
	return out
}

// reportSeries are one container's series, by metric name.
type reportSeries map[string][]labeledSamples

type labeledSamples struct {
	lset labels.Labels
	ss   []sample
}

// Report builds, from the history, the report `crmon exec` writes, for the
// window from..to: each container that lived in it (all, or those whose
// name matches one of names, path.Match patterns), with its CPU, block and
// network figures, preferring the eBPF probes' where they were served, and
// the host's peaks. Figures are deltas between the ticks nearest the
// window's ends. Limits, findings and processes are not part of a report
// from history.
func (s *Store) Report(ctx context.Context, from, to time.Time, names []string, maxSamples int) (*session.Report, error) {
	if !to.After(from) {
		return nil, &BadRequest{fmt.Errorf("the window's end %s is not after its start %s", to.Format(time.RFC3339), from.Format(time.RFC3339))}
	}
	for _, n := range names {
		if _, err := path.Match(n, ""); err != nil {
			return nil, &BadRequest{fmt.Errorf("container pattern %q: %w", n, err)}
		}
	}
	mint, maxt := from.Add(-lookback).UnixMilli(), to.UnixMilli()
	q, err := s.Queryable().Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()

	byID := map[string]reportSeries{}
	var order []string
	held := &budget{max: maxSamples}
	read := func(metric string) (map[string][]labeledSamples, error) {
		set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, labels.MustNewMatcher(labels.MatchEqual, "__name__", metric))
		out := map[string][]labeledSamples{}
		var it chunkenc.Iterator
		for set.Next() {
			sr := set.At()
			ls := sr.Labels()
			it = sr.Iterator(it)
			var ss []sample
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				if !value.IsStaleNaN(v) {
					ss = append(ss, sample{t, v})
				}
				if err := held.take(ctx); err != nil {
					return nil, err
				}
			}
			if err := it.Err(); err != nil {
				return nil, err
			}
			out[ls.Get("id")] = append(out[ls.Get("id")], labeledSamples{ls, ss})
		}
		return out, set.Err()
	}
	metricsUsed := []string{
		"container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_start_time_seconds",
		"container_fs_reads_bytes_total", "container_fs_writes_bytes_total", "container_fs_reads_total", "container_fs_writes_total",
		"container_network_receive_bytes_total", "container_network_transmit_bytes_total",
		"crmon_container_cpu_seconds_total", "crmon_container_runqueue_wait_seconds_total", "crmon_container_context_switches_total",
		"crmon_container_block_io_bytes_total", "crmon_container_block_io_operations_total", "crmon_container_network_bytes_total",
		"crmon_container_runqueue_latency_seconds_bucket", "crmon_container_block_io_latency_seconds_bucket",
	}
	for _, m := range metricsUsed {
		got, err := read(m)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", m, err)
		}
		for id, lss := range got {
			if id == "" || id == "/" {
				continue
			}
			rs, ok := byID[id]
			if !ok {
				if len(byID) >= maxReportContainers {
					continue
				}
				rs = reportSeries{}
				byID[id] = rs
				order = append(order, id)
			}
			rs[m] = lss
		}
	}

	from0, to0 := from.UnixMilli(), to.UnixMilli()
	oldest := s.oldest()
	rep := &session.Report{
		SchemaVersion:   session.SchemaVersion,
		Name:            "report",
		StartedAt:       from.UTC(),
		EndedAt:         to.UTC(),
		DurationSeconds: to.Sub(from).Seconds(),
		TotalsOf:        session.TotalsContainers,
		Containers:      []session.ContainerReport{},
		Limits:          []session.LimitResult{},
		Findings:        []session.Finding{},
	}
	ebpf := false
	for _, id := range order {
		rs := byID[id]
		name, image, last := "", "", int64(0)
		for _, lss := range rs {
			for _, ls := range lss {
				if n := ls.lset.Get("name"); n != "" {
					name, image = n, ls.lset.Get("image")
				}
				for _, x := range ls.ss {
					if x.t > from0 && x.t <= to0 {
						last = max(last, x.t)
					}
				}
			}
		}
		if last == 0 {
			continue // no sample inside the window: it did not live in it
		}
		if len(names) > 0 && !slices.ContainsFunc(names, func(p string) bool { ok, _ := path.Match(p, name); return ok }) {
			continue
		}
		// New in the window, its counters started at 0: its start time
		// says so, or it first appeared while the store was recording
		// already (a container that lived less than a tick is seen only
		// with its final counts).
		born := false
		if st := rs["container_start_time_seconds"]; len(st) > 0 && len(st[0].ss) > 0 {
			born = st[0].ss[len(st[0].ss)-1].v*1000 >= float64(from0)
		}
		appeared := int64(math.MaxInt64)
		for _, lss := range rs {
			for _, ls := range lss {
				if len(ls.ss) > 0 {
					appeared = min(appeared, ls.ss[0].t)
				}
			}
		}
		born = born || (appeared > from0 && oldest < appeared-s.interval().Milliseconds())
		inc := func(metric string, match func(labels.Labels) bool) (float64, bool) {
			lss, ok := rs[metric]
			if !ok {
				return 0, false
			}
			var v float64
			for _, ls := range lss {
				if match == nil || match(ls.lset) {
					v += counterIncrease(ls.ss, from0, to0, born)
				}
			}
			return v, true
		}
		is := func(k, v string) func(labels.Labels) bool {
			return func(l labels.Labels) bool { return l.Get(k) == v }
		}
		cr := session.ContainerReport{ID: path.Base(id), Name: name, Image: image, Cgroup: id}
		m := &cr.Measures
		if v, ok := inc("crmon_container_cpu_seconds_total", nil); ok {
			ebpf = true
			m.CPUSeconds = v
		} else if v, ok := inc("container_cpu_usage_seconds_total", nil); ok {
			m.CPUSeconds = v
		} else {
			m.Unmeasured = append(m.Unmeasured, "cpu_seconds")
		}
		if v, ok := inc("crmon_container_runqueue_wait_seconds_total", nil); ok {
			m.RunqueueWaitSeconds = v
			m.RunqueueWaitP50Seconds = quantile(0.5, rs["crmon_container_runqueue_latency_seconds_bucket"], from0, to0, born)
			m.RunqueueWaitP99Seconds = quantile(0.99, rs["crmon_container_runqueue_latency_seconds_bucket"], from0, to0, born)
		} else {
			m.Unmeasured = append(m.Unmeasured, "runqueue_wait_seconds", "runqueue_wait_p50_seconds", "runqueue_wait_p99_seconds")
		}
		if vol, ok := inc("crmon_container_context_switches_total", is("type", "voluntary")); ok {
			invol, _ := inc("crmon_container_context_switches_total", is("type", "involuntary"))
			m.VoluntaryContextSwitches, m.InvoluntaryContextSwitches = uint64(vol), uint64(invol)
			m.ContextSwitches = uint64(vol + invol)
		} else {
			m.Unmeasured = append(m.Unmeasured, "context_switches", "voluntary_context_switches", "involuntary_context_switches")
		}
		if r, ok := inc("crmon_container_block_io_bytes_total", is("op", "read")); ok {
			w, _ := inc("crmon_container_block_io_bytes_total", is("op", "write"))
			ro, _ := inc("crmon_container_block_io_operations_total", is("op", "read"))
			wo, _ := inc("crmon_container_block_io_operations_total", is("op", "write"))
			m.BlockReadBytes, m.BlockWriteBytes, m.BlockReadOperations, m.BlockWriteOperations = uint64(r), uint64(w), uint64(ro), uint64(wo)
			m.BlockIOLatencyP99Seconds = quantile(0.99, rs["crmon_container_block_io_latency_seconds_bucket"], from0, to0, born)
		} else if r, ok := inc("container_fs_reads_bytes_total", nil); ok {
			w, _ := inc("container_fs_writes_bytes_total", nil)
			ro, _ := inc("container_fs_reads_total", nil)
			wo, _ := inc("container_fs_writes_total", nil)
			m.BlockReadBytes, m.BlockWriteBytes, m.BlockReadOperations, m.BlockWriteOperations = uint64(r), uint64(w), uint64(ro), uint64(wo)
			m.Unmeasured = append(m.Unmeasured, "block_io_latency_p99_seconds")
		} else {
			m.Unmeasured = append(m.Unmeasured, "block_read_bytes", "block_write_bytes", "block_read_operations", "block_write_operations", "block_io_latency_p99_seconds")
		}
		if rx, ok := inc("crmon_container_network_bytes_total", is("direction", "receive")); ok {
			tx, _ := inc("crmon_container_network_bytes_total", is("direction", "transmit"))
			m.NetRxBytes, m.NetTxBytes = uint64(rx), uint64(tx)
		} else if rx, ok := inc("container_network_receive_bytes_total", nil); ok {
			tx, _ := inc("container_network_transmit_bytes_total", nil)
			m.NetRxBytes, m.NetTxBytes = uint64(rx), uint64(tx)
		} else {
			m.Unmeasured = append(m.Unmeasured, "net_rx_bytes", "net_tx_bytes")
		}
		peak, seen := 0.0, false
		for _, ls := range rs["container_memory_usage_bytes"] {
			for _, x := range ls.ss {
				if x.t > from0 && x.t <= to0 {
					peak, seen = max(peak, x.v), true
				}
			}
		}
		if seen {
			m.PeakMemoryBytes = uint64(peak)
		} else {
			m.Unmeasured = append(m.Unmeasured, "peak_memory_bytes")
		}
		m.Unmeasured = append(m.Unmeasured, "processes_started")
		if st := rs["container_start_time_seconds"]; len(st) > 0 && len(st[0].ss) > 0 {
			cr.StartedAt = time.UnixMilli(int64(st[0].ss[len(st[0].ss)-1].v * 1000)).UTC()
		}
		// Its gauges go when it stops (its counters stay a while, at
		// their final values): a last gauge sample over a tick before
		// the end is its last tick running.
		gauge := int64(0)
		for _, ls := range rs["container_memory_usage_bytes"] {
			if n := len(ls.ss); n > 0 {
				gauge = max(gauge, ls.ss[n-1].t)
			}
		}
		if gauge > from0 && gauge < to0-s.interval().Milliseconds()*3/2 {
			cr.FinishedAt = time.UnixMilli(gauge).UTC()
		}
		rep.Containers = append(rep.Containers, cr)
		pts := points(rs, from0, to0, born)
		if len(pts) > 0 {
			if rep.Series == nil {
				rep.Series = &session.Series{IntervalSeconds: s.interval().Seconds(), Containers: map[string][]session.Point{}}
			}
			key := name
			if _, dup := rep.Series.Containers[key]; dup || key == "" {
				key = name + "@" + cr.ID[:min(12, len(cr.ID))]
			}
			rep.Series.Containers[key] = pts
		}
	}
	slices.SortFunc(rep.Containers, func(a, b session.ContainerReport) int {
		return cmp.Or(cmp.Compare(b.CPUSeconds, a.CPUSeconds), cmp.Compare(a.Name, b.Name))
	})
	if ebpf {
		rep.Sources = []string{"ebpf"}
	} else {
		rep.Sources = []string{"cgroupfs"}
		rep.SourcesMissing = []session.MissingSource{{Source: "ebpf", Reason: "no eBPF figures in the history for this window"}}
	}
	rep.Totals = sumMeasures(rep.Containers)
	if rep.Series != nil {
		rep.Series.Run = sumPoints(rep.Series.Containers)
	}
	host, err := s.hostPeaks(ctx, q, mint, from0, to0, held)
	if err != nil {
		return nil, err
	}
	rep.Host = host
	return rep, nil
}

// oldest is the time of the oldest sample held (ms), MaxInt64 for none.
func (s *Store) oldest() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := int64(math.MaxInt64)
	if s.db == nil {
		return o
	}
	if h := s.db.Head(); h.NumSeries() > 0 {
		o = h.MinTime()
	}
	if bs := s.db.Blocks(); len(bs) > 0 {
		o = min(o, bs[0].Meta().MinTime)
	}
	return o
}

// interval is the spacing of the newest ticks, 10 s when unknown.
func (s *Store) interval() time.Duration {
	if d := time.Duration(s.tickEvery.Load()); d > 0 {
		return d
	}
	return 10 * time.Second
}

// points are a container's figures at each of its ticks in the window,
// counters as increases since the window's start, for the report's plots.
func points(rs reportSeries, from, to int64, born bool) []session.Point {
	sum := func(metric string, match func(labels.Labels) bool) map[int64]float64 {
		out := map[int64]float64{}
		for _, ls := range rs[metric] {
			if match == nil || match(ls.lset) {
				for _, x := range cumulative(ls.ss, from, to, born) {
					out[x.t] += x.v
				}
			}
		}
		return out
	}
	is := func(k, v string) func(labels.Labels) bool {
		return func(l labels.Labels) bool { return l.Get(k) == v }
	}
	pick := func(a, b string, ma, mb func(labels.Labels) bool) map[int64]float64 {
		if _, ok := rs[a]; ok {
			return sum(a, ma)
		}
		return sum(b, mb)
	}
	cpu := pick("crmon_container_cpu_seconds_total", "container_cpu_usage_seconds_total", nil, nil)
	rd := pick("crmon_container_block_io_bytes_total", "container_fs_reads_bytes_total", is("op", "read"), nil)
	wr := pick("crmon_container_block_io_bytes_total", "container_fs_writes_bytes_total", is("op", "write"), nil)
	rx := pick("crmon_container_network_bytes_total", "container_network_receive_bytes_total", is("direction", "receive"), nil)
	tx := pick("crmon_container_network_bytes_total", "container_network_transmit_bytes_total", is("direction", "transmit"), nil)
	mem := map[int64]float64{}
	for _, ls := range rs["container_memory_usage_bytes"] {
		for _, x := range ls.ss {
			mem[x.t] = x.v
		}
	}
	out := make([]session.Point, 0, len(cpu))
	for _, t := range slices.Sorted(maps.Keys(cpu)) {
		out = append(out, session.Point{
			T: float64(t-from) / 1e3, CPUSeconds: cpu[t], MemoryBytes: uint64(mem[t]),
			BlockReadBytes: uint64(rd[t]), BlockWriteBytes: uint64(wr[t]), NetRxBytes: uint64(rx[t]), NetTxBytes: uint64(tx[t]),
		})
	}
	return out
}

// sumPoints adds the containers' points tick by tick (ticks are shared:
// one sample per tick for all). A container's counters count on after it
// ended, at their last value; its memory does not.
func sumPoints(cs map[string][]session.Point) []session.Point {
	ts := map[float64]bool{}
	for _, pts := range cs {
		for _, p := range pts {
			ts[p.T] = true
		}
	}
	times := slices.Sorted(maps.Keys(ts))
	out := make([]session.Point, len(times))
	for i, t := range times {
		out[i].T = t
	}
	for _, pts := range cs {
		j := -1
		for i, t := range times {
			for j+1 < len(pts) && pts[j+1].T <= t {
				j++
			}
			if j < 0 {
				continue
			}
			p := pts[j]
			q := &out[i]
			q.CPUSeconds += p.CPUSeconds
			q.BlockReadBytes += p.BlockReadBytes
			q.BlockWriteBytes += p.BlockWriteBytes
			q.NetRxBytes += p.NetRxBytes
			q.NetTxBytes += p.NetTxBytes
			if p.T == t {
				q.MemoryBytes += p.MemoryBytes
			}
		}
	}
	return out
}

func sumMeasures(cs []session.ContainerReport) session.Measures {
	var t session.Measures
	for _, c := range cs {
		m := c.Measures
		t.CPUSeconds += m.CPUSeconds
		t.RunqueueWaitSeconds += m.RunqueueWaitSeconds
		t.RunqueueWaitP99Seconds = max(t.RunqueueWaitP99Seconds, m.RunqueueWaitP99Seconds)
		t.ContextSwitches += m.ContextSwitches
		t.VoluntaryContextSwitches += m.VoluntaryContextSwitches
		t.InvoluntaryContextSwitches += m.InvoluntaryContextSwitches
		t.BlockReadBytes += m.BlockReadBytes
		t.BlockWriteBytes += m.BlockWriteBytes
		t.BlockReadOperations += m.BlockReadOperations
		t.BlockWriteOperations += m.BlockWriteOperations
		t.BlockIOLatencyP99Seconds = max(t.BlockIOLatencyP99Seconds, m.BlockIOLatencyP99Seconds)
		t.NetRxBytes += m.NetRxBytes
		t.NetTxBytes += m.NetTxBytes
		t.PeakMemoryBytes += m.PeakMemoryBytes
	}
	// A sum of percentiles is no percentile: the totals give the worst
	// container's, and no median.
	t.Unmeasured = []string{"runqueue_wait_p50_seconds", "processes_started"}
	if len(cs) > 0 {
		for _, f := range cs[0].Unmeasured {
			if !slices.Contains(t.Unmeasured, f) {
				t.Unmeasured = append(t.Unmeasured, f)
			}
		}
	}
	return t
}

// quantile estimates the q-quantile of a histogram's observations within
// the window, from its buckets' increases, as histogram_quantile does.
func quantile(q float64, buckets []labeledSamples, from, to int64, born bool) float64 {
	type bucket struct{ le, n float64 }
	byLE := map[float64]float64{}
	for _, b := range buckets {
		var le float64
		if _, err := fmt.Sscan(b.lset.Get("le"), &le); err != nil {
			if b.lset.Get("le") != "+Inf" {
				continue
			}
			le = math.Inf(1)
		}
		byLE[le] += counterIncrease(b.ss, from, to, born)
	}
	var bs []bucket
	for le, n := range byLE {
		bs = append(bs, bucket{le, n})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	rank := q * bs[len(bs)-1].n
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.n == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.n-below)
		}
		lower, below = b.le, b.n
	}
	return lower
}

// hostPeaks are the host's highest CPU, memory and root file system usage
// between two ticks of the window.
func (s *Store) hostPeaks(ctx context.Context, q storage.Querier, mint, from, to int64, held *budget) (session.HostPeaks, error) {
	var h session.HostPeaks
	sel := func(ms ...*labels.Matcher) (map[string][]sample, error) {
		set := q.Select(ctx, true, &storage.SelectHints{Start: mint, End: to}, ms...)
		out := map[string][]sample{}
		var it chunkenc.Iterator
		for set.Next() {
			sr := set.At()
			it = sr.Iterator(it)
			k := sr.Labels().String()
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				if !value.IsStaleNaN(v) && t >= from && t <= to {
					out[k] = append(out[k], sample{t, v})
				}
				if err := held.take(ctx); err != nil {
					return nil, err
				}
			}
			if err := it.Err(); err != nil {
				return nil, err
			}
		}
		return out, set.Err()
	}
	name := func(n string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, "__name__", n) }

	// CPU: busy share of all CPUs' time between consecutive ticks.
	cpu, err := sel(name("node_cpu_seconds_total"))
	if err != nil {
		return h, err
	}
	total, idle := map[int64]float64{}, map[int64]float64{}
	for k, ss := range cpu {
		isIdle := labelIn(k, `mode="idle"`) || labelIn(k, `mode="iowait"`)
		for _, x := range ss {
			total[x.t] += x.v
			if isIdle {
				idle[x.t] += x.v
			}
		}
	}
	ts := slices.Sorted(maps.Keys(total))
	for i := 1; i < len(ts); i++ {
		dt := total[ts[i]] - total[ts[i-1]]
		if dt > 0 {
			h.CPUUsagePercent = max(h.CPUUsagePercent, 100*(1-(idle[ts[i]]-idle[ts[i-1]])/dt))
		}
	}
	if len(ts) < 2 {
		h.Unmeasured = append(h.Unmeasured, "cpu_usage_percent")
	}

	memTotal, err := sel(name("node_memory_MemTotal_bytes"))
	if err != nil {
		return h, err
	}
	memAvail, err := sel(name("node_memory_MemAvailable_bytes"))
	if err != nil {
		return h, err
	}
	if peak, ok := peakRatio(memAvail, memTotal); ok {
		h.MemoryUsagePercent = peak
	} else {
		h.Unmeasured = append(h.Unmeasured, "memory_usage_percent")
	}
	root := labels.MustNewMatcher(labels.MatchEqual, "mountpoint", "/")
	avail, err := sel(name("node_filesystem_avail_bytes"), root)
	if err != nil {
		return h, err
	}
	size, err := sel(name("node_filesystem_size_bytes"), root)
	if err != nil {
		return h, err
	}
	if peak, ok := peakRatio(avail, size); ok {
		h.DiskUsagePercent = peak
	} else {
		h.Unmeasured = append(h.Unmeasured, "disk_usage_percent")
	}
	return h, nil
}

// peakRatio is the highest 100 × (1 − free/total) over the ticks both
// series have (their first series each).
func peakRatio(free, total map[string][]sample) (float64, bool) {
	fs, ts := first(free), first(total)
	if len(fs) == 0 || len(ts) == 0 {
		return 0, false
	}
	tot := map[int64]float64{}
	for _, x := range ts {
		tot[x.t] = x.v
	}
	peak, ok := 0.0, false
	for _, x := range fs {
		if t := tot[x.t]; t > 0 {
			peak, ok = max(peak, 100*(1-x.v/t)), true
		}
	}
	return peak, ok
}

func first(m map[string][]sample) []sample {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		return m[k]
	}
	return nil
}

func labelIn(lset, pair string) bool { return strings.Contains(lset, pair) }
