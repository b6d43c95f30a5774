// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/rtnl"
)

// The root cgroup is served in the container families as cAdvisor serves
// it, id="/" with name="" and image="": dashboards take the machine's
// totals from container_cpu_usage_seconds_total{id="/"} and
// container_memory_working_set_bytes{id="/"}. It is read like a container,
// from the root of every hierarchy, but it is not one: it is not in the
// snapshot's containers, not counted in crmon_containers_known and never
// removed.
//
// Where the figures come from:
//   - v1 controllers (hybrid and legacy hosts): the root's own files,
//     cpuacct.usage, memory.usage_in_bytes, memory.stat's total_*, blkio's
//     recursive throttle counters, as for any cgroup.
//   - cgroup2 controllers: the root has cpu.stat (usage_usec), memory.stat
//     and io.stat, but no memory.current. Its usage is then anon + file of
//     the root's memory.stat, what runc's cgroup library (fs2
//     rootStatsFromMeminfo, which cAdvisor uses) reports for the root: the
//     sum v1's usage_in_bytes is made of. The working set is usage minus
//     inactive_file, as for every container.
//   - processes: the root's cgroup.procs, from the v1 pids hierarchy
//     where there is one (on a hybrid host the cgroup2 root's lists the
//     same processes at 15 to 20 times the cost).
//   - network: the host's interfaces, those of PID 1's network namespace,
//     without lo and without the interfaces cAdvisor leaves out (veth*,
//     docker*, nerdctl*), whose traffic is the containers' own. They are
//     asked by rtnetlink one by one, so that the veths of a host's
//     containers cost nothing a tick (/proc/1/net/dev lists them all:
//     1.9 ms a tick to read with 1 000 of them); /proc/1/net/dev when
//     rtnetlink cannot reach that namespace (a fixture tree, or crmon in
//     a namespace of its own without the right to enter the host's).

// rootIgnoredInterfaces are the prefixes of the interfaces cAdvisor leaves
// out of a container's network figures (libcontainer's
// ignoredDevicePrefixes); lo is already left out by parseNetDev.
var rootIgnoredInterfaces = []string{"veth", "docker", "nerdctl"}

// rootInterface reports whether the root's network figures include the
// interface.
func rootInterface(name string) bool {
	if name == "lo" {
		return false
	}
	for _, p := range rootIgnoredInterfaces {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return false
		}
	}
	return true
}

// initNetNSIno is the inode of the initial network namespace
// (PROC_NET_INIT_INO, include/linux/proc_ns.h; fixed since Linux 6.x,
// allocated like any other's before).
const initNetNSIno = 0xEFFFFFF9

// rootNetns names PID 1's network namespace for rtnl.Open: "" when it is
// this process's own, else its path; ok is false when it cannot be told
// (a fixture tree without namespace links).
func rootNetns(procFS string) (ns string, ok bool) {
	ns = filepath.Join(procFS, "1", "ns", "net")
	var a, b unix.Stat_t
	own := unix.Stat("/proc/self/ns/net", &b) == nil
	switch err := unix.Stat(ns, &a); {
	case err == nil:
		if own && a.Dev == b.Dev && a.Ino == b.Ino {
			return "", true
		}
		return ns, true
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		// PID 1's links can be closed even to root (an init that made
		// itself undumpable, an LSM): this process in the initial
		// namespace has the host's interfaces, those PID 1's net/dev
		// lists.
		return "", own && b.Ino == initNetNSIno
	}
	return "", false
}

// openRootNet opens rtnetlink in PID 1's network namespace: this
// process's own sockets when it is the same, else sockets made in it.
// Without, the root's interfaces come from /proc/1/net/dev, which lists
// every veth (1.9 ms a tick to read with 1 000 of them).
func (c *Collector) openRootNet() *rtnl.Conn {
	ns, ok := rootNetns(c.opts.Paths.ProcFS)
	if !ok {
		return nil
	}
	conn, err := rtnl.Open(ns)
	if err != nil {
		c.log.Debug("reading the host's interfaces from /proc/1/net/dev: no rtnetlink", "err", err)
		return nil
	}
	return conn
}

// readRootNet reads the root's interfaces into ct.net, sorted by name.
func (c *Collector) readRootNet(ct *container) {
	if c.rootNet != nil {
		next := c.rootNetNext[:0]
		err := c.rootNet.Some(rootInterface, func(l *rtnl.Link) {
			f := l.Stats.ProcNetDev()
			next = append(next, netIface{name: l.Name,
				rxBytes: f[0], rxPackets: f[1], rxErrors: f[2], rxDrops: f[3],
				txBytes: f[8], txPackets: f[9], txErrors: f[10], txDrops: f[11]})
		})
		if err != nil {
			// The last values stay.
			c.log.Debug("reading the host's interfaces by rtnetlink", "err", err)
			return
		}
		slices.SortFunc(next, func(a, b netIface) int { return strings.Compare(a.name, b.name) })
		ct.net, c.rootNetNext = next, ct.net
		return
	}
	if ct.netFD < 0 {
		return
	}
	if n, err := preadAll(ct.netFD, &c.buf); err == nil {
		ct.net = slices.DeleteFunc(parseNetDev(c.buf[:n], ct.net), func(it netIface) bool { return !rootInterface(it.name) })
		slices.SortFunc(ct.net, func(a, b netIface) int { return strings.Compare(a.name, b.name) })
	}
}

// openRoot opens the root cgroup's files and the host's net/dev; nil when
// no hierarchy can be read.
func (c *Collector) openRoot() *container {
	p := cgroups.Paths{V1: map[string]string{}}
	if c.h.Unified != "" {
		p.V2 = "/"
	}
	for ctrl := range c.h.V1 {
		p.V1[ctrl] = "/"
	}
	r, err := c.h.OpenWith(p, cgroups.OpenOptions{NoPressure: !c.groups.pressure, ProcsV1: true, ProcsApart: true})
	if err != nil {
		c.log.Debug("opening the root cgroup", "err", err)
		return nil
	}
	ct := newContainer("/")
	ct.state = "running"
	ct.labelValues = make([]string, len(c.labelNames))
	ct.paths, ct.cgroupPath = p, "/"
	ct.reader = r
	ct.needSettings = true
	if c.rootNet = c.openRootNet(); c.rootNet == nil {
		if fd, err := unix.Open(filepath.Join(c.opts.Paths.ProcFS, "1", "net", "dev"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			ct.netFD = fd
		}
	}
	return ct
}

// The root's cgroup.procs costs the kernel a walk of every thread in the
// root cgroup, which is where a container engine's runtime shims live:
// 35 µs on a small host, some 1 ms beside 150 containers and 3.5 ms beside
// 1 000 (8 % of the agent's CPU there, read every idle refresh). It is
// read with the root's full reads no more often than its last read's time
// rootProcsCost times over (at most a 50 000th of the agent's time: every
// 50 s at 1 ms; at 35 µs, every 1.75 s, so with every full read), and at
// least every rootProcsMaxAge. At 5 000 it was still 4 % of the agent's CPU beside 150.
const (
	rootProcsCost   = 50000
	rootProcsMaxAge = time.Minute
)

// updateRoot reads the root cgroup, opening it on the first tick. c.mu
// must be held.
func (c *Collector) updateRoot(now time.Time) error {
	if c.root == nil {
		if c.rootTried {
			return nil
		}
		c.rootTried = true
		if c.root = c.openRoot(); c.root == nil {
			return nil
		}
	}
	ct := c.root
	if ct.sinceSetting++; ct.sinceSetting >= settingsEvery {
		ct.needSettings, ct.sinceSetting = true, 0
	}
	// The CPU total and the host's interfaces every tick; the rest every
	// IdleRefresh ticks, as for an idle container: at the root, the
	// recursive block I/O files walk every cgroup and cgroup.procs lists
	// the root's processes, some 100 µs per tick on a small host.
	var err error
	if ct.haveStats && !ct.needSettings && ct.sinceFull+1 < c.opts.IdleRefresh {
		err = ct.reader.ReadUsage(&ct.stats, &c.buf)
		ct.sinceFull++
		ct.account(now)
	} else {
		err = ct.read(&c.buf, now, readFull, actUnknown)
		if c.h.OnV2(cgroups.Memory) {
			m := &ct.stats.Memory
			m.Usage = m.RSS + m.Cache
			m.WorkingSet = 0
			if m.Usage > m.InactiveFile {
				m.WorkingSet = m.Usage - m.InactiveFile
			}
		}
		if !now.Before(c.rootProcsDue) {
			t0 := time.Now()
			if e := ct.reader.ReadProcs(&ct.stats, &c.buf); err == nil {
				err = e
			}
			c.rootProcsDue = now.Add(min(time.Since(t0)*rootProcsCost, rootProcsMaxAge))
		}
	}
	// The interfaces every tick, whatever ct.read did with them.
	c.readRootNet(ct)
	ct.haveStats = true
	c.updateLabels(ct)
	// "/" sorts before every other id, so the root heads the scrape
	// order, which is by label values.
	c.scrapeOrder = slices.Insert(c.scrapeOrder, 0, ct)
	return err
}

// closeRoot closes the root's files. c.mu must be held.
func (c *Collector) closeRoot() {
	if c.root != nil {
		c.root.closeFiles()
		c.root = nil
	}
	c.rootProcsDue = time.Time{}
	if c.rootNet != nil {
		c.rootNet.Close()
		c.rootNet = nil
	}
}
