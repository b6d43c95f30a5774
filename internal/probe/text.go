// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
)

// The types of the collector's families, as the text format names them.
const (
	counter   = "counter"
	gauge     = "gauge"
	histogram = "histogram"
)

// family is one of the collector's metric families: the descriptor
// Collect's metrics carry, and what AppendText writes.
type family struct {
	desc       *prometheus.Desc
	name, help string
	typ        string
	// cgroup says whether the family's series are a cgroup's (id, image
	// and name); before and after are its other labels, which sort before
	// those and after them.
	cgroup        bool
	before, after []string
	// nlv is the number of other labels.
	nlv int
}

func newFamily(name, typ, help string, cgroup bool, before, after []string) *family {
	var labels []string
	if cgroup {
		labels = append(labels, "id", "name", "image")
	}
	labels = append(append(labels, before...), after...)
	return &family{desc: prometheus.NewDesc(name, help, labels, nil), name: name, help: help, typ: typ,
		cgroup: cgroup, before: before, after: after, nlv: len(before) + len(after)}
}

// series is one series of an update as series gives it: a family's, a
// cgroup's for the cgroups' families, with the family's other label
// values (those before the cgroup's, then those after), and a value or,
// for a histogram, the histogram.
type series struct {
	f  *family
	cg *exported
	lv [2]string
	v  float64
	h  *Histogram
	// hv holds a histogram made for the series (a cgroup's block
	// latency by op, summed over devices).
	hv Histogram
}

// series calls emit with every series of one update, family by family, in
// the order of families(). Collect, AppendText and AppendSeries all
// serve what it gives. The series it passes is reused from one call to
// the next.
func (c *collector) series(snap *Snapshot, cgroups []exported, capped uint64, emit func(*series)) {
	s := new(series)
	one := func(f *family, cg *exported, v float64, lv ...string) {
		*s = series{f: f, cg: cg, v: v}
		copy(s.lv[:], lv)
		emit(s)
	}
	if c.p == nil {
		for _, probe := range []string{ProbeSched, ProbeBlock, ProbeNet} {
			one(c.up, nil, 0, probe)
		}
		return
	}
	status := c.p.Status()
	for _, st := range status {
		v := 0.0
		if st.Up {
			v = 1
		}
		one(c.up, nil, v, st.Probe)
	}
	for _, st := range status {
		if !st.Up {
			one(c.downInfo, nil, 1, st.Probe, st.Reason)
		}
	}
	one(c.nExported, nil, float64(len(cgroups)))
	one(c.cappedTotal, nil, float64(capped))
	one(c.reads, nil, float64(c.p.Reads()))
	if snap == nil {
		return
	}
	one(c.evicted, nil, float64(snap.RemovedEvicted))
	for _, m := range snap.Maps {
		one(c.mapMem, nil, float64(m.MemoryBytes), m.Name)
	}
	// Without run-time statistics the kernel reports zeros, which would
	// read as programs that never ran.
	if c.p.stats != nil {
		for _, pr := range snap.Programs {
			one(c.progRuns, nil, float64(pr.RunCount), pr.Name)
		}
		for _, pr := range snap.Programs {
			one(c.progTime, nil, pr.RunTime.Seconds(), pr.Name)
		}
	}
	for _, d := range snap.Drops {
		one(c.drops, nil, float64(d.Count), d.Probe, d.Reason)
	}

	each := func(fn func(e *exported, st *CgroupStats)) {
		for i := range cgroups {
			fn(&cgroups[i], cgroups[i].stats)
		}
	}
	if c.p.Up(ProbeSched) {
		each(func(e *exported, st *CgroupStats) { one(c.cpu, e, st.CPU.Seconds()) })
		each(func(e *exported, st *CgroupStats) { one(c.wait, e, st.RunqueueWait.Seconds()) })
		each(func(e *exported, st *CgroupStats) {
			*s = series{f: c.waitHist, cg: e, h: &st.RunqueueLatency}
			emit(s)
		})
		each(func(e *exported, st *CgroupStats) {
			one(c.switches, e, float64(st.VoluntarySwitches), "voluntary")
			one(c.switches, e, float64(st.InvoluntarySwitches), "involuntary")
		})
	}
	if c.p.Up(ProbeBlock) {
		each(func(e *exported, st *CgroupStats) {
			for j := range st.Block {
				b := &st.Block[j]
				one(c.blockBytes, e, float64(b.Bytes), b.Device, string(b.Op))
			}
		})
		each(func(e *exported, st *CgroupStats) {
			for j := range st.Block {
				b := &st.Block[j]
				one(c.blockOps, e, float64(b.Ops), b.Device, string(b.Op))
			}
		})
		each(func(e *exported, st *CgroupStats) {
			for _, op := range [...]Op{OpRead, OpWrite} {
				*s = series{f: c.blockHist, cg: e, lv: [2]string{string(op)}, hv: st.BlockLatency(op)}
				if s.hv.Count == 0 {
					continue
				}
				s.h = &s.hv
				emit(s)
			}
		})
	}
	if c.p.Up(ProbeNet) {
		each(func(e *exported, st *CgroupStats) {
			one(c.netBytes, e, float64(st.NetReceiveBytes), "receive")
			one(c.netBytes, e, float64(st.NetTransmitBytes), "transmit")
		})
		each(func(e *exported, st *CgroupStats) {
			one(c.netPackets, e, float64(st.NetReceivePackets), "receive")
			one(c.netPackets, e, float64(st.NetTransmitPackets), "transmit")
		})
	}
}

// bucketLE are the Prometheus buckets' upper bounds as a bucket line's
// last label, closing its braces, by b (promBound): `le="0.001"}`.
var bucketLE = func() (le [NumBuckets]string) {
	for b := firstBucket; b < NumBuckets; b++ {
		le[b] = string(collect.AppendLabel(nil, "le", strconv.FormatFloat(promBound(b), 'g', -1, 64))) + "}"
	}
	return le
}()

// AppendText implements collect.TextAppender: the series Collect emits,
// written from the last update as they are given, without client_golang's
// metrics, their sorting and encoding. Beside 150 idle containers started
// under the agent (4 000 series, most of them run-queue histogram
// buckets), those were 25 % of the agent's CPU in a profile: a scrape
// every 15 s, each spending some 12 ms there. A cgroup's labels are
// rendered once, when it is first exported (cgroupLabels).
func (c *collector) AppendText(b []byte) []byte {
	c.mu.Lock()
	snap, cgroups, capped := c.snap, c.cgroups, c.capped
	c.mu.Unlock()
	var (
		last      *family
		lbl, open []byte
	)
	c.series(snap, cgroups, capped, func(s *series) {
		f := s.f
		if f != last {
			last = f
			b = collect.AppendHeaderType(b, f.name, f.help, f.typ)
		}
		if s.h == nil {
			b = append(b, f.name...)
			b = appendLabels(b, s)
			b = collect.AppendValue(b, s.v)
			return
		}
		// A histogram's lines differ only in their suffix, le and value:
		// its labels are rendered once (a scrape beside 150 cgroups
		// writes 3 600 bucket lines).
		lbl = appendLabels(lbl[:0], s)
		open = append(open[:0], '{')
		if len(lbl) > len("{}") {
			open = append(append(open[:0], lbl[:len(lbl)-1]...), ',')
		}
		cum := promCounts(s.h)
		for i := firstBucket; i < NumBuckets; i++ {
			b = append(append(append(append(b, f.name...), "_bucket"...), open...), bucketLE[i]...)
			b = collect.AppendValue(b, float64(cum[i]))
		}
		b = append(append(append(b, f.name...), "_sum"...), lbl...)
		b = collect.AppendValue(b, s.h.Sum.Seconds())
		b = append(append(append(b, f.name...), "_count"...), lbl...)
		b = collect.AppendValue(b, float64(cum[NumBuckets-1]))
	})
	return b
}

// appendLabels appends s's labels, in braces; nothing for a series
// without labels.
func appendLabels(b []byte, s *series) []byte {
	f := s.f
	if f.nlv == 0 && s.cg == nil {
		return b
	}
	b = append(b, '{')
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	for i, name := range f.before {
		sep()
		b = collect.AppendLabel(b, name, s.lv[i])
	}
	if s.cg != nil {
		sep()
		b = append(b, s.cg.text...)
	}
	for i, name := range f.after {
		sep()
		b = collect.AppendLabel(b, name, s.lv[len(f.before)+i])
	}
	return append(b, '}')
}
