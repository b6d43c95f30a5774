// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// ErrGone is returned by Read when the cgroup was removed: its files now
// fail with ENODEV.
var ErrGone = errors.New("cgroup removed")

// file is one counter file: in which hierarchy, its name, how to parse it.
type file struct {
	ctrl  string // v1 controller hierarchy; "" for the unified one
	name  string
	parse func([]byte, *Stats) error
}

// kind sorts files by how often they change.
type kind uint8

const (
	kindCounter kind = iota // moves while the container runs
	kindUsage               // the CPU total: read alone to tell idle from busy
	kindSetting             // limits and CFS settings: change on `docker update`
	// kindIdle moves also while none of the cgroup's tasks runs: memory
	// (reclaim uncharges and ages its pages, swap-out).
	kindIdle
	// kindIdleIO is block I/O, which moves without the cgroup's tasks
	// running when its dirty pages are written back.
	kindIdleIO
	// kindApart is read by ReadProcs alone (OpenOptions.ProcsApart).
	kindApart
)

// kindOf classifies a file by name.
func kindOf(name string) kind {
	switch name {
	case "memory.usage_in_bytes", "memory.stat", "memory.current", "memory.events", "memory.swap.current":
		return kindIdle
	case "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive", "io.stat":
		return kindIdleIO
	case "cpuacct.usage":
		return kindUsage
	case "cpu.stat":
		// v2's cpu.stat carries the total; v1's only throttling.
		return kindUsage
	case "memory.limit_in_bytes", "memory.max", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes",
		"memory.low", "memory.swap.max", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares",
		"cpu.max", "cpu.weight", "pids.max":
		return kindSetting
	}
	return kindCounter
}

// The files read per controller, v1 then v2. A file missing at Open (an
// older kernel without memory.peak or memory.swap.current) is
// skipped and its fields stay 0.
var (
	v1Files = [numControllers][]file{
		Memory: {
			{"memory", "memory.usage_in_bytes", func(b []byte, s *Stats) (err error) { s.Memory.Usage, err = parseSingle(b); return }},
			{"memory", "memory.stat", func(b []byte, s *Stats) error { return parseMemoryStatV1(b, &s.Memory) }},
			{"memory", "memory.limit_in_bytes", func(b []byte, s *Stats) (err error) {
				s.Memory.Limit, err = parseSingle(b)
				if s.Memory.Limit >= unlimitedV1 {
					s.Memory.Limit = 0
				}
				return
			}},
			{"memory", "memory.soft_limit_in_bytes", func(b []byte, s *Stats) (err error) {
				s.Memory.ReservationLimit, err = parseSingle(b)
				if s.Memory.ReservationLimit >= unlimitedV1 {
					s.Memory.ReservationLimit = 0
				}
				return
			}},
			{"memory", "memory.memsw.limit_in_bytes", func(b []byte, s *Stats) (err error) {
				s.Memory.SwapLimit, err = parseSingle(b)
				if s.Memory.SwapLimit >= unlimitedV1 {
					s.Memory.SwapLimit = 0
				}
				return
			}},
			{"memory", "memory.max_usage_in_bytes", func(b []byte, s *Stats) (err error) { s.Memory.MaxUsage, err = parseSingle(b); return }},
			{"memory", "memory.failcnt", func(b []byte, s *Stats) (err error) { s.Memory.Failcnt, err = parseSingle(b); return }},
			{"memory", "memory.oom_control", func(b []byte, s *Stats) error { return parseOOMControlV1(b, &s.Memory) }},
		},
		CPU: {
			{"cpuacct", "cpuacct.usage", func(b []byte, s *Stats) (err error) { s.CPU.UsageNanos, err = parseSingle(b); return }},
			{"cpuacct", "cpuacct.stat", func(b []byte, s *Stats) error { return parseCPUAcctStat(b, &s.CPU) }},
			{"cpu", "cpu.stat", func(b []byte, s *Stats) error { return parseCPUStat(b, &s.CPU) }},
			{"cpu", "cpu.cfs_quota_us", func(b []byte, s *Stats) (err error) { s.CPU.QuotaMicros, err = parseSingle(b); return }},
			{"cpu", "cpu.cfs_period_us", func(b []byte, s *Stats) (err error) { s.CPU.PeriodMicros, err = parseSingle(b); return }},
			{"cpu", "cpu.shares", func(b []byte, s *Stats) (err error) { s.CPU.Shares, err = parseSingle(b); return }},
		},
		Pids: {
			{"pids", "pids.current", func(b []byte, s *Stats) (err error) { s.Pids.Current, err = parseSingle(b); return }},
			{"pids", "pids.max", func(b []byte, s *Stats) (err error) { s.Pids.Limit, err = parseSingle(b); return }},
		},
		IO: {
			// The throttle files count every bio the cgroup issues, with
			// any I/O scheduler; the bfq/cfq ones only under that scheduler.
			{"blkio", "blkio.throttle.io_service_bytes_recursive", func(b []byte, s *Stats) error { return parseBlkioV1(b, &s.IO, true) }},
			{"blkio", "blkio.throttle.io_serviced_recursive", func(b []byte, s *Stats) error { return parseBlkioV1(b, &s.IO, false) }},
		},
	}
	v2Files = [numControllers][]file{
		Memory: {
			{"", "memory.current", func(b []byte, s *Stats) (err error) { s.Memory.Usage, err = parseSingle(b); return }},
			{"", "memory.stat", func(b []byte, s *Stats) error { return parseMemoryStatV2(b, &s.Memory) }},
			{"", "memory.max", func(b []byte, s *Stats) (err error) { s.Memory.Limit, err = parseSingle(b); return }},
			{"", "memory.low", func(b []byte, s *Stats) (err error) { s.Memory.ReservationLimit, err = parseSingle(b); return }},
			{"", "memory.swap.max", func(b []byte, s *Stats) (err error) { s.Memory.SwapLimit, err = parseSingle(b); return }},
			{"", "memory.peak", func(b []byte, s *Stats) (err error) { s.Memory.MaxUsage, err = parseSingle(b); return }},
			{"", "memory.events", func(b []byte, s *Stats) error { return parseMemoryEventsV2(b, &s.Memory) }},
			{"", "memory.swap.current", func(b []byte, s *Stats) (err error) { s.Memory.Swap, err = parseSingle(b); return }},
		},
		CPU: {
			{"", "cpu.stat", func(b []byte, s *Stats) error { return parseCPUStat(b, &s.CPU) }},
			{"", "cpu.max", func(b []byte, s *Stats) error { return parseCPUMax(b, &s.CPU) }},
			{"", "cpu.weight", func(b []byte, s *Stats) error {
				w, err := parseSingle(b)
				s.CPU.Shares = WeightToShares(w)
				return err
			}},
		},
		Pids: {
			{"", "pids.current", func(b []byte, s *Stats) (err error) { s.Pids.Current, err = parseSingle(b); return }},
			{"", "pids.max", func(b []byte, s *Stats) (err error) { s.Pids.Limit, err = parseSingle(b); return }},
		},
		IO: {
			{"", "io.stat", func(b []byte, s *Stats) error { return parseIOStatV2(b, &s.IO) }},
		},
	}
	// PSI files live in the unified hierarchy whatever the controllers.
	pressureFiles = []file{
		{"", "cpu.pressure", func(b []byte, s *Stats) error { return parsePressure(b, &s.Pressure.CPUSome, &s.Pressure.CPUFull) }},
		{"", "memory.pressure", func(b []byte, s *Stats) error {
			return parsePressure(b, &s.Pressure.MemorySome, &s.Pressure.MemoryFull)
		}},
		{"", "io.pressure", func(b []byte, s *Stats) error { return parsePressure(b, &s.Pressure.IOSome, &s.Pressure.IOFull) }},
	}
)

// Reader reads one cgroup's counters. It keeps each counter file open and
// re-reads it with pread at offset 0 (seq_file regenerates the content), so
// a tick costs one syscall per file and no allocations. Release closes the
// files of a cgroup that is read rarely; the next read opens them again.
type Reader struct {
	files []openFile
	// dirs are the directories of the files, each a mount point and the
	// cgroup's path in it, joined only when a released file is opened
	// again: a full path per file, kept for that, was 2.2 kB a
	// container, and the five slices of the files' fields, grown by
	// append, as much again (3.7 MB of the live heap beside 1 000
	// containers, in a heap profile of the agent; 0.5 kB a container
	// now).
	dirs [][2]string
	// usage is the index of the file holding the CPU total, -1 if none.
	usage int
	// memStat is the index of memory.stat, -1 if none. statUsage is the
	// memory usage as of its last read, statSkips how many ReadIdle
	// reads left it out since (see IdleSkips); ioSkips how many
	// ReadIdleQuiet reads in a row left the block I/O files out.
	memStat   int
	statUsage uint64
	// procs is the index of cgroup.procs, -1 if none.
	procs     int
	statRead  bool
	statSkips int
	ioSkips   int
}

// openFile is one of a Reader's files.
type openFile struct {
	*file
	// fd is -1 while the file is released.
	fd   int32
	kind kind
	dir  uint8 // index in Reader.dirs
}

// procsFile is cgroup.procs, counted rather than parsed.
var procsFile = file{name: "cgroup.procs"}

// IdleSkips is how many ReadIdle reads in a row may leave memory.stat
// out while the cgroup's memory usage has not moved since it was read:
// with the containers collector's idle refresh every 10 s, an idle
// container's memory.stat is read at least once a minute. memory.stat is
// most of an idle refresh (on v1, 13.7 µs of 19 µs for the four files
// here, before parsing its 36 lines) and the usage file, read first, says
// whether its memory moved; what moves without the usage (pages aging
// from the active to the inactive lists, and so the working set; dirty
// pages written back) is then at most six refreshes old. ReadIdleQuiet
// leaves the block I/O files out as many times.
const IdleSkips = 5

// ReadMode says which files Read reads.
type ReadMode int

const (
	// ReadAll reads every file.
	ReadAll ReadMode = iota
	// ReadCounters skips the settings (limits, quota, period, shares,
	// pids.max), which only change when someone updates the container.
	ReadCounters
	// ReadIdle reads only what moves while none of the cgroup's tasks
	// runs: memory usage, memory.stat, memory events and swap, block I/O.
	// memory.stat is left out while the usage has not moved since it was
	// read, up to IdleSkips reads in a row. The rest (CPU, processes,
	// pressure, OOM and failure counts, the peak) keep their previous
	// values in s.
	ReadIdle
	// ReadIdleQuiet is ReadIdle for a cgroup that the eBPF block probe
	// saw issue no request since the last read: its block I/O files are
	// left out too, up to IdleSkips reads in a row (the probe then
	// stands for them; the files still catch what it could not see, at
	// most that many reads late). On v1, the two block I/O files were 22
	// of an idle refresh's 80 µs.
	ReadIdleQuiet
)

// reads says whether mode reads file i.
func (r *Reader) reads(mode ReadMode, i int) bool {
	k := r.files[i].kind
	if k == kindApart {
		return false
	}
	switch mode {
	case ReadCounters:
		return k != kindSetting
	case ReadIdle:
		return k == kindIdle || k == kindIdleIO
	case ReadIdleQuiet:
		return k == kindIdle
	}
	return true
}

// OpenOptions choose optional files.
type OpenOptions struct {
	// NoPressure leaves out cpu.pressure, memory.pressure and io.pressure.
	NoPressure bool
	// ProcsV1 counts the processes from the v1 pids hierarchy's
	// cgroup.procs where it has the cgroup, not cgroup2's: on a hybrid
	// host the cgroup2 root's took 714-744 µs to read, the pids root's
	// 35-55 µs for the same 227 processes.
	ProcsV1 bool
	// ProcsApart leaves cgroup.procs out of Read: ReadProcs reads it,
	// when its caller chooses. The kernel lists every thread of the
	// cgroup to write it, which at the host's root, beside 1 000
	// containers' runtime shims, took 3.5 ms.
	ProcsApart bool
}

// Open opens the counter files of the cgroup at p. Files that do not exist
// are skipped; Open fails only if none exists.
func (h *Hierarchy) Open(p Paths) (*Reader, error) { return h.OpenWith(p, OpenOptions{}) }

// OpenWith is Open with options.
func (h *Hierarchy) OpenWith(p Paths, o OpenOptions) (*Reader, error) {
	r := &Reader{usage: -1, memStat: -1, procs: -1}
	// Gathered here and copied once, at their final size.
	files := make([]openFile, 0, 32)
	dirs := make([][2]string, 0, 8)
	add := func(mnt, rel string, f *file) {
		fd, err := unix.Open(filepath.Join(mnt, rel, f.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		k := kindOf(f.name)
		// On v1, cpu.stat only has throttling; the total is cpuacct.usage.
		if k == kindUsage && f.name == "cpu.stat" && !h.onV2[CPU] {
			k = kindCounter
		}
		switch {
		case k == kindUsage:
			r.usage = len(files)
		case f.name == "memory.stat":
			r.memStat = len(files)
		case f == &procsFile:
			r.procs = len(files)
			if o.ProcsApart {
				k = kindApart
			}
		}
		d := slices.Index(dirs, [2]string{mnt, rel})
		if d < 0 {
			d = len(dirs)
			dirs = append(dirs, [2]string{mnt, rel})
		}
		files = append(files, openFile{file: f, fd: int32(fd), kind: k, dir: uint8(d)})
	}
	for c := Controller(0); c < numControllers; c++ {
		if h.onV2[c] {
			if p.V2 == "" {
				continue
			}
			for i := range v2Files[c] {
				add(h.Unified, p.V2, &v2Files[c][i])
			}
			continue
		}
		for i := range v1Files[c] {
			f := &v1Files[c][i]
			mnt, ok := h.V1[f.ctrl]
			rel, ok2 := p.V1[f.ctrl]
			if !ok || !ok2 {
				continue
			}
			add(mnt, rel, f)
		}
	}
	if h.Unified != "" && p.V2 != "" && !o.NoPressure {
		for i := range pressureFiles {
			add(h.Unified, p.V2, &pressureFiles[i])
		}
	}
	v1Procs := h.V1["pids"] != "" && p.V1["pids"] != ""
	switch {
	case v1Procs && o.ProcsV1:
		add(h.V1["pids"], p.V1["pids"], &procsFile)
	case h.Unified != "" && p.V2 != "":
		add(h.Unified, p.V2, &procsFile)
	case v1Procs:
		add(h.V1["pids"], p.V1["pids"], &procsFile)
	}
	r.files, r.dirs = slices.Clone(files), slices.Clone(dirs)
	if len(r.files) <= 1 {
		r.Close()
		return nil, fmt.Errorf("opening cgroup %s: %w", p.ID(), ErrGone)
	}
	return r, nil
}

// Read fills s from the cgroup's files; with ReadCounters the settings in
// s keep their previous values. buf is scratch space, grown as needed and
// kept by the caller for the next Read. It returns ErrGone once the cgroup
// was removed, with s as the last Read left it: a removed cgroup's last
// counters are its final ones.
func (r *Reader) Read(s *Stats, buf *[]byte, mode ReadMode) error {
	if mode == ReadIdleQuiet && r.ioSkips >= IdleSkips {
		mode = ReadIdle
	}
	if mode == ReadIdleQuiet {
		// The devices stay as the last read of the files found them.
		r.ioSkips++
	} else {
		r.ioSkips = 0
	}
	prevIO := s.IO.Devices
	if mode != ReadIdleQuiet {
		s.IO.Devices = s.IO.Devices[:0]
	}
	var errs error
	for i := range r.files {
		if !r.reads(mode, i) {
			continue
		}
		// The usage file comes first: s holds its value of this read.
		if i == r.memStat && (mode == ReadIdle || mode == ReadIdleQuiet) && r.statRead && s.Memory.Usage == r.statUsage && r.statSkips < IdleSkips {
			r.statSkips++
			continue
		}
		err := r.readFile(i, s, buf)
		if i == r.memStat {
			// memory.stat's parsers leave the usage alone.
			r.statRead, r.statUsage, r.statSkips = err == nil, s.Memory.Usage, 0
		}
		if err != nil {
			if err == ErrGone {
				if len(s.IO.Devices) == 0 {
					// No I/O file was parsed: the array still holds
					// the previous devices.
					s.IO.Devices = prevIO
				}
				return err
			}
			errs = errors.Join(errs, err)
		}
	}
	if m := &s.Memory; m.Usage > m.InactiveFile {
		m.WorkingSet = m.Usage - m.InactiveFile
	} else {
		m.WorkingSet = 0
	}
	return errs
}

// ReadUsage reads only the file with the CPU total into s: one pread that
// tells whether the container ran since the last read.
func (r *Reader) ReadUsage(s *Stats, buf *[]byte) error {
	if r.usage < 0 {
		return nil
	}
	return r.readFile(r.usage, s, buf)
}

// ReadProcs reads the process count into s from cgroup.procs, for a
// reader opened with OpenOptions.ProcsApart; otherwise Read counts them.
func (r *Reader) ReadProcs(s *Stats, buf *[]byte) error {
	if r.procs < 0 || r.files[r.procs].kind != kindApart {
		return nil
	}
	return r.readFile(r.procs, s, buf)
}

func (r *Reader) readFile(i int, s *Stats, buf *[]byte) error {
	if len(*buf) < 4096 {
		*buf = make([]byte, 16384)
	}
	f := &r.files[i]
	if f.fd < 0 {
		d := r.dirs[f.dir]
		fd, err := unix.Open(filepath.Join(d[0], d[1], f.name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return ErrGone
		}
		if err != nil {
			return fmt.Errorf("opening %s: %w", f.name, err)
		}
		f.fd = int32(fd)
	}
	if i == r.procs {
		return r.countProcs(i, s, *buf)
	}
	var n int
	var err error
	for {
		n, err = unix.Pread(int(f.fd), *buf, 0)
		if err != nil || n < len(*buf) {
			break
		}
		*buf = make([]byte, 2*len(*buf))
	}
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return ErrGone
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", f.name, err)
	}
	if err := f.parse((*buf)[:n], s); err != nil {
		return fmt.Errorf("reading %s: %w", f.name, err)
	}
	return nil
}

// countProcs counts the lines of cgroup.procs, reading it to its end. Its
// seq_file writes a record per process into a buffer of a page, and one
// read returns what that buffer holds: a short read is not the end of the
// file, as it is for the files that write themselves in one record (a
// host's root with 1 071 processes read as 766).
func (r *Reader) countProcs(i int, s *Stats, buf []byte) error {
	var n uint64
	for off := int64(0); ; {
		m, err := unix.Pread(int(r.files[i].fd), buf, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
			return ErrGone
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", r.files[i].name, err)
		}
		if m == 0 {
			break
		}
		n += uint64(bytes.Count(buf[:m], []byte{'\n'}))
		off += int64(m)
	}
	s.Processes = n
	return nil
}

// Files is the number of files the reader reads, open or released.
func (r *Reader) Files() int { return len(r.files) }

// Held is the number of files the reader holds open.
func (r *Reader) Held() int {
	n := 0
	for _, f := range r.files {
		if f.fd >= 0 {
			n++
		}
	}
	return n
}

// Release closes the files that mode does not read, but for the one with
// the CPU total (ReadUsage stays one pread); the next read of each opens
// it again. An idle cgroup, read with ReadIdle, then holds 3 to 5
// descriptors instead of some 20 (one per file on a v1 host): 1 000 idle
// containers would otherwise exhaust a limit of 20 000. Opening costs:
// a full read that opens every file took 250-440 µs here, against 47-63
// µs with them open (BenchmarkReaderReopen, BenchmarkReader), so only
// cgroups that stay idle should release theirs.
func (r *Reader) Release(mode ReadMode) {
	for i := range r.files {
		if f := &r.files[i]; f.fd >= 0 && i != r.usage && !r.reads(mode, i) {
			unix.Close(int(f.fd))
			f.fd = -1
		}
	}
}

// Close closes the files.
func (r *Reader) Close() error {
	var errs error
	for _, f := range r.files {
		if f.fd >= 0 {
			errs = errors.Join(errs, unix.Close(int(f.fd)))
		}
	}
	r.files = nil
	return errs
}

// ReadStats opens, reads and closes the cgroup at p: for one-off reads.
func (h *Hierarchy) ReadStats(p Paths) (Stats, error) {
	var s Stats
	r, err := h.Open(p)
	if err != nil {
		return s, err
	}
	defer r.Close()
	var buf []byte
	err = r.Read(&s, &buf, ReadAll)
	return s, err
}
