// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxProcRead bounds each /proc file Running reads: the files it reads
// are a few hundred bytes (cmdline is cut like the probe's argv).
const maxProcRead = 8 << 10

// Running returns what the processes pids of cgroup id (a watched one, or
// one below it) that are still running have used until now: the figures
// of their threads that exited, counted by the probes, and those of their
// live threads, from /proc (under procFS): each thread's
// /proc/PID/task/TID/schedstat (the same sum_exec_runtime and run_delay the
// probes read at exit), the process's io (which holds its exited threads'
// bytes too) and its VmHWM, the peak RSS so far. The probes' figures are
// read first: a thread that exits in between is missed, not counted
// twice. A PID that is gone by then is left out: its exit is in the
// probes' map, for Take. Network bytes are the probes' alone.
func (p *Procs) Running(id uint64, procFS string, pids []int) ([]Process, error) {
	p.mu.Lock()
	byPID := map[uint32]procsProcValue{}
	var (
		k  procsProcKey
		v  procsProcValue
		it = p.objs.Procs.Iterate()
	)
	for it.Next(&k, &v) {
		if v.Cgroup == id && v.Exited == 0 {
			byPID[k.Tgid] = v
		}
	}
	err := it.Err()
	p.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("reading the process map: %w", err)
	}
	var out []Process
	var errs []error
	for _, pid := range pids {
		pr, err := readRunning(procFS, pid)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errExited) {
				errs = append(errs, err)
			}
			continue
		}
		if v, ok := byPID[uint32(pid)]; ok {
			pr.CPU += time.Duration(v.CpuNs)
			pr.RunqueueWait += time.Duration(v.WaitNs)
			pr.NetRxBytes, pr.NetTxBytes = v.NetRxBytes, v.NetTxBytes
		}
		out = append(out, pr)
	}
	return out, errors.Join(errs...)
}

// errExited is a process that exited (a zombie) while it was read.
var errExited = errors.New("process exited")

// readRunning reads what process pid's live threads used, from procFS.
func readRunning(procFS string, pid int) (Process, error) {
	dir := filepath.Join(procFS, strconv.Itoa(pid))
	pr := Process{PID: pid}
	stat, err := readLimited(filepath.Join(dir, "stat"))
	if err != nil {
		return pr, err
	}
	// comm is in parentheses and may hold any byte: the fields after it
	// start past the last ')'.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return pr, fmt.Errorf("%s/stat: no comm", dir)
	}
	pr.Comm = string(stat[open+1 : end])
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 2 {
		return pr, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	if f[0] == "Z" || f[0] == "X" {
		return pr, errExited
	}
	pr.PPID, _ = strconv.Atoi(f[1])
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		pr.Filename = strings.TrimSuffix(exe, " (deleted)")
	}
	if cl, err := readLimited(filepath.Join(dir, "cmdline")); err == nil {
		cl = cl[:min(len(cl), 255)]
		if s := strings.TrimRight(string(cl), "\x00"); s != "" {
			pr.Args = strings.Split(s, "\x00")
		}
	}
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil {
		return pr, err
	}
	for _, t := range tasks {
		b, err := readLimited(filepath.Join(dir, "task", t.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited: the probes counted it
		}
		var run, wait uint64
		if _, err := fmt.Sscanf(string(b), "%d %d", &run, &wait); err != nil {
			return pr, fmt.Errorf("%s/task/%s/schedstat: %w", dir, t.Name(), err)
		}
		pr.CPU += time.Duration(run)
		pr.RunqueueWait += time.Duration(wait)
	}
	if b, err := readLimited(filepath.Join(dir, "io")); err == nil {
		var cancelled uint64
		for _, l := range strings.Split(string(b), "\n") {
			name, val, _ := strings.Cut(l, ": ")
			n, _ := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
			switch name {
			case "read_bytes":
				pr.ReadBytes = n
			case "write_bytes":
				pr.WriteBytes = n
			case "cancelled_write_bytes":
				cancelled = n
			}
		}
		pr.WriteBytes -= min(pr.WriteBytes, cancelled)
	}
	if b, err := readLimited(filepath.Join(dir, "status")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				pr.MaxRSSBytes = kb << 10
			}
		}
	}
	return pr, nil
}

// readLimited reads up to maxProcRead bytes of the file at path.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxProcRead)
	n, err := f.Read(b)
	if n == 0 && err != nil {
		return nil, err
	}
	return b[:n], nil
}
