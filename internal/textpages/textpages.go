// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package textpages hands back the pages of crmon's own executable that
// only its start-up used.
//
// A process's resident set counts every page of its executable it has
// touched since it started, and the kernel maps up to 64 KiB around each
// page it faults in (fault-around). Starting the agent runs every linked
// package's initialisation, parses the configuration, loads and relocates
// the BPF objects and connects to the engine: on the project's machine that
// left 25 MiB of the 43 MiB binary resident. The ticks and scrapes touch
// about 5 MiB of it in a minute, which fault-around turns into 18 MiB
// mapped again. Release drops the process's mappings of those pages: the
// code and read-only data (the text, rodata and pclntab segments, which
// nothing ever writes) stay in the page cache, shared and clean, and a page
// the agent still runs comes back on a minor fault the next time it is
// touched. The writable data segment is left alone: it holds the program's
// state.
package textpages

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one read-only private mapping of the executable, from
// /proc/self/maps.
type Mapping struct {
	Start, End uint64
	Perms      string
}

// Release drops the process's mappings of its executable's read-only
// pages (madvise MADV_DONTNEED) and returns how many bytes of file-backed
// resident memory that handed back, from /proc/self/status before and
// after. procfs roots /proc.
func Release(procfs string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(procfs+"/self/exe", &st); err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	path, _ := os.Readlink(procfs + "/self/exe")
	b, err := os.ReadFile(procfs + "/self/maps")
	if err != nil {
		return 0, fmt.Errorf("reading mappings: %w", err)
	}
	ms, err := ReadOnlyMappings(b, File{Path: path, Ino: st.Ino, Major: unix.Major(st.Dev), Minor: unix.Minor(st.Dev)})
	if err != nil {
		return 0, err
	}
	// A private mapping's pages the process wrote (the relocated
	// read-only data of a position-independent build, .data.rel.ro, made
	// read-only once relocated) are copies of the file's, counted as
	// Anonymous in smaps: dropping them would bring back the file's
	// unrelocated bytes. Such mappings are kept.
	sm, err := os.ReadFile(procfs + "/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("reading mappings: %w", err)
	}
	written := writtenMappings(sm)
	ms = slices.DeleteFunc(ms, func(m Mapping) bool { return written[m.Start] })
	before, _ := rssFile(procfs)
	var errs []error
	for _, m := range ms {
		// The range comes from the kernel's own list of this process's
		// mappings, so no Go object lives in it and nothing writes to it.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_DONTNEED); e != 0 {
			errs = append(errs, fmt.Errorf("madvise %x-%x: %w", m.Start, m.End, e))
		}
	}
	after, _ := rssFile(procfs)
	return before - after, errors.Join(errs...)
}

// File names the executable: its path as /proc/self/exe reads, and its
// inode and device as stat(2) gives them. A mapping is the file's when its
// inode and device match, or, where they differ (a binary on overlayfs
// shows the layer's inode in maps on some kernels), when its path does.
type File struct {
	Path         string
	Ino          uint64
	Major, Minor uint32
}

// ReadOnlyMappings parses /proc/<pid>/maps (proc_pid_maps(5)) and returns
// the private mappings of exe that are neither writable nor shared: the
// executable's text and read-only data.
func ReadOnlyMappings(maps []byte, exe File) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return nil, fmt.Errorf("parsing mappings: short line %q", sc.Text())
		}
		ino, err := strconv.ParseUint(f[4], 10, 64)
		if err != nil || ino == 0 {
			continue // anonymous
		}
		byPath := exe.Path != "" && len(f) >= 6 && strings.Join(f[5:], " ") == exe.Path
		if !byPath && (ino != exe.Ino || !sameDev(f[3], exe.Major, exe.Minor)) {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("parsing mappings: bad range %q", f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("parsing mappings: bad range %q", f[0])
		}
		out = append(out, Mapping{Start: start, End: end, Perms: perms})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing mappings: %w", err)
	}
	return out, nil
}

// writtenMappings returns the start of each mapping of /proc/<pid>/smaps
// with Anonymous or Swap pages: copies the process wrote of a private
// mapping's file pages, resident or swapped out.
func writtenMappings(smaps []byte) map[uint64]bool {
	written := map[uint64]bool{}
	var start uint64
	for line := range bytes.Lines(smaps) {
		// A written page swapped out is no longer Anonymous in smaps
		// but Swap; dropping it would lose it just the same.
		for _, k := range [...]string{"Anonymous:", "Swap:"} {
			if v, ok := bytes.CutPrefix(line, []byte(k)); ok {
				if f := bytes.Fields(v); len(f) > 0 && string(f[0]) != "0" {
					written[start] = true
				}
			}
		}
		// A mapping's first line starts with its range, "start-end";
		// its fields' lines with a name and a colon.
		lo, _, ok := bytes.Cut(line, []byte("-"))
		if !ok || bytes.IndexByte(lo, ':') >= 0 {
			continue
		}
		if s, err := strconv.ParseUint(string(lo), 16, 64); err == nil {
			start = s
		}
	}
	return written
}

// sameDev compares the "major:minor" field of a mapping, in hex.
func sameDev(s string, major, minor uint32) bool {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	ma, err1 := strconv.ParseUint(a, 16, 32)
	mi, err2 := strconv.ParseUint(b, 16, 32)
	return err1 == nil && err2 == nil && uint32(ma) == major && uint32(mi) == minor
}

// rssFile is RssFile from <procfs>/self/status, in bytes.
func rssFile(procfs string) (int64, error) {
	b, err := os.ReadFile(procfs + "/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("RssFile:")); ok {
			f := bytes.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no RssFile in status")
}
