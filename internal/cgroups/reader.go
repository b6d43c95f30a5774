// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"

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
	procsFile = func(b []byte, s *Stats) error { s.Processes = countLines(b); return nil }
)

// Reader reads one cgroup's counters. It keeps each counter file open and
// re-reads it with pread at offset 0 (seq_file regenerates the content), so
// a tick costs one syscall per file and no allocations.
type Reader struct {
	fds    []int
	parses []func([]byte, *Stats) error
	names  []string
}

// Open opens the counter files of the cgroup at p. Files that do not exist
// are skipped; Open fails only if none exists.
func (h *Hierarchy) Open(p Paths) (*Reader, error) {
	r := &Reader{}
	add := func(dir, name string, parse func([]byte, *Stats) error) {
		fd, err := unix.Open(filepath.Join(dir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		r.fds = append(r.fds, fd)
		r.parses = append(r.parses, parse)
		r.names = append(r.names, name)
	}
	for c := Controller(0); c < numControllers; c++ {
		if h.onV2[c] {
			if p.V2 == "" {
				continue
			}
			for _, f := range v2Files[c] {
				add(filepath.Join(h.Unified, p.V2), f.name, f.parse)
			}
			continue
		}
		for _, f := range v1Files[c] {
			mnt, ok := h.V1[f.ctrl]
			rel, ok2 := p.V1[f.ctrl]
			if !ok || !ok2 {
				continue
			}
			add(filepath.Join(mnt, rel), f.name, f.parse)
		}
	}
	switch {
	case h.Unified != "" && p.V2 != "":
		add(filepath.Join(h.Unified, p.V2), "cgroup.procs", procsFile)
	case h.V1["pids"] != "" && p.V1["pids"] != "":
		add(filepath.Join(h.V1["pids"], p.V1["pids"]), "cgroup.procs", procsFile)
	}
	if len(r.fds) <= 1 {
		r.Close()
		return nil, fmt.Errorf("opening cgroup %s: %w", p.ID(), ErrGone)
	}
	return r, nil
}

// Read fills s from the cgroup's files. buf is scratch space, grown as
// needed and kept by the caller for the next Read. It returns ErrGone once
// the cgroup was removed; s then holds no useful values.
func (r *Reader) Read(s *Stats, buf *[]byte) error {
	devs := s.IO.Devices[:0]
	*s = Stats{}
	s.IO.Devices = devs
	if len(*buf) < 4096 {
		*buf = make([]byte, 16384)
	}
	var errs error
	for i, fd := range r.fds {
		var n int
		var err error
		for {
			n, err = unix.Pread(fd, *buf, 0)
			if err != nil || n < len(*buf) {
				break
			}
			*buf = make([]byte, 2*len(*buf))
		}
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
			return ErrGone
		}
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("reading %s: %w", r.names[i], err))
			continue
		}
		if err := r.parses[i]((*buf)[:n], s); err != nil {
			errs = errors.Join(errs, fmt.Errorf("reading %s: %w", r.names[i], err))
		}
	}
	if m := &s.Memory; m.Usage > m.InactiveFile {
		m.WorkingSet = m.Usage - m.InactiveFile
	}
	return errs
}

// Files is the number of files the reader keeps open.
func (r *Reader) Files() int { return len(r.fds) }

// Close closes the files.
func (r *Reader) Close() error {
	var errs error
	for _, fd := range r.fds {
		errs = errors.Join(errs, unix.Close(fd))
	}
	r.fds = nil
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
	err = r.Read(&s, &buf)
	return s, err
}
