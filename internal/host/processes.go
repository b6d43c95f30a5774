// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// defaultTopN is how many processes the snapshot lists when Options.TopN
// is not set; maxTopN bounds it, so the selection needs no allocation.
const (
	defaultTopN = 10
	maxTopN     = 64
)

// maxCommand bounds a process's command line in the snapshot.
const maxCommand = 4096

// PIDStat is what crmon reads from /proc/<pid>/stat (proc_pid_stat(5)).
type PIDStat struct {
	Comm       []byte // valid until the next read
	State      byte
	UTime      uint64 // ticks
	STime      uint64 // ticks
	NumThreads uint64
	StartTime  uint64 // ticks after boot
	VSize      uint64 // bytes
	RSS        uint64 // pages
}

// parsePIDStat parses /proc/<pid>/stat. comm may hold spaces and
// parentheses, so the fields start after the last ')'.
func parsePIDStat(b []byte, s *PIDStat) error {
	l := bytes.IndexByte(b, '(')
	r := bytes.LastIndexByte(b, ')')
	if l < 0 || r < l {
		return fmt.Errorf("parsing pid stat: no comm in %q", b)
	}
	s.Comm = b[l+1 : r]
	rest := b[r+1:]
	var f []byte
	// Fields after comm, 0-based: 0 state, 11 utime, 12 stime,
	// 17 num_threads, 19 starttime, 20 vsize, 21 rss.
	for i := 0; i <= 21; i++ {
		f, rest = nextField(rest)
		if len(f) == 0 {
			return fmt.Errorf("parsing pid stat: %d fields, want at least 24", i+2)
		}
		var dst *uint64
		switch i {
		case 0:
			s.State = f[0]
			continue
		case 11:
			dst = &s.UTime
		case 12:
			dst = &s.STime
		case 17:
			dst = &s.NumThreads
		case 19:
			dst = &s.StartTime
		case 20:
			dst = &s.VSize
		case 21:
			dst = &s.RSS
		default:
			continue
		}
		v, ok := parseUint(f)
		if !ok {
			return fmt.Errorf("parsing pid stat: bad field %d %q", i+3, f)
		}
		*dst = v
	}
	return nil
}

// statFD is an open /proc/<pid>/stat. Opening the file costs as much as
// generating it (the path walk through procfs), so the collector keeps it
// open and preads it each tick; once the process is gone the read fails
// with ESRCH and the fd is closed.
type statFD struct {
	fd   int
	seen uint64
}

// maxStatFDs bounds the stat files kept open to a quarter of the soft fd
// limit and at most 2048; processes beyond it are opened each tick.
func maxStatFDs() int {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(2048, l.Cur/4))
}

// readStat returns the content of /proc/<pid>/stat.
func (c *processesCollector) readStat(pid int32, name []byte) ([]byte, error) {
	if f, ok := c.fds[pid]; ok {
		f.seen = c.gen
		if b, err := c.r.pread(f.fd); err == nil && len(b) > 0 {
			return b, nil
		}
		unix.Close(f.fd)
		delete(c.fds, pid)
	}
	fd, err := openat(c.pidPath(name, "stat"), unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	b, err := c.r.pread(fd)
	if err != nil || len(c.fds) >= c.maxFD {
		unix.Close(fd)
		return b, err
	}
	c.fds[pid] = &statFD{fd: fd, seen: c.gen}
	return b, nil
}

// Close closes the stat files the collector keeps open.
func (c *processesCollector) Close() error {
	for pid, f := range c.fds {
		unix.Close(f.fd)
		delete(c.fds, pid)
	}
	return errors.Join(c.meminfo.Close(), c.loadavg.Close(), c.pidMax.Close(), c.thrMax.Close())
}

// procEntry is what the collector remembers of a process between ticks.
type procEntry struct {
	start   uint64 // starttime: a reused PID is a new process
	ticks   uint64 // utime+stime at the last scan
	name    string
	cmd     string
	haveCmd bool
	seen    uint64
	// What its last read found, served again while it is idle.
	state      byte
	threads    uint64
	rss, vsize uint64
	// cgroup is its cgroup2 path, read once (cgroupRead), and actCount
	// the probes' count of that cgroup when its stat was last read
	// (haveAct: they could tell then).
	cgroup     string
	cgroupRead bool
	actCount   uint64
	haveAct    bool
}

// idle reports whether the probes saw nothing of e's cgroup since its stat
// was last read: no task of it switched, did block I/O or sent or received
// a packet, and none is on a CPU. Its process did not run, so its stat is
// as it was, but for memory the kernel reclaimed, which the listing every
// relistEvery scans reads again.
func (e *procEntry) idle(act *collect.Activity) bool {
	// A zombie is reaped by its parent, which may be anywhere.
	if e.cgroup == "" || !e.haveAct || e.state == 'Z' || e.state == 'X' || act.OnCPU[e.cgroup] {
		return false
	}
	// A cgroup absent from the probes' reading did nothing since they
	// loaded (collect.Activity), as the containers collector takes it.
	return act.Counts.Of(e.cgroup) == e.actCount
}

type procSample struct {
	pid        int32
	e          *procEntry
	delta      uint64 // ticks since the previous scan
	ticks      uint64
	rss, vsize uint64
}

// processesCollector reads every /proc/<pid>/stat once per tick, the most
// expensive read of the host collectors, and derives from it node_exporter's
// processes families, the process and thread counts, and the top processes
// by CPU and by memory. The directory is listed with getdents into a reused
// buffer and the paths are built in place, so a steady tick allocates only
// for processes it has not seen before.
type processesCollector struct {
	metricSet
	log      *slog.Logger
	r        *reader
	procfs   string
	dir      cpath
	meminfo  openFile
	pidMax   openFile
	thrMax   openFile
	topN     int
	cmdLines bool
	pageSize uint64

	dents []byte
	path  []byte
	procs map[int32]*procEntry
	// interval is the time between full scans; 0 scans every tick.
	interval time.Duration
	scans    int
	states   [256]uint64
	loadavg  openFile
	fds      map[int32]*statFD
	maxFD    int
	gen      uint64
	last     time.Time
	buf      []procSample
	// pids are the processes of the last scan, in the order of the last
	// listing of the procfs root; lastPID is the last PID the kernel had
	// given out before it (/proc/loadavg), unlisted the scans since.
	pids     []int32
	lastPID  uint64
	unlisted int
	// ownPIDNS: procfs is a mount of this process's PID namespace, whose
	// last PID /proc/loadavg gives (0: not known yet, 1 yes, -1 no).
	ownPIDNS int
	name     []byte

	threadsDesc, maxThreadsDesc, stateDesc, pidsDesc, maxPidsDesc *metricDesc
	stateLV                                                       [256][]string

	nProcs, nThreads uint64
	topCPU           []metrics.ProcessCPUMetrics
	topMem           []metrics.ProcessMemoryMetrics

	// activity, when the probes run, says which cgroups did nothing since
	// a process's last read (SetCgroupActivity).
	activity collect.CgroupActivity
	// lister, when the probes run, lists every process in one pass
	// (SetProcessLister); listBuf is its scratch. initPIDNS: 1 when this
	// process and procfs are of the initial PID namespace, whose PIDs the
	// lister gives; -1 not; 0 unknown.
	lister    collect.ProcessLister
	listBuf   []collect.ProcessStat
	initPIDNS int
	// cgroupNS: 1 when in the host's cgroup namespace, -1 not, 0 unknown.
	cgroupNS int
}

// SetCgroupActivity gives the collector the probes' per-cgroup activity:
// a scan then leaves out the processes of cgroups that did nothing since
// their last read (beside 150 idle containers, their 150 `sleep`s of 374
// processes), keeping what that read found. Call it before the first
// Update.
func (c *processesCollector) SetCgroupActivity(a collect.CgroupActivity) {
	c.activity = a
}

// SetProcessLister gives the collector a lister of every process in one
// pass, the eBPF task iterator: a scan then reads no file per process
// (beside 1 000 idle containers, their runtime shims' stat files were a
// quarter of the agent's CPU). A scan goes by procfs when the lister
// fails, or cannot speak for this procfs (another PID namespace's).
func (c *processesCollector) SetProcessLister(l collect.ProcessLister) {
	c.lister = l
}

// initPIDNSIno is the inode of the initial PID namespace
// (PROC_PID_INIT_INO, include/linux/proc_ns.h).
const initPIDNSIno = 0xEFFFFFFC

// useLister reports whether a scan may go by c.lister: there is one, and
// this process and procfs are of the initial PID namespace.
func (c *processesCollector) useLister() bool {
	if c.lister == nil {
		return false
	}
	if c.initPIDNS == 0 {
		c.initPIDNS = -1
		var st unix.Stat_t
		if c.procfsOwnPIDNS() && unix.Stat("/proc/self/ns/pid", &st) == nil && st.Ino == initPIDNSIno {
			c.initPIDNS = 1
		}
	}
	return c.initPIDNS > 0
}

// nsPerTick converts the lister's nanoseconds to /proc/<pid>/stat's clock
// ticks, as the kernel does (nsec_to_clock_t).
const nsPerTick = 1e9 / userHZ

// listed scans by c.lister when useLister allows, passing each process to
// account; it returns false when the scan must go by procfs instead.
// visit reads one process from procfs: PID 1, where the iterator did not
// give it (on a VM whose init cannot be inspected, the iterator never
// did).
func (c *processesCollector) listed(visit func(uint64, []byte) bool, account func(uint64, *PIDStat)) bool {
	if !c.useLister() {
		return false
	}
	ps, err := c.lister.ListProcesses(c.listBuf[:0])
	if err != nil {
		c.log.Debug("listing processes with the task iterator; reading procfs", "err", err)
		return false
	}
	c.listBuf = ps
	c.pids = c.pids[:0]
	init := false
	// One PIDStat for the scan: account's closure makes it escape.
	var st PIDStat
	for i := range ps {
		p := &ps[i]
		comm := p.Comm[:]
		if j := bytes.IndexByte(comm, 0); j >= 0 {
			comm = comm[:j]
		}
		st = PIDStat{
			Comm:       comm,
			State:      p.State,
			UTime:      p.CPUNanos / nsPerTick,
			NumThreads: p.Threads,
			StartTime:  p.StartNanos / nsPerTick,
			VSize:      p.VSize,
			RSS:        p.RSS,
		}
		account(uint64(p.PID), &st)
		c.pids = append(c.pids, p.PID)
		init = init || p.PID == 1
	}
	if !init && visit(1, []byte("1")) {
		c.pids = append(c.pids, 1)
	}
	return true
}

// initCgroupNSIno is the inode of the initial cgroup namespace
// (PROC_CGROUP_INIT_INO, include/linux/proc_ns.h).
const initCgroupNSIno = 0xEFFFFFFB

// hostCgroupNS reports whether this process is in the host's (initial)
// cgroup namespace, once: /proc/<pid>/cgroup gives paths from the
// reader's namespace's root, the probes from the host's.
func (c *processesCollector) hostCgroupNS() bool {
	if c.cgroupNS == 0 {
		c.cgroupNS = -1
		var st unix.Stat_t
		if unix.Stat("/proc/self/ns/cgroup", &st) == nil && st.Ino == initCgroupNSIno {
			c.cgroupNS = 1
		}
	}
	return c.cgroupNS > 0
}

// readCgroup notes e's cgroup2 path from /proc/<pid>/cgroup, once: a
// process moved to another cgroup after that is read whenever its old
// cgroup moves, and at every listing.
func (c *processesCollector) readCgroup(e *procEntry, pid uint64) {
	e.cgroupRead = true
	if p, err := cgroups.ProcCgroup(c.procfs, int(pid)); err == nil {
		e.cgroup = p.V2
	}
}

func newProcessesCollector(o collect.Options, ho Options) (*processesCollector, error) {
	n := o.TopN
	if n <= 0 {
		n = defaultTopN
	}
	n = min(n, maxTopN)
	return &processesCollector{
		log:            logger(o),
		r:              newReader(4096),
		procfs:         o.Paths.ProcFS,
		dir:            mkpath(o.Paths.ProcFS),
		meminfo:        openFile{path: mkpath(o.Paths.ProcFS, "meminfo")},
		loadavg:        openFile{path: mkpath(o.Paths.ProcFS, "loadavg")},
		interval:       ho.ProcessesScanInterval,
		pidMax:         openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel/pid_max")},
		thrMax:         openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel/threads-max")},
		topN:           n,
		cmdLines:       o.CommandLines,
		pageSize:       uint64(os.Getpagesize()),
		dents:          make([]byte, 32<<10),
		procs:          map[int32]*procEntry{},
		fds:            map[int32]*statFD{},
		maxFD:          maxStatFDs(),
		threadsDesc:    newDesc("processes", "threads", "Allocated threads in system"),
		maxThreadsDesc: newDesc("processes", "max_threads", "Limit of threads in the system"),
		stateDesc:      newDesc("processes", "state", "Number of processes in each state.", "state"),
		pidsDesc:       newDesc("processes", "pids", "Number of PIDs"),
		maxPidsDesc:    newDesc("processes", "max_processes", "Number of max PIDs limit"),
	}, nil
}

func (c *processesCollector) Name() string { return "processes" }

// pidPath builds "<procfs>/<pid>/<file>\0" in the reused path buffer.
func (c *processesCollector) pidPath(pid []byte, file string) cpath {
	p := append(c.path[:0], c.procfs...)
	p = append(p, '/')
	p = append(p, pid...)
	p = append(p, '/')
	p = append(p, file...)
	p = append(p, 0)
	c.path = p
	return p
}

// eachPID calls fn with the name of every numeric entry of the procfs root.
func (c *processesCollector) eachPID(fn func(name []byte)) error {
	return eachDirent(c.dir, c.dents, func(name []byte) {
		if name[0] >= '1' && name[0] <= '9' {
			fn(name)
		}
	})
}

func (c *processesCollector) Update(_ context.Context, now time.Time) error {
	if c.interval > 0 && c.scans >= 2 && now.After(c.last) && now.Sub(c.last) < c.interval {
		return c.count()
	}
	dt := now.Sub(c.last).Seconds()
	havePrev := !c.last.IsZero() && dt > 0
	c.gen++
	c.buf = c.buf[:0]
	var states [256]uint64
	var nProcs, nThreads uint64
	var st PIDStat
	var act collect.Activity
	haveAct := false
	// The task iterator reads every process in one pass: nothing to
	// leave out.
	if c.activity != nil && c.hostCgroupNS() && !c.useLister() {
		act, haveAct = c.activity.CgroupActivity(now)
	}
	// tally counts e, seen this scan, with delta ticks of CPU since the
	// last.
	tally := func(pid int32, e *procEntry, delta uint64) {
		nProcs++
		nThreads += e.threads
		states[e.state]++
		e.seen = c.gen
		c.buf = append(c.buf, procSample{pid: pid, e: e, delta: delta, ticks: e.ticks, rss: e.rss, vsize: e.vsize})
	}
	// account takes what st says of process pid.
	account := func(pid uint64, st *PIDStat) {
		ticks := st.UTime + st.STime
		e, ok := c.procs[int32(pid)]
		var delta uint64
		switch {
		case ok && e.start == st.StartTime:
			// A listing that read the process while one of its threads
			// exited may miss that thread's time once (the kernel moves
			// it to the process's total as it unlinks the thread): kept
			// at what was read before, the next scan's share is not the
			// missed time twice over.
			ticks = max(ticks, e.ticks)
			delta = ticks - e.ticks
		case havePrev:
			// New since the last scan: all its CPU time falls in this
			// interval.
			delta = ticks
		}
		if !ok || e.start != st.StartTime {
			e = &procEntry{start: st.StartTime}
			c.procs[int32(pid)] = e
		}
		if string(st.Comm) != e.name {
			e.name = string(st.Comm)
			e.haveCmd = false // exec changed it
		}
		e.ticks = ticks
		e.state, e.threads, e.rss, e.vsize = st.State, st.NumThreads, st.RSS*c.pageSize, st.VSize
		if haveAct {
			if !e.cgroupRead {
				c.readCgroup(e, pid)
			}
			e.actCount, e.haveAct = act.Counts.Of(e.cgroup), true
		}
		tally(int32(pid), e, delta)
	}
	// visit reads one process, named by its PID's digits.
	visit := func(pid uint64, name []byte) bool {
		b, err := c.readStat(int32(pid), name)
		if err != nil {
			return false // exited since the listing
		}
		if parsePIDStat(b, &st) != nil {
			return false
		}
		account(pid, &st)
		return true
	}
	// keep serves an idle process as its last read found it.
	keep := func(pid int32, e *procEntry) {
		if f, ok := c.fds[pid]; ok {
			f.seen = c.gen
		}
		tally(pid, e, 0)
	}
	lastPID, list := c.mustList()
	if c.listed(visit, account) {
		// Every process in one pass; a scan by procfs after this one
		// lists the procfs root.
		c.unlisted = relistEvery
	} else if list {
		c.pids = c.pids[:0]
		err := c.eachPID(func(name []byte) {
			if pid, ok := parseUint(name); ok && visit(pid, name) {
				c.pids = append(c.pids, int32(pid))
			}
		})
		if err != nil {
			return noData(c.log, "processes", fmt.Errorf("reading processes: %w", err))
		}
		c.unlisted = 0
	} else {
		// Those of the last scan, less the ones that exited, and those
		// of the PIDs given out since.
		pids := c.pids[:0]
		for _, pid := range c.pids {
			if e, ok := c.procs[pid]; ok && haveAct && e.idle(&act) {
				keep(pid, e)
				pids = append(pids, pid)
				continue
			}
			c.name = strconv.AppendInt(c.name[:0], int64(pid), 10)
			if visit(uint64(pid), c.name) {
				pids = append(pids, pid)
			}
		}
		for pid := c.lastPID + 1; pid <= lastPID; pid++ {
			if e, ok := c.procs[int32(pid)]; ok && e.seen == c.gen {
				continue // listed last time already
			}
			c.name = strconv.AppendInt(c.name[:0], int64(pid), 10)
			if c.isProcess(pid, c.name) && visit(pid, c.name) {
				pids = append(pids, int32(pid))
			}
		}
		c.pids = pids
		c.unlisted++
	}
	c.lastPID = lastPID
	for pid, e := range c.procs {
		if e.seen != c.gen {
			delete(c.procs, pid)
		}
	}
	for pid, f := range c.fds {
		if f.seen != c.gen {
			unix.Close(f.fd)
			delete(c.fds, pid)
		}
	}
	c.last = now
	c.scans++
	c.states = states

	var memTotal uint64
	if b, err := c.meminfo.read(c.r); err == nil {
		_ = parseMeminfo(b, func(key []byte, v uint64, _ bool) {
			if string(key) == "MemTotal" {
				memTotal = v
			}
		})
	}
	topCPU := c.topByCPU(dt, havePrev)
	topMem := c.topByMem(memTotal)

	c.emit(nProcs, nThreads)
	c.publish(func() {
		c.nProcs, c.nThreads = nProcs, nThreads
		c.topCPU, c.topMem = topCPU, topMem
	})
	return nil
}

// Listing the procfs root costs about as much as reading every process
// (the kernel makes a dentry for each: 1.7 ms of a 4.7 ms scan beside 150
// idle containers), and finds few new processes. The kernel gives out
// PIDs in turn, each fork and clone the next free one, and /proc/loadavg's
// last field is the last it gave: a process made since the last scan has
// a PID between the two. So a scan reads the processes it knows and asks
// for those few PIDs alone; it lists the root only when more than
// maxNewPIDs were given out, when the counter wrapped around, every
// relistEvery scans (a wrap that came back past the same value in
// between) and when procfs is not of this process's own PID namespace,
// whose last PID is the only one /proc/loadavg gives.
const (
	maxNewPIDs  = 128
	relistEvery = 12
)

// procfsOwnPIDNS reports whether procfs is a mount of this process's PID
// namespace, once: its "self" names this process.
func (c *processesCollector) procfsOwnPIDNS() bool {
	if c.ownPIDNS == 0 {
		c.ownPIDNS = -1
		if l, err := os.Readlink(filepath.Join(c.procfs, "self")); err == nil && l == strconv.Itoa(os.Getpid()) {
			c.ownPIDNS = 1
		}
	}
	return c.ownPIDNS > 0
}

// mustList returns the last PID the kernel gave out, and whether the scan
// must list the procfs root to find its processes.
func (c *processesCollector) mustList() (uint64, bool) {
	b, err := c.loadavg.read(c.r)
	if err != nil {
		return 0, true
	}
	// "0.52 0.58 0.59 2/218 4242": the last PID.
	pid, ok := parseUint(nthField(b, 4))
	return pid, !ok || !c.procfsOwnPIDNS() || c.scans == 0 || pid < c.lastPID || pid-c.lastPID > maxNewPIDs || c.unlisted+1 >= relistEvery
}

// isProcess reports whether the task pid (its digits in name) exists and
// leads its thread group: the procfs root lists only those, while a
// thread's TID opens as well.
func (c *processesCollector) isProcess(pid uint64, name []byte) bool {
	b, err := c.r.read(c.pidPath(name, "status"))
	if err != nil {
		return false
	}
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			tgid, ok := parseUint(bytes.TrimSpace(v))
			return ok && tgid == pid
		}
	}
	return false
}

// count is the tick between two scans: the process count from the
// directory listing alone and the thread count from /proc/loadavg, both
// cheap; states and the top lists stay those of the last scan, less the
// processes that exited.
func (c *processesCollector) count() error {
	// Between scans only the thread count is read again: /proc/loadavg
	// carries it for free, while counting processes means listing /proc,
	// which with a few dozen containers' shims cost a tenth of the agent's
	// CPU. The process count and the top lists are the last scan's.
	c.mu.RLock()
	nProcs, nThreads := c.nProcs, c.nThreads
	c.mu.RUnlock()
	if b, err := c.loadavg.read(c.r); err == nil {
		// "0.52 0.58 0.59 2/218 4242": runnable/all threads.
		x := nthField(b, 3)
		if j := bytes.IndexByte(x, '/'); j >= 0 {
			if v, ok := parseUint(x[j+1:]); ok {
				nThreads = v
			}
		}
	}
	c.emit(nProcs, nThreads)
	c.publish(func() { c.nThreads = nThreads })
	return nil
}

// emit prepares node_exporter's processes families.
func (c *processesCollector) emit(nProcs, nThreads uint64) {
	c.begin()
	c.add(c.threadsDesc, prometheus.GaugeValue, float64(nThreads), nil)
	if v, err := c.thrMax.readUint(c.r); err == nil {
		c.add(c.maxThreadsDesc, prometheus.GaugeValue, float64(v), nil)
	}
	for s, n := range c.states {
		if n == 0 {
			continue
		}
		if c.stateLV[s] == nil {
			c.stateLV[s] = []string{string(rune(s))}
		}
		c.add(c.stateDesc, prometheus.GaugeValue, float64(n), c.stateLV[s])
	}
	c.add(c.pidsDesc, prometheus.GaugeValue, float64(nProcs), nil)
	if v, err := c.pidMax.readUint(c.r); err == nil {
		c.add(c.maxPidsDesc, prometheus.GaugeValue, float64(v), nil)
	}
}

// insertTop keeps idx, the indexes of the best samples so far, sorted and at
// most n long; better says whether sample a ranks above b.
func insertTop(idx []int, n, i int, better func(a, b int) bool) []int {
	pos := len(idx)
	for pos > 0 && better(i, idx[pos-1]) {
		pos--
	}
	if pos >= n {
		return idx
	}
	if len(idx) < n {
		idx = append(idx, 0)
	}
	copy(idx[pos+1:], idx[pos:len(idx)-1])
	idx[pos] = i
	return idx
}

func (c *processesCollector) topByCPU(dt float64, havePrev bool) []metrics.ProcessCPUMetrics {
	var idxBuf [maxTopN]int
	idx := idxBuf[:0]
	n := min(c.topN, len(idxBuf))
	better := func(a, b int) bool {
		x, y := &c.buf[a], &c.buf[b]
		if x.delta != y.delta {
			return x.delta > y.delta
		}
		if x.ticks != y.ticks {
			return x.ticks > y.ticks
		}
		return x.pid < y.pid
	}
	for i := range c.buf {
		idx = insertTop(idx, n, i, better)
	}
	out := make([]metrics.ProcessCPUMetrics, 0, len(idx))
	for _, i := range idx {
		s := &c.buf[i]
		p := metrics.ProcessCPUMetrics{
			PID:        int(s.pid),
			Name:       s.e.name,
			Command:    c.command(s),
			CPUSeconds: float64(s.ticks) / userHZ,
		}
		if havePrev {
			p.UsagePercent = float64(s.delta) / userHZ / dt * 100
		}
		out = append(out, p)
	}
	return out
}

func (c *processesCollector) topByMem(memTotal uint64) []metrics.ProcessMemoryMetrics {
	var idxBuf [maxTopN]int
	idx := idxBuf[:0]
	n := min(c.topN, len(idxBuf))
	better := func(a, b int) bool {
		x, y := &c.buf[a], &c.buf[b]
		if x.rss != y.rss {
			return x.rss > y.rss
		}
		return x.pid < y.pid
	}
	for i := range c.buf {
		idx = insertTop(idx, n, i, better)
	}
	out := make([]metrics.ProcessMemoryMetrics, 0, len(idx))
	for _, i := range idx {
		s := &c.buf[i]
		p := metrics.ProcessMemoryMetrics{
			PID:          int(s.pid),
			Name:         s.e.name,
			Command:      c.command(s),
			RSSBytes:     s.rss,
			VirtualBytes: s.vsize,
		}
		if memTotal > 0 {
			p.UsagePercent = float64(s.rss) / float64(memTotal) * 100
		}
		out = append(out, p)
	}
	return out
}

// command returns the process's command line, read once per process (and
// again after an exec); kernel threads have none and show as "[name]", as
// ps(1) shows them. Without CommandLines it is the process name: other
// users' argv is theirs.
func (c *processesCollector) command(s *procSample) string {
	if !c.cmdLines {
		return s.e.name
	}
	if s.e.haveCmd {
		return s.e.cmd
	}
	var pid [20]byte
	b, err := c.r.read(c.pidPath(strconv.AppendInt(pid[:0], int64(s.pid), 10), "cmdline"))
	if err != nil {
		return "[" + s.e.name + "]"
	}
	b = bytes.TrimRight(b, "\x00")
	if len(b) > maxCommand {
		b = b[:maxCommand]
	}
	cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	if cmd == "" {
		cmd = "[" + s.e.name + "]"
	}
	s.e.cmd, s.e.haveCmd = cmd, true
	return cmd
}

func (c *processesCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.System.Processes = uint32(c.nProcs)
	m.System.Threads = uint32(c.nThreads)
	// Fresh non-nil slices: the snapshot outlives this tick, and JSON
	// shows an empty list as [] rather than null.
	m.CPU.Processes = append(make([]metrics.ProcessCPUMetrics, 0, len(c.topCPU)), c.topCPU...)
	m.Memory.Processes = append(make([]metrics.ProcessMemoryMetrics, 0, len(c.topMem)), c.topMem...)
}
