// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package collect defines what every crmon collector is and runs a set of
// them once per tick.
//
// A collector reads one part of the world (procfs, sysfs, cgroupfs, BPF
// maps, the Docker API) in Update, keeps the result, and serves it twice:
// as Prometheus metrics in Collect, without doing any I/O, so a scrape never
// triggers a slow read; and as its part of the snapshot (ResourceMetrics) in Fill.
package collect

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

// ErrNoData is returned by Update when the host lacks what the collector
// reads (no sensor, no cgroup2 mount). It is logged at debug level and
// counted as success=0, never as a failure of the agent.
var ErrNoData = errors.New("collector returned no data")

// Collector is one source of metrics.
type Collector interface {
	// Name is short and stable: "cpu", "meminfo", "ebpf", "docker".
	Name() string
	// Update reads the world once. The agent calls it once per tick and
	// never concurrently with itself; now is the tick's time.
	Update(ctx context.Context, now time.Time) error
	// Describe and Collect emit the metrics of the last Update. They may be
	// called concurrently with Update and must not do I/O.
	prometheus.Collector
	// Fill writes this collector's part of the snapshot from the last
	// Update. It is called after every collector's Update of a tick.
	Fill(m *metrics.ResourceMetrics)
}

// Paths roots every file a collector reads, so that tests run on fixture
// trees and a sidecar reads the host's /proc mounted elsewhere.
type Paths struct {
	ProcFS string // default "/proc"
	SysFS  string // default "/sys"
	RootFS string // default "/"; utmp, mountpoints are read below it
}

// DefaultPaths are the host's own.
func DefaultPaths() Paths { return Paths{ProcFS: "/proc", SysFS: "/sys", RootFS: "/"} }

// Options is what every collector factory gets.
type Options struct {
	Paths  Paths
	Logger *slog.Logger
	// TopN is how many processes the per-process lists keep.
	TopN int
	// CommandLines puts each listed process' full command line in the
	// snapshot instead of its name (comm). The agent reads every user's
	// /proc/PID/cmdline, hidepid or not, and argv often carries tokens,
	// so this is off unless the operator asks.
	CommandLines bool
}

// Registration names a collector and how to build it, node_exporter style:
// the agent turns the list into --collector.NAME flags.
type Registration struct {
	Name           string
	DefaultEnabled bool
	Help           string
	New            func(Options) (Collector, error)
}

// ContainerRef is what crmon knows of the container that owns a cgroup.
type ContainerRef struct {
	ID     string
	Name   string
	Image  string
	Labels map[string]string
}

// ContainerLookup maps a cgroup's path in the cgroup2 hierarchy
// ("/docker/<id>") to the container that owns it. The containers collector
// implements it; the eBPF collector uses it to add name and image labels.
type ContainerLookup interface {
	LookupCgroup(path string) (ContainerRef, bool)
}

// CgroupCounts are what the eBPF probes counted in the kernel for one
// cgroup since Since: its CPU time, measured at context switch from the
// tasks' se.sum_exec_runtime (the clock cpuacct and cpu.stat charge from),
// and its block I/O bytes by device. The kernel keeps them by cgroup id
// after the cgroup is removed, which is what makes them the final counts of
// a container whose cgroup went before its files could be read.
type CgroupCounts struct {
	// Since is when the probes began counting: a cgroup made before then
	// has partial counts.
	Since time.Time
	// At is when the probes read them.
	At time.Time
	// Removed says the cgroup is gone: the counts are final.
	Removed bool
	// HasCPU and HasBlock say whether the probe behind each count runs.
	HasCPU, HasBlock bool
	CPU              time.Duration
	// Block is by device as the kernel names it in dev_t terms (a
	// partition's major and minor where the request had one).
	Block []BlockBytes
}

// BlockBytes are a cgroup's block I/O bytes on one device.
type BlockBytes struct {
	Major, Minor          uint32
	ReadBytes, WriteBytes uint64
}

// CgroupActivity tells, from the eBPF probes, which cgroups did anything,
// so that the others' cgroupfs files need not be read. The eBPF collector
// implements it; the probes are read once per tick, for whichever of its
// Update and CgroupActivity asks first with the tick's time.
type CgroupActivity interface {
	// CgroupActivity returns the probes' activity as of the tick at now.
	// ok is false when the probes cannot tell (the sched probe is down, a
	// read failed): then every cgroup must be read.
	CgroupActivity(now time.Time) (act Activity, ok bool)
}

// ProcessLister lists the host's processes in one pass, with what
// /proc/<pid>/stat says of each: the eBPF task iterator implements it, so
// that the processes collector need not read a file per process.
type ProcessLister interface {
	// ListProcesses appends to buf every process of the host (of the
	// initial PID namespace) and returns it.
	ListProcesses(buf []ProcessStat) ([]ProcessStat, error)
}

// ProcessStat is one process, as proc_pid_stat(5) gives it.
type ProcessStat struct {
	PID int32
	// State is the state letter ("RSDTtXZPI").
	State byte
	// Comm is the kernel's name of the task, NUL-padded.
	Comm [16]byte
	// CPUNanos is the CPU time of its threads, live and exited: the
	// total utime+stime is split from.
	CPUNanos uint64
	Threads  uint64
	// StartNanos is when it started, in nanoseconds after boot.
	StartNanos uint64
	VSize      uint64 // bytes
	RSS        uint64 // pages
}

// Activity is what the probes saw of each cgroup, by cgroup2 path, each
// summed over the cgroup and its descendants. Neither Counts nor OnCPU is
// changed once returned, and callers must not change OnCPU.
type Activity struct {
	// Counts are the cgroups' counts of events that only happen when one
	// does something: context switches, completed block requests,
	// packets. A cgroup did something between two readings exactly when
	// its count moved; one absent did nothing since the probes loaded.
	Counts Counts
	// OnCPU holds the cgroups with a task on a CPU at the reading: a task
	// that never switches out moves no count.
	OnCPU map[string]bool
	// Block and Net say whether Counts hold block requests and packets
	// (the block and net probes were up): without, a cgroup whose count
	// did not move may still have done I/O or sent packets.
	Block, Net bool
}

// CgroupCounter gives the eBPF probes' counts of the cgroup at a cgroup2
// path, as of their last read or read now. The eBPF collector implements it; the
// containers collector serves them for a container whose cgroup it could
// not read before the runtime removed it.
type CgroupCounter interface {
	CgroupCounts(path string) (CgroupCounts, bool)
	// ReadCgroupCounts reads the probes now: the counts of a cgroup whose
	// last task just ended, complete before the next tick.
	ReadCgroupCounts(path string) (CgroupCounts, bool)
}
