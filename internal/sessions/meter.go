// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"math"
	"time"
)

// Counters are what the eBPF probes counted for one cgroup subtree,
// cumulative. Histograms have log2 nanosecond buckets: bucket b counts
// values v with 2^(b-1) <= v < 2^b, bucket 0 counts v == 0.
type Counters struct {
	CPUSeconds                 float64
	RunqueueWaitSeconds        float64
	RunqueueWaitHist           []uint64
	VoluntaryContextSwitches   uint64
	InvoluntaryContextSwitches uint64
	BlockReadBytes             uint64
	BlockWriteBytes            uint64
	BlockReadOperations        uint64
	BlockWriteOperations       uint64
	BlockLatencyHist           []uint64
	NetRxBytes                 uint64
	NetTxBytes                 uint64
	// Forks counts tasks started in the subtree; HasForks says whether the
	// probes count them at all.
	Forks    uint64
	HasForks bool
	// HasSched, HasBlock and HasNet say which probes are up: the counters
	// of one that is not are 0 for want of a measure, not of work.
	HasSched, HasBlock, HasNet bool
}

// Meter is the eBPF probes as sessions use them.
type Meter interface {
	// Refresh reads the probes' maps, unless the last read is younger
	// than maxAge: sessions of one agent share reads for their plots, and
	// pass 0 for their final values.
	Refresh(now time.Time, maxAge time.Duration) error
	// Subtree returns the counters of the cgroup2 path and every cgroup
	// below it as of the last Refresh, including cgroups removed since,
	// and false when the probes have seen nothing of it.
	Subtree(path string) (Counters, bool)
}

// fedMeter is a Meter that the agent's ticks keep current (ProbeMeter):
// ReadAt says when its current read was taken, so that a session knows a
// new one arrived without reading the maps itself.
type fedMeter interface {
	Meter
	ReadAt() time.Time
}

// lossMeter is a Meter that counts the block completions its probes lost,
// host-wide: a run's block figures are a lower bound when any were lost
// during it.
type lossMeter interface {
	BlockLostCompletions() uint64
}

// sub returns a - b, counter by counter; a counter that went backwards (a
// cgroup reaped and recreated) counts from zero.
func (a Counters) sub(b Counters) Counters {
	d := func(x, y uint64) uint64 {
		if x < y {
			return x
		}
		return x - y
	}
	f := func(x, y float64) float64 {
		if x < y {
			return x
		}
		return x - y
	}
	return Counters{
		CPUSeconds:                 f(a.CPUSeconds, b.CPUSeconds),
		RunqueueWaitSeconds:        f(a.RunqueueWaitSeconds, b.RunqueueWaitSeconds),
		RunqueueWaitHist:           subHist(a.RunqueueWaitHist, b.RunqueueWaitHist),
		VoluntaryContextSwitches:   d(a.VoluntaryContextSwitches, b.VoluntaryContextSwitches),
		InvoluntaryContextSwitches: d(a.InvoluntaryContextSwitches, b.InvoluntaryContextSwitches),
		BlockReadBytes:             d(a.BlockReadBytes, b.BlockReadBytes),
		BlockWriteBytes:            d(a.BlockWriteBytes, b.BlockWriteBytes),
		BlockReadOperations:        d(a.BlockReadOperations, b.BlockReadOperations),
		BlockWriteOperations:       d(a.BlockWriteOperations, b.BlockWriteOperations),
		BlockLatencyHist:           subHist(a.BlockLatencyHist, b.BlockLatencyHist),
		NetRxBytes:                 d(a.NetRxBytes, b.NetRxBytes),
		NetTxBytes:                 d(a.NetTxBytes, b.NetTxBytes),
		Forks:                      d(a.Forks, b.Forks),
		HasForks:                   a.HasForks,
		HasSched:                   a.HasSched,
		HasBlock:                   a.HasBlock,
		HasNet:                     a.HasNet,
	}
}

func subHist(a, b []uint64) []uint64 {
	out := make([]uint64, len(a))
	for i, v := range a {
		if i < len(b) && b[i] <= v {
			v -= b[i]
		}
		out[i] = v
	}
	return out
}

// HistQuantile returns the q-quantile (0..1) of a log2 nanosecond
// histogram in seconds, interpolating linearly inside the bucket as
// Prometheus' histogram_quantile does; 0 when the histogram is empty.
func HistQuantile(q float64, h []uint64) float64 {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for b, c := range h {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			if b == 0 {
				return 0
			}
			lo := math.Ldexp(1, b-1)
			hi := math.Ldexp(1, b)
			if b == 1 {
				lo = 1
			}
			frac := (rank - cum) / float64(c)
			return (lo + (hi-lo)*frac) / 1e9
		}
		cum += float64(c)
	}
	return math.Ldexp(1, len(h)-1) / 1e9
}
