// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
)

// A container's final cgroupfs counters can only be read between its last
// process leaving (populated 0) and the runtime removing its cgroup, a few
// milliseconds that a busy host does not always give crmon: under
// `stress-ng --cpu 1 --io 1` on two cores, the exit watcher woke after the
// rmdir for about one container in twenty of a series that each lived
// 20 ms. No read of cgroupfs can win that race every time. The probes'
// counts do not depend on it: the kernel keeps them by cgroup id until
// crmon takes them, removed cgroup or not. So a container whose final read
// was lost serves the probes' CPU total and block I/O bytes in
// container_cpu_usage_seconds_total and container_fs_{reads,writes}_bytes_total,
// crmon_container_counters_from_ebpf names those families for it, and
// crmon_containers_unread_total counts each such container once, by what
// stood in for its final counters.

// Fallbacks of a container whose final read was lost, the "fallback" label
// of crmon_containers_unread_total.
const (
	// unreadEBPF: the probes' counts.
	unreadEBPF = iota
	// unreadLastRead: the last tick's cgroupfs counters, a lower bound.
	unreadLastRead
	// unreadNone: nothing; the container is not served.
	unreadNone
	numUnread
)

var unreadNames = [numUnread]string{"ebpf", "last_read", "none"}

// unreadLabels are the label sets of crmon_containers_unread_total.
var unreadLabels = func() (l [numUnread]*labelSet) {
	for i, n := range unreadNames {
		l[i] = newLabelSet("fallback", n)
	}
	return l
}()

// probeFamilies are the families the probes' counts can stand in for: the
// same quantities, by the same kernel clock (CPU) or the same bytes
// (block I/O; the probes count requests, not bios, so the operation counts
// are no stand-in).
var probeFamilies = []fam{fCPUUsage, fFSReadsBytes, fFSWritesBytes}

// lostTicksMax is how many ticks a container whose final read was lost
// waits for the probes' counts before it is counted without them: the
// probes read the maps once a tick, so its cgroup is in their next reading.
const lostTicksMax = 2

// SetCgroupCounter gives the collector the probes' per-cgroup counts,
// which stand in for the final counters of a container whose cgroup went
// before they were read. Call it before the first Update. When cc also
// tells which cgroups were active in a tick (collect.CgroupActivity), an
// idle container's cgroup is not read at all until its idle refresh.
func (c *Collector) SetCgroupCounter(cc collect.CgroupCounter) {
	c.mu.Lock()
	c.counter = cc
	c.activity, _ = cc.(collect.CgroupActivity)
	c.mu.Unlock()
}

// lostFinal runs every tick for a container that ended without its final
// read: it takes the probes' counts of its cgroup from their last reading
// while they may still move (or when the reading at its end could not be
// made), and counts the container in crmon_containers_unread_total once.
// c.mu must be held.
func (c *Collector) lostFinal(ct *container) {
	// Counts from the probes say it ran, whatever crmon saw.
	if !ct.ranWatched && !ct.fromProbes {
		return
	}
	if c.counter != nil && ct.paths.V2 != "" && !ct.restarted && !ct.probeFinal {
		// Counts read before crmon saw the container end may lack its
		// last moments; those read after hold all of it.
		if pc, ok := c.counter.CgroupCounts(ct.paths.V2); ok && pc.At.After(ct.goneAt) {
			c.standIn(ct, &pc)
		}
	}
	if ct.unreadCounted {
		return
	}
	ct.lostTicks++
	switch {
	case ct.fromProbes:
		c.unread[unreadEBPF]++
	case ct.lostTicks <= lostTicksMax:
		return
	case ct.haveStats:
		c.unread[unreadLastRead]++
	default:
		c.unread[unreadNone]++
	}
	ct.unreadCounted = true
}

// readProbes reads the probes' counts of container id's cgroup now, as the
// engine says it ended, unless its final read was made: read after its
// last process left, they hold all of it, and taken before the container
// is marked gone, they stand in from the first moment its counters are
// served as final. It costs a read of the probes' maps (about 100 µs for
// 50 cgroups) per container whose exit crmon had not caught by then. c.mu
// must not be held.
func (c *Collector) readProbes(id string) *collect.CgroupCounts {
	c.mu.RLock()
	ct, ok := c.byID[id]
	cc := c.counter
	need := ok && cc != nil && !ct.finalRead && !ct.restarted && !ct.fromProbes && ct.paths.V2 != ""
	var p string
	if need {
		p = ct.paths.V2
	}
	c.mu.RUnlock()
	if !need {
		return nil
	}
	pc, ok := cc.ReadCgroupCounts(p)
	if !ok {
		return nil
	}
	return &pc
}

// standIn keeps the probes' counts pc for ct, which ended without its
// final read, if they cover its whole life. c.mu must be held.
func (c *Collector) standIn(ct *container, pc *collect.CgroupCounts) {
	// Counts that began after the cgroup was made are partial.
	complete := (!ct.created.IsZero() && ct.created.After(pc.Since)) || (!ct.madeAt.IsZero() && ct.madeAt.After(pc.Since))
	if complete && !ct.restarted && (pc.HasCPU || pc.HasBlock) {
		c.useProbeCounts(ct, pc)
	}
}

// useProbeCounts keeps pc for ct. Each count only grows: the probes and
// cgroupfs charge the same events, but a count read later is never served
// below one read earlier. c.mu must be held.
func (c *Collector) useProbeCounts(ct *container, pc *collect.CgroupCounts) {
	// Its new label sets (devices, crmon_container_counters_from_ebpf) are
	// made before anything is served with them.
	defer c.updateLabels(ct)
	ct.fromProbes = true
	ct.probeFinal = pc.Removed
	if pc.HasCPU {
		ct.probeHasCPU = true
		ct.probeCPU = max(ct.probeCPU, uint64(pc.CPU))
	}
	c.addProbeBlock(ct, pc)
}

// probeBlock takes the probes' block I/O bytes of a running container
// that did something this tick, to be served where they exceed
// cgroupfs's: on a cgroup v1 host, Linux (5.x on) counts
// blkio.throttle.io_service_bytes only on a disk that some cgroup set a
// throttle rule on, so until then every container's cgroupfs bytes stay 0.
// The probes' counts sum every run of a cgroup path: a restarted
// container's are not its run's. c.mu must be held.
func (c *Collector) probeBlock(ct *container) {
	if c.counter == nil || ct.restarted || ct.paths.V2 == "" || !ct.goneAt.IsZero() {
		return
	}
	if pc, ok := c.counter.CgroupCounts(ct.paths.V2); ok {
		c.addProbeBlock(ct, &pc)
	}
}

// addProbeBlock keeps the probes' block I/O bytes of pc in ct.probeIO, by
// whole disk, each the larger of what it held and pc's. c.mu must be held.
func (c *Collector) addProbeBlock(ct *container, pc *collect.CgroupCounts) {
	if !pc.HasBlock {
		return
	}
	// cgroupfs counts by whole disk; a request's device may be a
	// partition of it.
	var io cgroups.IOStats
	for _, b := range pc.Block {
		maj, min := c.wholeDisk(b.Major, b.Minor)
		d := ioDevice(&io, maj, min)
		d.ReadBytes += b.ReadBytes
		d.WriteBytes += b.WriteBytes
	}
	for _, d := range io.Devices {
		ct.probeIO = setIODevice(ct.probeIO, d)
		ct.newKeys = true
	}
}

// ioDevice returns io's entry for the device, added if missing.
func ioDevice(io *cgroups.IOStats, maj, min uint32) *cgroups.IODevice {
	for i := range io.Devices {
		if io.Devices[i].Major == maj && io.Devices[i].Minor == min {
			return &io.Devices[i]
		}
	}
	io.Devices = append(io.Devices, cgroups.IODevice{Major: maj, Minor: min})
	return &io.Devices[len(io.Devices)-1]
}

// setIODevice sets d's entry in devs to the larger of each of its counts.
func setIODevice(devs []cgroups.IODevice, d cgroups.IODevice) []cgroups.IODevice {
	for i := range devs {
		if devs[i].Major == d.Major && devs[i].Minor == d.Minor {
			devs[i].ReadBytes = max(devs[i].ReadBytes, d.ReadBytes)
			devs[i].WriteBytes = max(devs[i].WriteBytes, d.WriteBytes)
			return devs
		}
	}
	return append(devs, d)
}

// probeBytes returns the probes' bytes of ct on the device, if any.
func (ct *container) probeBytes(maj, min uint32) (cgroups.IODevice, bool) {
	for _, d := range ct.probeIO {
		if d.Major == maj && d.Minor == min {
			return d, true
		}
	}
	return cgroups.IODevice{}, false
}

// wholeDisk maps a partition's device number to its disk's, from sysfs
// (/sys/dev/block/MAJ:MIN/partition, and the disk's dev beside it),
// caching the answer; a disk maps to itself. c.mu must be held.
func (c *Collector) wholeDisk(maj, min uint32) (uint32, uint32) {
	key := devKey(maj, min)
	if d, ok := c.disks[key]; ok {
		return uint32(d >> 32), uint32(d)
	}
	d := key
	dir := filepath.Join(c.opts.Paths.SysFS, "dev", "block", strconv.FormatUint(uint64(maj), 10)+":"+strconv.FormatUint(uint64(min), 10))
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		// dir is a link into /sys/devices; the kernel follows it before
		// "..", where filepath.Join would drop both.
		if b, err := os.ReadFile(dir + "/../dev"); err == nil {
			if a, z, ok := strings.Cut(strings.TrimSpace(string(b)), ":"); ok {
				ma, err1 := strconv.ParseUint(a, 10, 32)
				mi, err2 := strconv.ParseUint(z, 10, 32)
				if err1 == nil && err2 == nil {
					d = devKey(uint32(ma), uint32(mi))
				}
			}
		}
	}
	c.disks[key] = d
	return uint32(d >> 32), uint32(d)
}

// newRun forgets what stood in for the final counters of the container's
// previous run as it starts again (a new start time) in a new cgroup, whose cgroupfs counters
// start from zero. The probes' counts are by cgroup path, which a restart
// keeps, and sum every run: they stand in for a container's first run
// only. c.mu must be held.
func (ct *container) newRun() {
	ct.restarted = true
	ct.fromProbes, ct.probeHasCPU, ct.probeFinal = false, false, false
	ct.probeCPU, ct.probeIO = 0, ct.probeIO[:0]
	ct.lostTicks, ct.unreadCounted = 0, false
}

// awaitingProbes reports whether ct ended without its final read and
// waits for the probes' counts to stand in: its counters are held back
// until then (at most lostTicksMax ticks), so that the first value served
// after its end is its final one, not the last tick's. c.mu must be held.
func (c *Collector) awaitingProbes(ct *container) bool {
	return c.counter != nil && !ct.restarted && ct.ranWatched && !ct.goneAt.IsZero() && !ct.finalRead && !ct.fromProbes && !ct.unreadCounted
}

// lostFinalRead reports whether ct ended, at or before now, without its
// final read.
func (ct *container) lostFinalRead(now time.Time) bool {
	return !ct.pending && !ct.finalRead && !ct.goneAt.IsZero() && !ct.goneAt.After(now)
}
