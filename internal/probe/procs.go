// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Process is what one process of a watched cgroup consumed, counted by
// the kernel as its threads exited (bpf/procs.bpf.c).
type Process struct {
	PID, PPID int
	// Comm is the kernel's 15-byte name of the task; Filename the file it
	// last executed ("" when it never did: a forked shell); Args its argv
	// then, cut at 255 bytes.
	Comm     string
	Filename string
	Args     []string

	CPU          time.Duration
	RunqueueWait time.Duration
	// ReadBytes and WriteBytes are its storage I/O (/proc/<pid>/io's
	// read_bytes, and write_bytes less cancelled_write_bytes).
	ReadBytes, WriteBytes uint64
	// MaxRSSBytes is its peak resident set, rusage's ru_maxrss.
	MaxRSSBytes uint64
	// NetRxBytes and NetTxBytes are the payload bytes it received and
	// sent on its IPv4 and IPv6 sockets.
	NetRxBytes, NetTxBytes uint64
}

// Procs counts the processes of the cgroups it watches, and of the cgroups
// below them: one entry per process, filled at each thread's exit. Nothing
// runs per context switch; while nothing is watched, each exit and exec
// costs one read of a global.
type Procs struct {
	objs  *procsObjects
	links []link.Link

	mu      sync.Mutex
	watched map[uint64]int // cgroup id → watchers
	// netLinks are the socket programs, attached only while a cgroup is
	// watched: they fire on every send and receive on the host.
	netLinks []link.Link
}

// NewProcs loads and attaches the per-process programs.
func NewProcs() (p *Procs, err error) {
	// A no-op on kernels that charge BPF memory to the cgroup (5.11+).
	_ = rlimit.RemoveMemlock()
	spec, err := loadProcs()
	if err != nil {
		return nil, fmt.Errorf("loading the process probes: %w", err)
	}
	p = &Procs{objs: new(procsObjects), watched: map[uint64]int{}}
	if err := spec.LoadAndAssign(p.objs, nil); err != nil {
		return nil, fmt.Errorf("loading the process probes: %w", err)
	}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	for _, prog := range []*ebpf.Program{p.objs.CrmonProcsExec, p.objs.CrmonProcsExit, p.objs.CrmonProcsFree} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", prog, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

// Watch starts counting the processes of the cgroup with cgroup2 id id.
// Watches nest: each needs its Unwatch.
func (p *Procs) Watch(id uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.watched) == 0 && p.netLinks == nil {
		for _, prog := range []*ebpf.Program{p.objs.CrmonProcsSend, p.objs.CrmonProcsRecv} {
			l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
			if err != nil {
				p.detachNet()
				return fmt.Errorf("attaching %s: %w", prog, err)
			}
			p.netLinks = append(p.netLinks, l)
		}
	}
	if p.watched[id] == 0 {
		if err := p.objs.ProcsWatch.Put(id, uint32(1)); err != nil {
			if len(p.watched) == 0 {
				p.detachNet()
			}
			return fmt.Errorf("watching cgroup %d: %w", id, err)
		}
		// Set after the entry exists: the programs look the cgroups up
		// only while procs_watching is not 0.
		if err := p.objs.ProcsWatching.Set(uint32(len(p.watched) + 1)); err != nil {
			_ = p.objs.ProcsWatch.Delete(id)
			if len(p.watched) == 0 {
				p.detachNet()
			}
			return fmt.Errorf("watching cgroup %d: %w", id, err)
		}
	}
	p.watched[id]++
	return nil
}

func (p *Procs) detachNet() {
	for _, l := range p.netLinks {
		_ = l.Close()
	}
	p.netLinks = nil
}

// Unwatch ends a Watch; the last one stops the counting and forgets
// what was not taken.
func (p *Procs) Unwatch(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watched[id]--; p.watched[id] > 0 {
		return
	}
	delete(p.watched, id)
	_ = p.objs.ProcsWatching.Set(uint32(len(p.watched)))
	_ = p.objs.ProcsWatch.Delete(id)
	_, _ = p.take(id, true)
	if len(p.watched) == 0 {
		p.detachNet()
	}
}

// finalWait bounds how long Take waits for the exited processes' tasks
// to be freed (reaped, then an RCU grace period), when their last
// milliseconds of CPU are added.
const finalWait = time.Second

// Take returns the processes of cgroup id that have exited, and forgets
// them. It waits up to finalWait for their final figures.
func (p *Procs) Take(id uint64) ([]Process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for deadline := time.Now().Add(finalWait); time.Now().Before(deadline) && !p.final(id); {
		time.Sleep(5 * time.Millisecond)
	}
	return p.take(id, false)
}

// final reports whether every exited process of cgroup id has had all
// its threads freed.
func (p *Procs) final(id uint64) bool {
	var (
		k  procsProcKey
		v  procsProcValue
		it = p.objs.Procs.Iterate()
	)
	for it.Next(&k, &v) {
		if v.Cgroup == id && v.Exited != 0 && v.ThreadsFreed < v.ThreadsExited {
			return false
		}
	}
	return it.Err() == nil
}

// take collects the entries of cgroup id: the exited ones, or with all
// every one (they are deleted either way).
func (p *Procs) take(id uint64, all bool) ([]Process, error) {
	var (
		k    procsProcKey
		v    procsProcValue
		out  []Process
		del  []procsProcKey
		page = uint64(os.Getpagesize())
		it   = p.objs.Procs.Iterate()
		errs []error
	)
	for it.Next(&k, &v) {
		if v.Cgroup != id || (v.Exited == 0 && !all) {
			continue
		}
		del = append(del, k)
		if v.Exited == 0 {
			continue
		}
		out = append(out, Process{
			PID: int(k.Tgid), PPID: int(v.Ppid),
			Comm: cString(v.Comm[:]), Filename: cString(v.Filename[:]), Args: splitArgs(v.Args[:]),
			CPU: time.Duration(v.CpuNs), RunqueueWait: time.Duration(v.WaitNs),
			ReadBytes: v.ReadBytes, WriteBytes: v.WriteBytes, MaxRSSBytes: v.MaxrssPages * page,
			NetRxBytes: v.NetRxBytes, NetTxBytes: v.NetTxBytes,
		})
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("reading the process map: %w", err))
	}
	for i := range del {
		if err := p.objs.Procs.Delete(&del[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Dropped counts the processes not counted because the map was full,
// and the threads whose last milliseconds were not (no task storage).
func (p *Procs) Dropped() uint64 {
	var counts [2]uint64
	if err := p.objs.ProcsDrops.Get(counts[:]); err != nil {
		return 0
	}
	return counts[0] + counts[1]
}

// Close detaches and unloads the programs.
func (p *Procs) Close() error {
	var errs []error
	p.mu.Lock()
	p.detachNet()
	p.mu.Unlock()
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	if p.objs != nil {
		errs = append(errs, p.objs.Close())
	}
	return errors.Join(errs...)
}

// splitArgs splits a NUL-separated argv; a last argument cut short is
// kept as it is.
func splitArgs(b []int8) []string {
	raw := make([]byte, len(b))
	for i, c := range b {
		raw[i] = byte(c)
	}
	raw = bytes.TrimRight(raw, "\x00")
	if len(raw) == 0 {
		return nil
	}
	return strings.Split(string(raw), "\x00")
}
