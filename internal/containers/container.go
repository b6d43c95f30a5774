// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker"
)

// container is one container and its last counters. Its fields are guarded
// by Collector.mu.
type container struct {
	id, name, image string
	labels          map[string]string
	// labelValues are the values of Options.ContainerLabels, in order.
	labelValues []string
	state       string
	created     time.Time
	started     time.Time
	// startedAt points to a copy of started, shared by every tick's
	// sample (which never changes it): one allocation per start, not
	// per container per tick.
	startedAt *time.Time
	pid       int

	// cgroupPath is the cgroup2 path (the `id` label); pathGuessed says
	// it is the default layout's, the engine having removed the container
	// before it told its cgroup parent.
	cgroupPath  string
	pathGuessed bool
	paths       cgroups.Paths
	reader      *cgroups.Reader
	exitWD      int

	// netFD is /proc/<pid>/net/dev, kept open so that a tick is one
	// pread; -1 when not read (not running, or host network).
	netFD int
	net   []netIface

	stats     cgroups.Stats
	haveStats bool
	// needSettings asks the next read for the limits too (first read,
	// "update" events); sinceSetting counts the ticks since they were
	// read (settingsEvery, idleSettingsEvery).
	needSettings bool
	sinceFull    int
	sinceSetting int
	// quietIO and quietNet: the probes that count block requests and
	// packets were up when the container was last found idle, so that its
	// idle refresh may leave its block I/O files and net/dev out (up to
	// cgroups.IdleSkips refreshes in a row, counted in netSkips for
	// net/dev).
	quietIO, quietNet bool
	netSkips          int
	// finalRead is set when the counters were read as the last process
	// left the cgroup, so they are the container's final values.
	finalRead bool
	lastRead  time.Time
	// fullAt is when the counters were last read in full, refreshedAt
	// when those that move while it is idle were.
	fullAt, refreshedAt time.Time

	prevUsage  uint64
	prevAt     time.Time
	cpuPercent float64

	// netRate is received + sent bytes per second between the last two
	// reads of /proc/<pid>/net/dev.
	prevNet   uint64
	prevNetAt time.Time
	netRate   float64

	sizeRw int64 // -1 until the first size refresh

	// actCount is the probes' activity count of the cgroup at the last
	// tick, when actSeen: a count that moved since says it did something.
	actCount uint64
	actSeen  bool

	// lp are the label sets Collect and AppendText serve; lpStale asks Update to
	// rebuild them after a rename or a new cgroup.
	lp      *labelSets
	lpStale bool
	baseKV  []string
	// newKeys is set when a read may have found a device or an interface
	// without a label set: an idle container's tick skips updateLabels,
	// whose look-ups were 3 % of the agent's CPU beside 150 of them.
	newKeys bool

	// goneAt is when the container stopped or was removed, zero while
	// it runs: its counters are served until Options.RemovedRetention
	// after it, its gauges not at all.
	goneAt  time.Time
	removed bool
	// pending is set while the container is known only from its cgroup
	// (made before the engine told of it), since pendingSince.
	pending      bool
	pendingSince time.Time

	// ranWatched is set when crmon saw the container run: its cgroup
	// made, or it running, or its end. One that ended before crmon came
	// has no counters anyone could have read. madeAt is when its cgroup
	// was seen made.
	ranWatched bool
	madeAt     time.Time
	// restarted is set once the container runs again in a recreated
	// cgroup (newRun).
	restarted bool
	// fromProbes is set when the final read was lost (the runtime removed
	// the cgroup first) and the probes' counts of the cgroup stand in for
	// the CPU total (probeCPU, when probeHasCPU) and the block I/O bytes
	// by whole disk (probeIO); probeFinal once the probes saw the cgroup
	// removed, so that the counts will not move again. lostTicks counts
	// the ticks since the loss was seen, until unreadCounted.
	fromProbes, probeHasCPU, probeFinal bool
	probeCPU                            uint64
	probeIO                             []cgroups.IODevice
	lostTicks                           int
	unreadCounted                       bool
}

func newContainer(id string) *container {
	return &container{id: id, netFD: -1, exitWD: -1, sizeRw: -1}
}

// gone marks the container stopped or removed at now, unless it already is.
func (ct *container) gone(now time.Time) {
	if ct.goneAt.IsZero() {
		ct.goneAt = now
	}
}

// running reports whether the container has processes to read.
func (ct *container) running() bool {
	return !ct.removed && (ct.state == "running" || ct.state == "paused" || ct.state == "restarting")
}

// setMeta copies what the engine says about the container.
func (ct *container) setMeta(d docker.Container, labelKeys []string) {
	if d.Name != "" {
		ct.name = d.Name
	}
	if d.Image != "" {
		ct.image = d.Image
	}
	if d.Labels != nil {
		ct.labels = d.Labels
	}
	if len(ct.labelValues) != len(labelKeys) {
		ct.labelValues = make([]string, len(labelKeys))
	}
	for i, k := range labelKeys {
		ct.labelValues[i] = ct.labels[k]
	}
	ct.state = d.State
	ct.lpStale = true
	if !d.Created.IsZero() {
		ct.created = d.Created
	}
	if !d.Started.IsZero() && !d.Started.Equal(ct.started) {
		ct.started = d.Started
		t := d.Started
		ct.startedAt = &t
	}
}

// closeFiles closes the cgroup reader and the net/dev file.
func (ct *container) closeFiles() {
	if ct.reader != nil {
		ct.reader.Close()
		ct.reader = nil
	}
	if ct.netFD >= 0 {
		unix.Close(ct.netFD)
		ct.netFD = -1
	}
}

// activity is what the probes say a container's cgroup did in a tick.
type activity uint8

const (
	// actUnknown: no probes, or they cannot tell; the CPU total tells.
	actUnknown activity = iota
	// actActive: it ran, did block I/O or had packets, or runs now.
	actActive
	// actIdle: none of that since the last tick.
	actIdle
)

// activity says what the probes saw of the container since the last tick,
// from the tick's act (ok false when they cannot tell), and notes its
// count for the next. The probes name cgroups by their cgroup2 path.
func (ct *container) activity(act collect.Activity, ok bool) activity {
	if !ok || ct.paths.V2 == "" {
		// The next tick that can tell has nothing to compare with.
		ct.actSeen = false
		return actUnknown
	}
	n := act.Counts.Of(ct.paths.V2)
	moved := !ct.actSeen || n != ct.actCount
	ct.actCount, ct.actSeen = n, true
	if moved || act.OnCPU[ct.paths.V2] {
		return actActive
	}
	ct.quietIO, ct.quietNet = act.Block, act.Net
	return actIdle
}

// readFull, as read's idleEvery, reads the container in full whatever it
// did: its first read, its final one, the root's refresh.
const readFull = 0

// read reads the cgroup and network counters. A container that is idle
// costs nothing a tick when the probes say so (act), one pread of its CPU
// total without them; every idleEvery ticks it is refreshed: only what
// moves while none of its tasks runs is read (memory, block I/O, its
// interfaces), and it then holds only those files open. A container that
// did anything, or any container when idleEvery is 0 or less, is read in
// full. On error the previous values stay: a cgroup that is gone keeps
// its last counters.
func (ct *container) read(buf *[]byte, now time.Time, idleEvery int, act activity) error {
	if ct.reader == nil {
		return nil
	}
	settings := ct.needSettings || !ct.haveStats || ct.sinceSetting >= idleSettingsEvery
	if !settings && idleEvery > 0 && act != actActive {
		idle := act == actIdle
		if act == actUnknown {
			prev := ct.stats.CPU.UsageNanos
			if err := ct.reader.ReadUsage(&ct.stats, buf); err == cgroups.ErrGone {
				ct.closeFiles()
				return nil
			} else if err != nil {
				return err
			}
			idle = ct.stats.CPU.UsageNanos == prev
		}
		if idle {
			return ct.readIdle(buf, now, idleEvery, act)
		}
	}
	mode := cgroups.ReadCounters
	if settings || ct.sinceSetting >= settingsEvery {
		mode = cgroups.ReadAll
		ct.sinceSetting = 0
	}
	err := ct.reader.Read(&ct.stats, buf, mode)
	if err == cgroups.ErrGone {
		ct.closeFiles()
		return nil
	}
	ct.newKeys = true
	ct.haveStats = true
	ct.needSettings = false
	ct.sinceFull = 0
	ct.fullAt = now
	ct.account(now)
	ct.readNet(buf, now)
	return err
}

// readIdle is a tick of an idle container: nothing, or its refresh.
func (ct *container) readIdle(buf *[]byte, now time.Time, idleEvery int, act activity) error {
	ct.account(now)
	if act == actIdle {
		// Its sockets sent and received nothing.
		ct.netRate = 0
	}
	if ct.sinceFull++; ct.sinceFull < idleEvery {
		return nil
	}
	// Idle by the probes' counts of block requests: its block I/O files
	// are read at most every IdleSkips+1 refreshes (cgroups.ReadIdleQuiet).
	mode := cgroups.ReadIdle
	if act == actIdle && ct.quietIO {
		mode = cgroups.ReadIdleQuiet
	}
	err := ct.reader.Read(&ct.stats, buf, mode)
	if err == cgroups.ErrGone {
		ct.closeFiles()
		return nil
	}
	ct.newKeys = true
	// Idle for a whole refresh: it is likely to stay so, and its other
	// files are opened again when it wakes.
	ct.reader.Release(cgroups.ReadIdle)
	ct.sinceFull = 0
	ct.refreshedAt = now
	// The net probe saw no packet of its sockets: what still moves its
	// interfaces is the kernel's own traffic (ARP, echo replies), read
	// at most IdleSkips refreshes late. net/dev was 25 of an idle
	// refresh's 80 µs.
	if act == actIdle && ct.quietNet && ct.netSkips < cgroups.IdleSkips {
		ct.netSkips++
		return err
	}
	ct.netSkips = 0
	ct.readNet(buf, now)
	return err
}

// readNet reads the network counters, if its net/dev is open.
func (ct *container) readNet(buf *[]byte, now time.Time) {
	if ct.netFD < 0 {
		return
	}
	n, err := preadAll(ct.netFD, buf)
	if err != nil {
		unix.Close(ct.netFD)
		ct.netFD = -1
		return
	}
	ct.net = parseNetDev((*buf)[:n], ct.net)
	ct.newKeys = true
	ct.accountNet(now)
}

// accountNet notes the network bytes at now and the rate since the
// previous read. A counter that went back (an interface replaced) starts
// over rather than showing a huge rate.
func (ct *container) accountNet(now time.Time) {
	var total uint64
	for i := range ct.net {
		total += ct.net[i].rxBytes + ct.net[i].txBytes
	}
	if !ct.prevNetAt.IsZero() && now.After(ct.prevNetAt) && total >= ct.prevNet {
		ct.netRate = float64(total-ct.prevNet) / now.Sub(ct.prevNetAt).Seconds()
	}
	ct.prevNet, ct.prevNetAt = total, now
}

// account notes a read at now and the CPU share since the previous one.
func (ct *container) account(now time.Time) {
	ct.lastRead = now
	if !ct.prevAt.IsZero() && now.After(ct.prevAt) && ct.stats.CPU.UsageNanos >= ct.prevUsage {
		ct.cpuPercent = float64(ct.stats.CPU.UsageNanos-ct.prevUsage) / float64(now.Sub(ct.prevAt).Nanoseconds()) * 100
	}
	ct.prevUsage, ct.prevAt = ct.stats.CPU.UsageNanos, now
}

// preadAll reads fd from offset 0 into buf, growing it until the file fits.
func preadAll(fd int, buf *[]byte) (int, error) {
	if len(*buf) < 4096 {
		*buf = make([]byte, 16384)
	}
	// net/dev's seq_file writes a line per interface into a buffer of a
	// page, and one read returns what that buffer holds (some 30
	// interfaces): only a read of nothing is the end.
	n := 0
	for {
		if n == len(*buf) {
			nb := make([]byte, 2*len(*buf))
			copy(nb, *buf)
			*buf = nb
		}
		m, err := unix.Pread(fd, (*buf)[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return n, err
		}
		n += m
	}
}

// readNetNS returns the network namespace of pid ("net:[4026531840]").
func readNetNS(procFS string, pid int) string {
	s, _ := os.Readlink(filepath.Join(procFS, strconv.Itoa(pid), "ns", "net"))
	return s
}
