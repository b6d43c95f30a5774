// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"math"
	"sort"
	"strings"
	"time"
)

// NumBuckets is the number of log2 histogram buckets the kernel keeps.
const NumBuckets = 34

// Histogram is a log2 histogram of durations, as the BPF programs keep it.
type Histogram struct {
	// Buckets[b] counts durations d with 2^(b-1) ns <= d < 2^b ns;
	// Buckets[0] counts zero durations and the last bucket everything from
	// 2^(NumBuckets-2) ns (about 4.3 s) up.
	Buckets [NumBuckets]uint64
	// Count is the number of observations, Sum their total.
	Count uint64
	Sum   time.Duration
}

// BucketUpperBound is the exclusive upper bound of bucket b, 2^b ns; the
// last bucket has none (math.MaxInt64).
func BucketUpperBound(b int) time.Duration {
	if b >= NumBuckets-1 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(1) << b
}

// Add adds o's observations to h.
func (h *Histogram) Add(o *Histogram) {
	for i := range h.Buckets {
		h.Buckets[i] += o.Buckets[i]
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// Quantile estimates the q-quantile (0 <= q <= 1, 0.5 for p50, 0.99 for
// p99) by linear interpolation inside the log2 bucket that holds it, so
// the estimate is within a factor of two of the true value. It returns 0
// for an empty histogram, and the last bucket's lower bound when the
// quantile falls into it.
func (h *Histogram) Quantile(q float64) time.Duration {
	var total uint64
	for _, c := range h.Buckets {
		total += c
	}
	if total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(total)
	var cum float64
	for b, c := range h.Buckets {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo := 0.0
			if b > 0 {
				lo = float64(int64(1) << (b - 1))
			}
			if b == NumBuckets-1 {
				return time.Duration(lo)
			}
			hi := float64(int64(1) << b)
			return time.Duration(lo + (hi-lo)*(rank-cum)/float64(c))
		}
		cum += float64(c)
	}
	return 0
}

// Op is a block I/O direction.
type Op string

// Block I/O directions, the `op` label.
const (
	OpRead  Op = "read"
	OpWrite Op = "write"
)

// BlockStats is one cgroup's I/O on one device in one direction.
type BlockStats struct {
	// Device is the kernel's name of the disk or partition ("vda"), or
	// "MAJ:MIN" when sysfs has no name for it.
	Device string
	// Major and Minor are its dev_t.
	Major, Minor uint32
	Op           Op
	Bytes        uint64
	Ops          uint64
	Latency      Histogram
}

// CgroupStats is what the probes counted for one cgroup, cumulative since
// the probes were loaded. Counters only grow, also when the cgroup is
// removed and recreated under the same path.
type CgroupStats struct {
	// Path is the cgroup's path in the cgroup2 hierarchy ("/docker/<id>").
	Path string
	// ID is its cgroup2 ID (the directory's inode), 0 when unknown (a v1
	// blkio cgroup without a cgroup2 twin).
	ID uint64
	// Removed is set once the cgroup is gone; its final counts stay for
	// Options.RemovedRetention. RemovedAt is when it was reaped.
	Removed   bool
	RemovedAt time.Time

	CPU                 time.Duration
	RunqueueWait        time.Duration
	RunqueueLatency     Histogram
	VoluntarySwitches   uint64
	InvoluntarySwitches uint64

	// Block is sorted by device, then op.
	Block []BlockStats

	NetReceiveBytes    uint64
	NetReceivePackets  uint64
	NetTransmitBytes   uint64
	NetTransmitPackets uint64
}

// BlockBytes sums bytes over devices for one direction.
func (c *CgroupStats) BlockBytes(op Op) uint64 {
	var n uint64
	for i := range c.Block {
		if c.Block[i].Op == op {
			n += c.Block[i].Bytes
		}
	}
	return n
}

// BlockOps sums operations over devices for one direction.
func (c *CgroupStats) BlockOps(op Op) uint64 {
	var n uint64
	for i := range c.Block {
		if c.Block[i].Op == op {
			n += c.Block[i].Ops
		}
	}
	return n
}

// BlockLatency merges the latency histograms of all devices for op.
func (c *CgroupStats) BlockLatency(op Op) Histogram {
	var h Histogram
	for i := range c.Block {
		if c.Block[i].Op == op {
			h.Add(&c.Block[i].Latency)
		}
	}
	return h
}

// Active reports whether anything was counted.
func (c *CgroupStats) Active() bool {
	return c.CPU != 0 || c.RunqueueWait != 0 || c.VoluntarySwitches != 0 || c.InvoluntarySwitches != 0 ||
		len(c.Block) != 0 || c.NetReceivePackets != 0 || c.NetTransmitPackets != 0
}

// Add adds o's counts to c (Path, ID and Removed stay c's).
func (c *CgroupStats) Add(o *CgroupStats) {
	c.CPU += o.CPU
	c.RunqueueWait += o.RunqueueWait
	c.RunqueueLatency.Add(&o.RunqueueLatency)
	c.VoluntarySwitches += o.VoluntarySwitches
	c.InvoluntarySwitches += o.InvoluntarySwitches
	for i := range o.Block {
		c.addBlock(&o.Block[i])
	}
	c.NetReceiveBytes += o.NetReceiveBytes
	c.NetReceivePackets += o.NetReceivePackets
	c.NetTransmitBytes += o.NetTransmitBytes
	c.NetTransmitPackets += o.NetTransmitPackets
}

func (c *CgroupStats) addBlock(b *BlockStats) {
	for i := range c.Block {
		if c.Block[i].Device == b.Device && c.Block[i].Op == b.Op {
			c.Block[i].Bytes += b.Bytes
			c.Block[i].Ops += b.Ops
			c.Block[i].Latency.Add(&b.Latency)
			return
		}
	}
	c.Block = append(c.Block, *b)
	sort.Slice(c.Block, func(i, j int) bool {
		if c.Block[i].Device != c.Block[j].Device {
			return c.Block[i].Device < c.Block[j].Device
		}
		return c.Block[i].Op < c.Block[j].Op
	})
}

// Sub returns c minus an earlier reading of the same cgroup (or subtree),
// the work done in between: what a test run reads at its start and end.
func (c *CgroupStats) Sub(earlier *CgroupStats) CgroupStats {
	d := *c
	d.Block = nil
	d.CPU -= earlier.CPU
	d.RunqueueWait -= earlier.RunqueueWait
	for i := range d.RunqueueLatency.Buckets {
		d.RunqueueLatency.Buckets[i] -= earlier.RunqueueLatency.Buckets[i]
	}
	d.RunqueueLatency.Count -= earlier.RunqueueLatency.Count
	d.RunqueueLatency.Sum -= earlier.RunqueueLatency.Sum
	d.VoluntarySwitches -= earlier.VoluntarySwitches
	d.InvoluntarySwitches -= earlier.InvoluntarySwitches
	for i := range c.Block {
		b := c.Block[i]
		for j := range earlier.Block {
			e := &earlier.Block[j]
			if e.Device == b.Device && e.Op == b.Op {
				b.Bytes -= e.Bytes
				b.Ops -= e.Ops
				for k := range b.Latency.Buckets {
					b.Latency.Buckets[k] -= e.Latency.Buckets[k]
				}
				b.Latency.Count -= e.Latency.Count
				b.Latency.Sum -= e.Latency.Sum
			}
		}
		if b.Ops != 0 || b.Bytes != 0 {
			d.Block = append(d.Block, b)
		}
	}
	d.NetReceiveBytes -= earlier.NetReceiveBytes
	d.NetReceivePackets -= earlier.NetReceivePackets
	d.NetTransmitBytes -= earlier.NetTransmitBytes
	d.NetTransmitPackets -= earlier.NetTransmitPackets
	return d
}

// ProgramStats is one BPF program's run-time statistics.
type ProgramStats struct {
	Probe    string
	Name     string
	RunCount uint64
	RunTime  time.Duration
	// Missed counts runs the kernel skipped because the program was
	// already running on that CPU (an interrupt during a run): updates
	// lost, exported as drops with reason "recursion".
	Missed uint64
}

// MapStats is one BPF map's kernel memory.
type MapStats struct {
	Name        string
	MemoryBytes uint64
}

// Drop counts updates the probes could not make.
type Drop struct {
	Probe string
	// Reason: cgroup_map_full, task_storage, inflight_full,
	// lost_completion, removed_map_full, unresolved.
	Reason string
	Count  uint64
}

// Snapshot is one Read: every cgroup's cumulative counters and the probes'
// own health.
type Snapshot struct {
	Time time.Time
	// Cgroups is sorted by Path.
	Cgroups  []CgroupStats
	Probes   []Status
	Programs []ProgramStats
	Maps     []MapStats
	Drops    []Drop
	// RemovedEvicted counts removed cgroups whose final counts were
	// forgotten before Options.RemovedRetention, to keep at most
	// maxRetired (cumulative).
	RemovedEvicted uint64
	// OnCPU are the cgroup2 paths of the cgroups that had a task on a
	// CPU as the maps were read (read before the counters), each once:
	// a task that never switches out is charged nothing until it does.
	// OnCPUKnown is false when the sched probe is down or a CPU's cgroup
	// could not be named.
	OnCPU      []string
	OnCPUKnown bool
	// layout numbers the order of Cgroups: two snapshots of one Probes
	// with the same layout (not 0) list the same paths in the same order.
	layout uint64
}

// Dropped returns the count of probe's drops for reason.
func (s *Snapshot) Dropped(probe, reason string) uint64 {
	for _, d := range s.Drops {
		if d.Probe == probe && d.Reason == reason {
			return d.Count
		}
	}
	return 0
}

// Cgroup returns the counters of the cgroup at path.
func (s *Snapshot) Cgroup(path string) (CgroupStats, bool) {
	i := sort.Search(len(s.Cgroups), func(i int) bool { return s.Cgroups[i].Path >= path })
	if i < len(s.Cgroups) && s.Cgroups[i].Path == path {
		return s.Cgroups[i], true
	}
	return CgroupStats{}, false
}

// Subtree sums the cgroup at prefix and every cgroup below it, removed
// ones included, so that a test run's cgroup and the containers it started
// underneath add up. Path is prefix; ID is prefix's own when known.
func (s *Snapshot) Subtree(prefix string) CgroupStats {
	prefix = "/" + strings.Trim(prefix, "/")
	sum := CgroupStats{Path: prefix}
	for i := range s.Cgroups {
		c := &s.Cgroups[i]
		if !underPath(c.Path, prefix) {
			continue
		}
		if c.Path == prefix {
			sum.ID = c.ID
			sum.Removed = c.Removed
		}
		sum.Add(c)
	}
	return sum
}

func underPath(p, prefix string) bool {
	if prefix == "/" {
		return true
	}
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
