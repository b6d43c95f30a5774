// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/mountinfo"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// node_exporter's Linux defaults.
const (
	defMountPointsExcluded = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	defFSTypesExcluded     = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$`
)

// Mount is one line of /proc/<pid>/mountinfo.
type Mount = mountinfo.Mount

type fsMount struct {
	Mount
	statPath string
	ro       bool
	lvInfo   []string // device, major, minor, mountpoint
	lvOK     []string // device, mountpoint, fstype, device_error=""
	lvErr    []string // the same with the last error
	partKey  string   // dedup key for the snapshot; "" when not a partition
}

type fsResult struct {
	st  unix.Statfs_t
	err error
}

// statfsWorker runs statfs calls one at a time. When a call outlives the
// timeout the worker is abandoned to its call, and a new one serves the
// next mounts; the stuck mount is skipped until its call returns.
type statfsWorker struct {
	req  chan string
	resp chan fsResult
}

type filesystemCollector struct {
	metricSet
	log *slog.Logger
	r   *reader
	// paths are mountinfo.HostTables: init's table when its mount points
	// can be statted (below roots[0]), then our own, whose are our paths;
	// root is that of the table last read.
	paths    []cpath
	roots    []string
	root     string
	mpEx     *regexp.Regexp
	fsEx     *regexp.Regexp
	timeout  time.Duration
	noStatfs bool
	sh       *shared

	// sum is a hash of the table last parsed (seed's, chosen at random
	// per process), loaded whether one was: a copy of the table to
	// compare was 550 kB beside 1 000 containers' mounts.
	sum     uint64
	seed    maphash.Seed
	loaded  bool
	fsTypes map[string]bool // fsEx's verdict per filesystem type
	watch   mountWatch
	mounts  []fsMount
	res     []fsResult
	worker  *statfsWorker
	timer   *time.Timer

	stuckMu sync.Mutex
	stuck   map[string]struct{}

	size, free, avail, files, filesFree, ro, devErr, purgeable, mountInfo *metricDesc

	parts    []metrics.PartitionMetrics
	partDevs []uint64 // device number of each partition, for its I/O rates
}

func newFilesystemCollector(o collect.Options, ho Options, sh *shared) (*filesystemCollector, error) {
	mp, err := regexp.Compile(ho.FilesystemMountPointsExclude)
	if err != nil {
		return nil, fmt.Errorf("parsing mount points exclude %q: %w", ho.FilesystemMountPointsExclude, err)
	}
	ft, err := regexp.Compile(ho.FilesystemFSTypesExclude)
	if err != nil {
		return nil, fmt.Errorf("parsing fs types exclude %q: %w", ho.FilesystemFSTypesExclude, err)
	}
	l := []string{"device", "mountpoint", "fstype", "device_error"}
	d := func(name, help string) *metricDesc { return newDesc("filesystem", name, help, l...) }
	t := time.NewTimer(time.Hour)
	t.Stop()
	var paths []cpath
	var roots []string
	for _, t := range mountinfo.HostTables(o.Paths.ProcFS, o.Paths.RootFS) {
		paths, roots = append(paths, mkpath(t.Path)), append(roots, t.Root)
	}
	return &filesystemCollector{
		log:       logger(o),
		r:         newReader(16384),
		seed:      maphash.MakeSeed(),
		paths:     paths,
		roots:     roots,
		mpEx:      mp,
		fsEx:      ft,
		timeout:   ho.FilesystemMountTimeout,
		noStatfs:  ho.FilesystemNoStatfs,
		sh:        sh,
		timer:     t,
		fsTypes:   map[string]bool{},
		stuck:     map[string]struct{}{},
		size:      d("size_bytes", "Filesystem size in bytes."),
		free:      d("free_bytes", "Filesystem free space in bytes."),
		avail:     d("avail_bytes", "Filesystem space available to non-root users in bytes."),
		files:     d("files", "Filesystem total file nodes."),
		filesFree: d("files_free", "Filesystem total free file nodes."),
		ro:        d("readonly", "Filesystem read-only status."),
		devErr:    d("device_error", "Whether an error occurred while getting statistics for the given device."),
		purgeable: d("purgeable_bytes", "Filesystem space available including purgeable space (MacOS specific)."),
		mountInfo: newDesc("filesystem", "mount_info", "Filesystem mount information.", "device", "major", "minor", "mountpoint"),
	}, nil
}

func (c *filesystemCollector) Name() string { return "filesystem" }

// isPartition says which mounts the snapshot lists: local filesystems on a
// block device, as df(1) users think of disks. tmpfs and network mounts are
// exported to Prometheus but are not partitions.
func isPartition(m Mount) bool {
	if m.FSType == "tmpfs" || m.FSType == "ramfs" || m.FSType == "devtmpfs" {
		return false
	}
	return m.Major != 0 || strings.HasPrefix(m.Source, "/dev/")
}

// mountWatch tells whether the mount table may have changed since it was
// last read. Reading mountinfo makes the kernel format every mount's
// options, and with a few dozen containers' overlay mounts that costs more
// than all the rest of the collector; but an open mountinfo file raises
// POLLPRI when its mount namespace changes (fs/proc_namespace.c,
// mounts_poll), so a steady host need not read it at all. Files that are
// not procfs (fixture trees) never raise it and are read every tick.
type mountWatch struct {
	fd     int // -1 until opened; 0 is never ours (stdin)
	procfs bool
	last   time.Time
}

// mountRecheck re-reads mountinfo now and then even without an event, in
// case one was missed. The event is a counter's change, which the poll
// compares with the value it saw last (mounts_poll): it cannot be missed
// the way an edge can, so the re-read is a safety net, kept rare because
// a read is what the watch saves (some 3 ms of the agent's tick beside
// 150 containers' mounts, 20 beside 1 000).
const mountRecheck = 10 * time.Minute

func (w *mountWatch) changed(p cpath, now time.Time) bool {
	if w.fd <= 0 {
		fd, err := openat(p, unix.O_RDONLY)
		if err != nil {
			return true
		}
		var st unix.Statfs_t
		w.fd, w.procfs = fd, unix.Fstatfs(fd, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
		w.last = now
		return true
	}
	if !w.procfs || now.Sub(w.last) >= mountRecheck {
		w.last = now
		return true
	}
	pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLPRI}}
	n, err := unix.Poll(pfd, 0)
	if err != nil || (n > 0 && pfd[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0) {
		w.last = now
		return true
	}
	return false
}

func (w *mountWatch) close() {
	if w.fd > 0 {
		unix.Close(w.fd)
		w.fd = 0
	}
}

// load re-parses mountinfo only when it changed: a steady host costs one
// poll per tick.
func (c *filesystemCollector) load(now time.Time) error {
	// The watch opens before the first read, so no change falls between.
	if !c.watch.changed(c.paths[0], now) && c.loaded {
		return nil
	}
	root := c.roots[0]
	b, err := c.r.read(c.paths[0])
	if mountinfo.Unreadable(err) && len(c.paths) > 1 {
		// /proc/1 is hidden with hidepid, or not ours to read in a
		// container without CAP_SYS_PTRACE; fall back to our own view.
		root = c.roots[1]
		b, err = c.r.read(c.paths[1])
	}
	if err != nil {
		return err
	}
	sum := maphash.Bytes(c.seed, b)
	if c.loaded && sum == c.sum && root == c.root {
		return nil
	}
	mounts := make([]fsMount, 0, len(c.mounts))
	seen := map[string]bool{}
	parts := map[string]bool{}
	for rest := b; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		// Most lines of a host running containers are their overlay
		// and network namespace mounts, which the default excludes by
		// type: telling them by their type field alone, before a line is
		// parsed into strings, cut the read of a changed table with
		// 1 000 containers' mounts from 4 ms and 4 100 allocations to
		// 0.6 ms and 76 (BenchmarkFilesystemLoad). On a host where
		// containers come and go it changes about every tick.
		if t, ok := mountinfo.FSType(line); ok && c.fsTypeExcluded(t) {
			continue
		}
		m, err := mountinfo.ParseLine(string(line))
		if err != nil {
			return fmt.Errorf("parsing mountinfo: %w", err)
		}
		if c.mpEx.MatchString(m.MountPoint) || c.fsEx.MatchString(m.FSType) {
			continue
		}
		// A device mounted twice on one mount point would repeat a label set.
		if k := m.Source + "\x00" + m.MountPoint; seen[k] {
			continue
		} else {
			seen[k] = true
		}
		maj, min := strconv.FormatUint(uint64(m.Major), 10), strconv.FormatUint(uint64(m.Minor), 10)
		fm := fsMount{
			Mount:    m,
			statPath: filepath.Join(root, m.MountPoint),
			ro:       m.ReadOnly(),
			lvInfo:   []string{m.Source, maj, min, m.MountPoint},
			lvOK:     []string{m.Source, m.MountPoint, m.FSType, ""},
		}
		if isPartition(m) {
			// Bind mounts and btrfs subvolumes show one device many times.
			k := m.Source
			if !strings.HasPrefix(k, "/dev/") {
				k = maj + ":" + min
			}
			if !parts[k] {
				parts[k] = true
				fm.partKey = k
			}
		}
		mounts = append(mounts, fm)
	}
	c.root = root
	c.sum, c.loaded = sum, true
	c.mounts = mounts
	return nil
}

// maxFSTypes bounds the memo of excluded filesystem types; the kernel
// knows a few dozen.
const maxFSTypes = 256

// fsTypeExcluded is fsEx on a filesystem type, remembered per type.
func (c *filesystemCollector) fsTypeExcluded(t []byte) bool {
	if ex, ok := c.fsTypes[string(t)]; ok {
		return ex
	}
	ex := c.fsEx.Match(t)
	if len(c.fsTypes) < maxFSTypes {
		c.fsTypes[string(t)] = ex
	}
	return ex
}

func (c *filesystemCollector) statfs(path string) (unix.Statfs_t, error) {
	if c.worker == nil {
		w := &statfsWorker{req: make(chan string), resp: make(chan fsResult, 1)}
		go func() {
			for p := range w.req {
				var r fsResult
				r.err = unix.Statfs(p, &r.st)
				c.stuckMu.Lock()
				delete(c.stuck, p)
				c.stuckMu.Unlock()
				w.resp <- r
			}
		}()
		c.worker = w
	}
	w := c.worker
	w.req <- path
	c.timer.Reset(c.timeout)
	select {
	case r := <-w.resp:
		c.timer.Stop()
		return r.st, r.err
	case <-c.timer.C:
		c.stuckMu.Lock()
		c.stuck[path] = struct{}{}
		c.stuckMu.Unlock()
		close(w.req) // the worker exits once its call returns
		c.worker = nil
		c.log.Debug("mount point timed out, skipping it until it responds", "path", path)
		return unix.Statfs_t{}, errMountTimeout
	}
}

// Close stops the statfs worker. A worker stuck in a hung mount's call
// exits when the call returns.
func (c *filesystemCollector) Close() error {
	c.watch.close()
	if c.worker != nil {
		close(c.worker.req)
		c.worker = nil
	}
	return nil
}

var (
	errMountTimeout = errors.New("mountpoint timeout")
	errStatfsOff    = errors.New("statfs disabled")
)

func (c *filesystemCollector) Update(_ context.Context, now time.Time) error {
	if err := c.load(now); err != nil {
		return noData(c.log, "filesystem", fmt.Errorf("reading mountinfo: %w", err))
	}
	if cap(c.res) < len(c.mounts) {
		c.res = make([]fsResult, len(c.mounts))
	}
	c.res = c.res[:len(c.mounts)]
	c.begin()
	var parts []metrics.PartitionMetrics
	var devs []uint64
	for i := range c.mounts {
		m := &c.mounts[i]
		r := &c.res[i]
		switch {
		case c.noStatfs:
			r.err = errStatfsOff
		default:
			c.stuckMu.Lock()
			_, stuck := c.stuck[m.statPath]
			c.stuckMu.Unlock()
			if stuck {
				r.err = errMountTimeout
			} else {
				r.st, r.err = c.statfs(m.statPath)
			}
		}
		ro := 0.0
		if m.ro {
			ro = 1
		}
		if r.err != nil {
			msg := r.err.Error()
			if m.lvErr == nil || m.lvErr[3] != msg {
				m.lvErr = []string{m.Source, m.MountPoint, m.FSType, msg}
			}
			c.add(c.devErr, prometheus.GaugeValue, 1, m.lvErr)
			c.add(c.ro, prometheus.GaugeValue, ro, m.lvErr)
			continue
		}
		st := &r.st
		bs := float64(st.Bsize)
		c.add(c.devErr, prometheus.GaugeValue, 0, m.lvOK)
		c.add(c.ro, prometheus.GaugeValue, ro, m.lvOK)
		c.add(c.size, prometheus.GaugeValue, float64(st.Blocks)*bs, m.lvOK)
		c.add(c.free, prometheus.GaugeValue, float64(st.Bfree)*bs, m.lvOK)
		c.add(c.avail, prometheus.GaugeValue, float64(st.Bavail)*bs, m.lvOK)
		c.add(c.files, prometheus.GaugeValue, float64(st.Files), m.lvOK)
		c.add(c.filesFree, prometheus.GaugeValue, float64(st.Ffree), m.lvOK)
		c.add(c.mountInfo, prometheus.GaugeValue, 1, m.lvInfo)
		c.add(c.purgeable, prometheus.GaugeValue, 0, m.lvOK)
		if m.partKey != "" {
			parts = append(parts, partition(m, st))
			devs = append(devs, devNum(m.Major, m.Minor))
		}
	}
	c.publish(func() { c.parts, c.partDevs = parts, devs })
	return nil
}

// partition is df(1)'s view of a filesystem: used is size minus free, and
// the usage percentage is used over what non-root users could have
// (used + avail), as df computes "Use%".
func partition(m *fsMount, st *unix.Statfs_t) metrics.PartitionMetrics {
	bs := uint64(st.Bsize)
	total, free, avail := st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
	used := total - min(free, total)
	p := metrics.PartitionMetrics{
		Device:         m.Source,
		MountPoint:     m.MountPoint,
		FSType:         m.FSType,
		TotalBytes:     total,
		UsedBytes:      used,
		FreeBytes:      free,
		AvailableBytes: avail,
		ReadOnly:       m.ro,
	}
	if used+avail > 0 {
		p.UsagePercent = float64(used) / float64(used+avail) * 100
	}
	return p
}

// Fill lists the partitions and sums their capacity; each partition carries
// its own block device's I/O rates from diskstats.
func (c *filesystemCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	parts := make([]metrics.PartitionMetrics, len(c.parts))
	copy(parts, c.parts)
	devs := c.partDevs
	c.mu.RUnlock()

	c.sh.mu.Lock()
	for i := range parts {
		if r, ok := c.sh.diskRates[devs[i]]; ok {
			parts[i].ReadBytesPerSec, parts[i].WriteBytesPerSec = r.readBytes, r.writeBytes
			parts[i].ReadOpsPerSec, parts[i].WriteOpsPerSec = r.readOps, r.writeOps
		}
	}
	c.sh.mu.Unlock()

	d := &m.Disk
	d.Partitions = parts
	d.TotalBytes, d.UsedBytes, d.FreeBytes, d.UsagePercent = 0, 0, 0, 0
	var avail uint64
	for _, p := range parts {
		d.TotalBytes += p.TotalBytes
		d.UsedBytes += p.UsedBytes
		d.FreeBytes += p.FreeBytes
		avail += p.AvailableBytes
	}
	if d.UsedBytes+avail > 0 {
		d.UsagePercent = float64(d.UsedBytes) / float64(d.UsedBytes+avail) * 100
	}
}
