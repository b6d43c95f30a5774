// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package probe loads crmon's eBPF programs and reads what they count per
// cgroup: CPU scheduling (sched), block I/O (block) and network (net).
//
// The kernel aggregates into bounded per-cgroup maps; user space reads
// them once per tick with Read, which returns cumulative, monotonic
// counters per cgroup path in the cgroup2 hierarchy. A probe that cannot
// load (no root, no BTF, no cgroup2 mount) is reported down with a reason
// instead of failing the agent, unless Options.Required is set.
package probe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroupid"
)

// Probe names, the `probe` label of crmon_probe_up.
const (
	ProbeSched = "sched"
	ProbeBlock = "block"
	ProbeNet   = "net"
	// ProbeCgroups names and reaps cgroups for the others; it is loaded
	// whenever one of them is.
	ProbeCgroups = "cgroups"
)

// Options selects and sizes the probes.
type Options struct {
	// Sched, Block and Net enable each probe.
	Sched, Block, Net bool
	// Required turns a probe that cannot load into an error of New.
	Required bool
	// MaxCgroups bounds each per-cgroup map (per device and op for
	// block). Updates beyond it are counted as dropped. Default 4096.
	MaxCgroups uint32
	// MaxInflight bounds the block requests tracked between issue and
	// completion. Default 8192.
	MaxInflight uint32
	// LostAfter is how long a block request may stay uncompleted before
	// its completion is taken as lost: it is dropped and counted as a
	// drop with reason lost_completion. Default 30s, far beyond any real
	// I/O.
	LostAfter time.Duration
	// RemovedRetention is how long a removed cgroup's final counts stay
	// in snapshots after it is reaped. Default 10m.
	RemovedRetention time.Duration
	// NoHistograms switches the latency histograms off in the kernel.
	NoHistograms bool
	// NoStats leaves BPF run-time statistics (run count and time per
	// program) off. They cost two clock reads per program run.
	NoStats bool
	// ProcFS and SysFS root /proc and /sys. Defaults "/proc", "/sys".
	ProcFS, SysFS string
	// Cgroup2Root is the cgroup2 mount; default from mountinfo
	// (/sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid).
	Cgroup2Root string
	// Logger gets one line per probe that does not load. Default: discard.
	Logger *slog.Logger
	// KernelTypes is the kernel's BTF, which the probes are checked and
	// relocated against. Default: the running kernel's, from
	// <SysFS>/kernel/btf/vmlinux.
	KernelTypes *btf.Spec
}

// DefaultOptions enables every probe with default sizes.
func DefaultOptions() Options {
	return Options{Sched: true, Block: true, Net: true}
}

func (o Options) withDefaults() Options {
	if o.MaxCgroups == 0 {
		o.MaxCgroups = 4096
	}
	if o.MaxInflight == 0 {
		o.MaxInflight = 8192
	}
	if o.LostAfter == 0 {
		o.LostAfter = 30 * time.Second
	}
	if o.RemovedRetention == 0 {
		o.RemovedRetention = 10 * time.Minute
	}
	if o.ProcFS == "" {
		o.ProcFS = "/proc"
	}
	if o.SysFS == "" {
		o.SysFS = "/sys"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Status is whether one probe runs, and why not.
type Status struct {
	Probe  string
	Up     bool
	Reason string
}

// Probes is the set of loaded probes. Its methods are safe for concurrent
// use.
type Probes struct {
	opts   Options
	log    *slog.Logger
	status []Status

	mounts      cgroupid.Mounts
	unified     *cgroupid.Resolver
	blkio       *cgroupid.Resolver
	blkioHierID int

	sched   *schedObjects
	block   *blockObjects
	net     *netObjects
	cgroups *cgroupsObjects
	links   []link.Link
	stats   io.Closer

	// progs and mapList are named once at load: asking the kernel for
	// names on every read was a third of its cost.
	progs   []namedProgram
	mapList []namedMap

	// kernel is the kernel's BTF, kept only while loading.
	kernel *btf.Spec

	// loaded is when every probe was attached: the counts of a cgroup
	// made since are complete.
	loaded time.Time

	mu    sync.Mutex
	state *readState
	// reads counts the reads of every map (Read calls that reached the
	// maps): one per agent tick, plus a test session's exact reads at its
	// start and stop. crmon_bpf_map_reads_total shows it.
	reads atomic.Uint64
}

// New loads and attaches the probes opts enables. On error nothing stays
// loaded.
func New(opts Options) (_ *Probes, err error) {
	opts = opts.withDefaults()
	p := &Probes{opts: opts, log: opts.Logger}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()

	want := map[string]bool{ProbeSched: opts.Sched, ProbeBlock: opts.Block, ProbeNet: opts.Net}
	anyProbe := opts.Sched || opts.Block || opts.Net
	common := p.environment()

	var (
		cache      *btf.Cache
		memlockErr error
	)
	if common == "" && anyProbe {
		// A no-op on kernels that charge BPF memory to the cgroup (5.11+).
		memlockErr = rlimit.RemoveMemlock()
		cache = btf.NewCache()
		if p.kernel = opts.KernelTypes; p.kernel == nil {
			if p.kernel, err = cache.Kernel(); err != nil {
				common = fmt.Sprintf("reading kernel BTF: %v", err)
				err = nil
			}
		}
		if !opts.NoStats {
			// Without stats the programs still run; only the run-time
			// figures are missing, so this is not a probe failure.
			if p.stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
				p.log.Warn("BPF run-time statistics unavailable", "err", err)
				err = nil
			}
		}
	}

	loaders := []struct {
		name string
		load func(*btf.Cache) error
	}{
		{ProbeCgroups, p.loadCgroups},
		{ProbeSched, p.loadSched},
		{ProbeBlock, p.loadBlock},
		{ProbeNet, p.loadNet},
	}
	var missing []error
	for _, l := range loaders {
		enabled := want[l.name] || (l.name == ProbeCgroups && anyProbe)
		if !enabled {
			continue
		}
		reason := common
		if reason == "" {
			if missing := missingCaps(p.opts.ProcFS, l.name); missing != "" {
				reason = "missing capabilities: " + missing
			}
		}
		if reason == "" && memlockErr != nil {
			reason = fmt.Sprintf("removing the memlock limit: %v", memlockErr)
		}
		if reason == "" {
			if kerr := checkKernel(l.name, p.kernel); kerr != nil {
				reason = strings.ReplaceAll(kerr.Error(), "\n", "; ")
			}
		}
		if reason == "" {
			nlinks := len(p.links)
			if lerr := l.load(cache); lerr != nil {
				reason = lerr.Error()
				p.unload(l.name, nlinks)
			}
		}
		if reason != "" {
			p.log.Warn("eBPF probe not loaded", "probe", l.name, "reason", reason)
			if l.name != ProbeCgroups {
				missing = append(missing, fmt.Errorf("probe %s: %s", l.name, reason))
			}
		}
		p.status = append(p.status, Status{Probe: l.name, Up: reason == "", Reason: reason})
	}
	if opts.Required && len(missing) > 0 {
		return nil, fmt.Errorf("eBPF probes required: %w", errors.Join(missing...))
	}

	// Kernel BTF (30-40 MiB decoded) is only needed while loading: drop
	// the cache and hand the memory back rather than carry it for the
	// agent's lifetime.
	cache = nil
	p.kernel = nil
	runtime.GC()
	debug.FreeOSMemory()

	p.progs = p.programs()
	p.mapList = p.maps()
	p.state = newReadState(p)
	p.loaded = time.Now()
	return p, nil
}

// environment returns why no probe can load here, or "".
func (p *Probes) environment() string {
	if _, err := os.Stat(filepath.Join(p.opts.SysFS, "kernel", "btf", "vmlinux")); err != nil && p.opts.KernelTypes == nil {
		return "no kernel BTF at " + filepath.Join(p.opts.SysFS, "kernel", "btf", "vmlinux")
	}
	mounts, err := cgroupid.FindMounts(p.opts.ProcFS)
	if p.opts.Cgroup2Root != "" {
		mounts.Unified = cgroupid.Mount{Dir: p.opts.Cgroup2Root, Root: "/"}
		err = nil
	}
	if err != nil {
		return fmt.Sprintf("finding the cgroup2 mount: %v", err)
	}
	p.mounts = mounts
	p.unified = cgroupid.NewResolver(mounts.Unified)
	if mounts.Blkio.Dir != "" {
		p.blkio = cgroupid.NewResolver(mounts.Blkio)
		if h, err := cgroupid.BlkioHierarchy(p.opts.ProcFS); err == nil {
			p.blkioHierID = h
		}
	}
	return ""
}

// Capabilities the probes need (include/uapi/linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// missingCaps names the capabilities the process lacks for probe, from
// CapEff in <procfs>/self/status: CAP_BPF (or CAP_SYS_ADMIN) to load
// anything, CAP_PERFMON (or CAP_SYS_ADMIN) for tracing programs,
// CAP_NET_ADMIN to attach to a cgroup. "" when all are there or the file
// cannot be read (the load then says what failed).
func missingCaps(procfs, probe string) string {
	b, err := os.ReadFile(filepath.Join(procfs, "self", "status"))
	if err != nil {
		return ""
	}
	eff, ok := parseCapEff(b)
	if !ok {
		return ""
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	var missing []string
	if !has(capSysAdmin) {
		if !has(capBPF) {
			missing = append(missing, "CAP_BPF (or CAP_SYS_ADMIN)")
		}
		if !has(capPerfmon) && probe != ProbeNet {
			missing = append(missing, "CAP_PERFMON (or CAP_SYS_ADMIN)")
		}
	}
	if !has(capNetAdmin) && probe == ProbeNet {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	return strings.Join(missing, ", ")
}

// parseCapEff returns the CapEff mask of a /proc/<pid>/status file.
func parseCapEff(b []byte) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func (p *Probes) collectionOptions(cache *btf.Cache) *ebpf.CollectionOptions {
	return &ebpf.CollectionOptions{Cache: cache, Programs: ebpf.ProgramOptions{KernelTypes: p.kernel}}
}

// cgroupMap sizes a per-cgroup map. The objects preallocate it; where the
// kernel's hash maps allocate from bpf_mem_alloc, inserting from the
// scheduler or an interrupt is safe without, and the map's memory then
// grows with the cgroups seen instead of being max_entries' worth from
// the start.
func (p *Probes) cgroupMap(spec *ebpf.CollectionSpec, name string) {
	m := spec.Maps[name]
	m.MaxEntries = p.opts.MaxCgroups
	if hashMemAlloc(p.kernel) {
		m.Flags |= unix.BPF_F_NO_PREALLOC
	}
}

func setVar(spec *ebpf.CollectionSpec, name string, v any) error {
	vs, ok := spec.Variables[name]
	if !ok {
		return fmt.Errorf("variable %s missing from the object", name)
	}
	if err := vs.Set(v); err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	return nil
}

func (p *Probes) attachTracing(progs ...*ebpf.Program) error {
	for _, prog := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attaching %s: %w", prog, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

func (p *Probes) loadCgroups(cache *btf.Cache) (err error) {
	spec, err := loadCgroups()
	if err != nil {
		return err
	}
	for _, m := range []string{"cgroup_names", "cgroup_removed"} {
		spec.Maps[m].MaxEntries = p.opts.MaxCgroups
	}
	if err := setVar(spec, "blkio_hierarchy", int32(p.blkioHierID)); err != nil {
		return err
	}
	objs := new(cgroupsObjects)
	if err := spec.LoadAndAssign(objs, p.collectionOptions(cache)); err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	p.cgroups = objs
	return p.attachTracing(objs.CrmonCgroupMkdir, objs.CrmonCgroupRmdir)
}

func (p *Probes) loadSched(cache *btf.Cache) error {
	spec, err := loadSched()
	if err != nil {
		return err
	}
	p.cgroupMap(spec, "sched_cgroups")
	if err := setVar(spec, "histograms", !p.opts.NoHistograms); err != nil {
		return err
	}
	objs := new(schedObjects)
	if err := spec.LoadAndAssign(objs, p.collectionOptions(cache)); err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	p.sched = objs
	return p.attachTracing(objs.CrmonSchedWakeupNew, objs.CrmonSchedSwitch, objs.CrmonSchedStatRuntime)
}

func (p *Probes) loadBlock(cache *btf.Cache) error {
	spec, err := loadBlock()
	if err != nil {
		return err
	}
	p.cgroupMap(spec, "block_cgroups")
	spec.Maps["block_inflight"].MaxEntries = p.opts.MaxInflight
	if err := setVar(spec, "histograms", !p.opts.NoHistograms); err != nil {
		return err
	}
	objs := new(blockObjects)
	if err := spec.LoadAndAssign(objs, p.collectionOptions(cache)); err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	p.block = objs
	return p.attachTracing(objs.CrmonBlockRqIssue, objs.CrmonBlockRqComplete, objs.CrmonBlockRqRequeue, objs.CrmonBlockRqMerge)
}

func (p *Probes) loadNet(cache *btf.Cache) error {
	spec, err := loadNet()
	if err != nil {
		return err
	}
	p.cgroupMap(spec, "net_cgroups")
	objs := new(netObjects)
	if err := spec.LoadAndAssign(objs, p.collectionOptions(cache)); err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	p.net = objs
	// At the cgroup2 root, effective for every cgroup below; bpf_link
	// attachments are multi-attach, so others' programs keep running.
	for _, a := range []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		{objs.CrmonNetIngress, ebpf.AttachCGroupInetIngress},
		{objs.CrmonNetEgress, ebpf.AttachCGroupInetEgress},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: p.mounts.Unified.Dir, Attach: a.attach, Program: a.prog})
		if err != nil {
			return fmt.Errorf("attaching %s to %s: %w", a.prog, p.mounts.Unified.Dir, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// unload undoes a probe that failed half-way: its links (those after the
// first nlinks) and its objects.
func (p *Probes) unload(probe string, nlinks int) {
	for _, l := range p.links[nlinks:] {
		_ = l.Close()
	}
	p.links = p.links[:nlinks]
	switch probe {
	case ProbeSched:
		if p.sched != nil {
			_ = p.sched.Close()
			p.sched = nil
		}
	case ProbeBlock:
		if p.block != nil {
			_ = p.block.Close()
			p.block = nil
		}
	case ProbeNet:
		if p.net != nil {
			_ = p.net.Close()
			p.net = nil
		}
	case ProbeCgroups:
		if p.cgroups != nil {
			_ = p.cgroups.Close()
			p.cgroups = nil
		}
	}
}

// Status returns each enabled probe's state.
func (p *Probes) Status() []Status {
	return append([]Status(nil), p.status...)
}

// Up reports whether the named probe is loaded and attached.
func (p *Probes) Up(probe string) bool {
	for _, s := range p.status {
		if s.Probe == probe {
			return s.Up
		}
	}
	return false
}

// Close detaches and unloads everything.
func (p *Probes) Close() error {
	var errs []error
	for i := len(p.links) - 1; i >= 0; i-- {
		errs = append(errs, p.links[i].Close())
	}
	p.links = nil
	if p.sched != nil {
		errs = append(errs, p.sched.Close())
	}
	if p.block != nil {
		errs = append(errs, p.block.Close())
	}
	if p.net != nil {
		errs = append(errs, p.net.Close())
	}
	if p.cgroups != nil {
		errs = append(errs, p.cgroups.Close())
	}
	p.sched, p.block, p.net, p.cgroups = nil, nil, nil, nil
	if p.stats != nil {
		errs = append(errs, p.stats.Close())
		p.stats = nil
	}
	return errors.Join(errs...)
}

// programs lists the loaded programs by name, for run-time statistics.
func (p *Probes) programs() []namedProgram {
	var out []namedProgram
	add := func(probe string, progs ...*ebpf.Program) {
		for _, prog := range progs {
			if prog == nil {
				continue
			}
			name := prog.String()
			if info, err := prog.Info(); err == nil {
				name = info.Name
			}
			out = append(out, namedProgram{probe: probe, name: strings.TrimPrefix(name, "crmon_"), prog: prog})
		}
	}
	if p.sched != nil {
		add(ProbeSched, p.sched.CrmonSchedSwitch, p.sched.CrmonSchedWakeupNew, p.sched.CrmonSchedStatRuntime)
	}
	if p.block != nil {
		add(ProbeBlock, p.block.CrmonBlockRqIssue, p.block.CrmonBlockRqComplete, p.block.CrmonBlockRqRequeue, p.block.CrmonBlockRqMerge)
	}
	if p.net != nil {
		add(ProbeNet, p.net.CrmonNetIngress, p.net.CrmonNetEgress)
	}
	if p.cgroups != nil {
		add(ProbeCgroups, p.cgroups.CrmonCgroupMkdir, p.cgroups.CrmonCgroupRmdir)
	}
	return out
}

type namedProgram struct {
	probe, name string
	prog        *ebpf.Program
}

// maps lists the loaded maps by name, for their memory.
func (p *Probes) maps() []namedMap {
	var out []namedMap
	if p.sched != nil {
		out = append(out, namedMap{"sched_cgroups", p.sched.SchedCgroups}, namedMap{"sched_tasks", p.sched.SchedTasks}, namedMap{"sched_oncpu", p.sched.SchedOncpu})
	}
	if p.block != nil {
		out = append(out, namedMap{"block_cgroups", p.block.BlockCgroups}, namedMap{"block_inflight", p.block.BlockInflight})
	}
	if p.net != nil {
		out = append(out, namedMap{"net_cgroups", p.net.NetCgroups})
	}
	if p.cgroups != nil {
		out = append(out, namedMap{"cgroup_names", p.cgroups.CgroupNames}, namedMap{"cgroup_removed", p.cgroups.CgroupRemoved})
	}
	return out
}

type namedMap struct {
	name string
	m    *ebpf.Map
}
