// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package sessions measures test runs: a Tracker follows one run's cgroup
// and the containers created during it, from the eBPF probes' counters and
// the cgroup files, and turns them into a session.Report; the Manager runs
// named sessions inside the agent and serves them over HTTP.
//
// Inside the agent, the sessions get the host's figures and the probes'
// reads from the agent's sample stream (ManagerOptions.Samples): one read
// of the maps and of /proc per tick serves every session. A session still
// reads for itself only what a tick cannot give: the exact values at its
// start and stop (a fresh cgroup's base, the final counts), which must not
// wait up to a collection interval; its own cgroups' files, whose
// cumulative counters no sample carries, at its plots' interval; and a
// container's files the moment it exits. `crmon exec` without an agent has
// no stream: its one session reads the probes and /proc itself, which is
// then no second reader of anything.
package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/pkg/session"
)

// DefaultSampleInterval is the plots' resolution: fine enough to show a
// 200 ms container, cheap because a sample reads only cgroup files and BPF
// maps.
const DefaultSampleInterval = 200 * time.Millisecond

// MeterInterval is how often a session reads the probes for its plots.
const MeterInterval = time.Second

// maxFastContainers is how many containers a session samples at its own
// interval; beyond, they are sampled every MeterInterval.
const maxFastContainers = 10

// DefaultMaxContainers bounds the containers one session measures: each
// holds open files and a plot series. Those created beyond it are counted
// in the report's containers_omitted.
const DefaultMaxContainers = 256

// maxOmittedIDs bounds the IDs kept to count omitted containers once each.
const maxOmittedIDs = 4096

// stopDockerWait bounds what Stop asks the engine (the containers created
// while the event stream was down), so that a hung engine delays a
// session's report by at most this much.
const stopDockerWait = time.Second

// Docker is what a tracker needs of the container engine. It is asked once
// per container created during the run, never per sample.
type Docker interface {
	Info(ctx context.Context) (docker.Info, error)
	List(ctx context.Context) ([]docker.Container, error)
	Inspect(ctx context.Context, id string) (docker.Container, error)
	Events(ctx context.Context) (<-chan docker.Event, <-chan error)
}

// TrackerOptions are what a tracker reads from.
type TrackerOptions struct {
	Hierarchy *cgroups.Hierarchy
	// Meter is the eBPF probes; nil measures from the cgroup files alone
	// (no run-queue, context switches or network).
	Meter Meter
	// Docker finds containers created during the run; nil for none.
	Docker Docker
	// ProcFS is "/proc" by default; DiskPath, the filesystem whose usage
	// max_disk_usage_percent checks, "/" by default.
	ProcFS   string
	DiskPath string
	// SampleInterval is DefaultSampleInterval when 0.
	SampleInterval time.Duration
	// MaxContainers is DefaultMaxContainers when 0.
	MaxContainers int
	// NoMeter says why Meter is nil, for the report's sources_missing.
	NoMeter string
	// Procs counts the run's processes one by one; nil for none (the
	// report then has no processes).
	Procs  ProcCounter
	Logger *slog.Logger
	// events, when set, is the manager's shared event stream; otherwise
	// the tracker opens its own.
	events *eventHub
	// fed says the agent's ticks bring the host's figures and the probes'
	// reads (Manager.feed): between its start and its stop the tracker
	// then reads neither /proc nor the maps, only its own cgroups' files.
	fed bool
	// now, when set, replaces time.Now for the start, the end and the
	// probe reads outside samples.
	now func() time.Time
}

// Target is what one run measures.
type Target struct {
	Name string
	// Cgroup is the run's cgroup, "" for none: the totals then sum the
	// selected containers.
	Cgroup cgroups.Paths
	// Fresh says Cgroup was created empty for this run, so its counters
	// since creation are the run's (memory peak included).
	Fresh bool
	// Containers selects containers by label: "key=value" or "key".
	Containers []string
}

// Tracker measures one run from NewTracker to Stop.
type Tracker struct {
	opts   TrackerOptions
	target Target
	start  time.Time
	sel    []selector

	mu         sync.Mutex
	run        *scope
	containers map[string]*scope // by container ID
	order      []string
	host       session.HostPeaks
	hostGot    uint8 // the host figures any sample read
	hs         *hostSampler
	buf        []byte
	errs       map[string]bool
	layout     *cgroups.Layout

	meterAt time.Time
	nsample int
	// lostAtStart is the meter's count of lost block completions when
	// the run started.
	lostAtStart uint64
	// cpuAtStart is each cgroup's CPU time at the start, ioBefore each
	// device's block latency on the host before the run and ioRunStart
	// the run's own: the findings' references. Nil without the probes.
	cpuAtStart map[string]float64
	ioBefore   map[string][]uint64
	ioRunStart map[string][]uint64
	// procsID is the run's cgroup2 ID while opts.Procs watches it, 0
	// when it does not; procsDir its directory; procsDropped the drops at
	// the start.
	procsID      uint64
	procsDir     string
	procsDropped uint64

	inotify int
	watches map[int]*scope
	evbuf   [256]byte
	// wake interrupts watchCgroups' poll at Stop (an eventfd).
	wake int
	// eventsFailed says the Docker event stream broke or was not up at
	// the start: the list Stop takes is then all there is.
	eventsFailed bool
	// ownHub is the event stream of a tracker outside the manager.
	ownHub *eventHub
	// dockerErr is the first failure to look containers up, for the
	// report's sources_missing.
	dockerErr string
	omitted   map[string]struct{}
	// omittedMore counts omitted containers beyond maxOmittedIDs.
	omittedMore int

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// NewTracker takes the baseline of t and starts sampling. Call it before
// the run starts.
func NewTracker(opts TrackerOptions, t Target) (*Tracker, error) {
	if opts.Hierarchy == nil {
		return nil, errors.New("tracker: no cgroup hierarchy")
	}
	if opts.ProcFS == "" {
		opts.ProcFS = "/proc"
	}
	if opts.DiskPath == "" {
		opts.DiskPath = "/"
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = DefaultSampleInterval
	}
	if opts.MaxContainers <= 0 {
		opts.MaxContainers = DefaultMaxContainers
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	sel, err := parseSelectors(t.Containers)
	if err != nil {
		return nil, err
	}
	tr := &Tracker{
		opts: opts, target: t, sel: sel,
		containers: map[string]*scope{},
		hs:         newHostSampler(opts.ProcFS, opts.DiskPath),
		errs:       map[string]bool{},
		inotify:    -1,
		wake:       -1,
		watches:    map[int]*scope{},
	}
	if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
		if w, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
			tr.inotify, tr.wake = fd, w
		} else {
			unix.Close(fd)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	if opts.Docker != nil {
		// Subscribe before the start, so no container of the run is
		// missed; an engine that does not answer at once does not hold
		// the start back: Stop lists what the stream may have missed.
		hub := opts.events
		if hub == nil {
			hub = &eventHub{d: opts.Docker}
			tr.ownHub = hub
		}
		evs, errc, live := hub.subscribe(ctx)
		tr.eventsFailed = !live
		tr.done.Add(1)
		go tr.watchDocker(ctx, evs, errc)
	}
	tr.mu.Lock()
	if t.Cgroup.V2 != "" || len(t.Cgroup.V1) > 0 {
		tr.run = tr.newScope("run", t.Cgroup, t.Fresh)
	}
	switch {
	case tr.run != nil && !t.Fresh:
		tr.meterAt = opts.now()
		tr.refreshMeter(tr.meterAt, 0)
		tr.readScope(tr.run, true)
		tr.run.setBaseline()
	case tr.run != nil && opts.Meter != nil && t.Cgroup.V2 != "":
		// A fresh cgroup's files start at zero, but the probes keep the
		// final counts of a removed cgroup under its path for minutes:
		// those of an earlier cgroup of the same path are not this run's.
		tr.meterAt = opts.now()
		tr.refreshMeter(tr.meterAt, 0)
		if c, ok := opts.Meter.Subtree(t.Cgroup.V2); ok {
			tr.run.meter, tr.run.meterBase, tr.run.haveMeter = c, c, true
		}
	}
	if tr.run != nil {
		// The run's counters are zero at the start: the plots spread
		// the first probe read over the time since.
		tr.run.anchored = true
	}
	tr.sampleHost()
	if lm, ok := opts.Meter.(lossMeter); ok {
		tr.lostAtStart = lm.BlockLostCompletions()
	}
	if opts.Procs != nil && t.Cgroup.V2 != "" && opts.Hierarchy.Unified != "" {
		if id, ok := cgroupInode(opts.Hierarchy.Unified, t.Cgroup.V2); ok {
			if err := opts.Procs.Watch(id); err != nil {
				tr.logOnce("procs", "counting the run's processes", err)
			} else {
				tr.procsID, tr.procsDropped = id, opts.Procs.Dropped()
				tr.procsDir = filepath.Join(opts.Hierarchy.Unified, t.Cgroup.V2)
			}
		}
	}
	if hm, ok := opts.Meter.(hostMeter); ok {
		if tr.meterAt.IsZero() {
			tr.meterAt = opts.now()
			tr.refreshMeter(tr.meterAt, 0)
		}
		tr.cpuAtStart = hm.CgroupCPU()
		tr.ioBefore = hm.DeviceLatency("/")
		if t.Cgroup.V2 != "" {
			tr.ioRunStart = hm.DeviceLatency(t.Cgroup.V2)
		}
	}
	tr.start = opts.now()
	tr.mu.Unlock()

	tr.done.Add(1)
	go tr.loop(ctx)
	if tr.inotify >= 0 {
		tr.done.Add(1)
		go tr.watchCgroups(ctx)
	}
	return tr, nil
}

// Start is when the baseline was taken.
func (tr *Tracker) Start() time.Time { return tr.start }

func (tr *Tracker) loop(ctx context.Context) {
	defer tr.done.Done()
	t := time.NewTicker(tr.opts.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tr.mu.Lock()
			tr.sample(now, false)
			tr.mu.Unlock()
		}
	}
}

// sample reads everything once and appends a point per scope. tr.mu held.
func (tr *Tracker) sample(now time.Time, final bool) {
	// A read of the probes' maps costs milliseconds with many cgroups
	// (every map, every CPU); the cgroup files cost microseconds. Plots
	// get the files at every sample and the probes once a second; the
	// final values always come from a fresh read.
	// probed says the probes were read for this sample: only then are
	// the probe-based values of the plots (network, block I/O) new, and
	// the points since the last read get their share of the step.
	probed := final
	switch {
	case final:
		tr.refreshMeter(now, 0)
		tr.meterAt = now
	case tr.opts.fed:
		// The agent's ticks keep the meter current: a point is probed
		// when a tick's read arrived since the last one.
		if fm, ok := tr.opts.Meter.(fedMeter); ok {
			if at := fm.ReadAt(); at.After(tr.meterAt) {
				tr.meterAt, probed = at, true
			}
		}
	case now.Sub(tr.meterAt) >= MeterInterval:
		// Sessions share one read per MeterInterval: it costs
		// milliseconds with many cgroups.
		tr.refreshMeter(now, MeterInterval*9/10)
		tr.meterAt = now
		probed = true
	}
	probed = probed && tr.opts.Meter != nil
	if final || !tr.opts.fed {
		// Fed, the host's figures come with the ticks (feed); the
		// final read gives the usage since the start, which a run
		// shorter than two ticks has no other figure of.
		tr.sampleHost()
	}
	t := now.Sub(tr.start).Seconds()
	if tr.run != nil {
		tr.readScope(tr.run, final)
		tr.run.addPoint(t, final, probed)
	}
	// Containers are sampled at the session's interval while they are
	// few, and once a second when many, with the probe reads: each costs
	// a read of a dozen files, and their final values come from the exit
	// wake-up, not from samples.
	tr.nsample++
	if len(tr.order) > maxFastContainers && !final {
		if tr.opts.Meter != nil && !probed {
			return
		}
		if every := max(1, int(MeterInterval/tr.opts.SampleInterval)); tr.opts.Meter == nil && tr.nsample%every != 0 {
			return
		}
	}
	for _, id := range tr.order {
		s := tr.containers[id]
		tr.readScope(s, final)
		s.addPoint(t, final, probed)
	}
}

func (tr *Tracker) refreshMeter(now time.Time, maxAge time.Duration) {
	if tr.opts.Meter == nil {
		return
	}
	if err := tr.opts.Meter.Refresh(now, maxAge); err != nil {
		tr.logOnce("meter", "reading the probes", err)
	}
}

func (tr *Tracker) sampleHost() {
	cpu, mem, disk, got, err := tr.hs.sample()
	if err != nil {
		tr.logOnce("host", "reading host usage", err)
	}
	tr.addHost(cpu, mem, disk, got)
}

// addHost takes the host's figures into the run's peaks; got says which
// were measured. tr.mu held.
func (tr *Tracker) addHost(cpu, mem, disk float64, got uint8) {
	tr.hostGot |= got
	if got&gotCPU != 0 {
		tr.host.CPUUsagePercent = max(tr.host.CPUUsagePercent, cpu)
	}
	if got&gotMem != 0 {
		tr.host.MemoryUsagePercent = max(tr.host.MemoryUsagePercent, mem)
	}
	if got&gotDisk != 0 {
		tr.host.DiskUsagePercent = max(tr.host.DiskUsagePercent, disk)
	}
}

// feed takes the host's figures of one agent tick. A tick before the
// start is not the run's; a CPU usage measured over an interval that
// began before the start is not either (it may be another run's burst).
func (tr *Tracker) feed(t hostTick) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if t.time.Before(tr.start) {
		return
	}
	got := t.got
	if t.since.IsZero() || t.since.Before(tr.start) {
		got &^= gotCPU
	}
	tr.addHost(t.cpu, t.mem, t.disk, got)
}

func (tr *Tracker) logOnce(key, msg string, err error) {
	if tr.errs[key] {
		return
	}
	tr.errs[key] = true
	tr.opts.Logger.Warn(msg, "session", tr.target.Name, "err", err)
}

// Stop takes the final values and returns the report. The run's own
// fields (command, exit code) are the caller's to fill.
func (tr *Tracker) Stop() *session.Report {
	tr.halt()
	// The run ended now, however long the engine takes to list.
	end := tr.opts.now()
	found := tr.catchUpContainers()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, c := range found {
		tr.addContainerLocked(c, tr.start)
	}
	tr.sample(end, true)
	tr.closeWatches()
	r := &session.Report{
		SchemaVersion:   session.SchemaVersion,
		Name:            tr.target.Name,
		StartedAt:       tr.start,
		EndedAt:         end,
		DurationSeconds: end.Sub(tr.start).Seconds(),
		Cgroup:          tr.target.Cgroup.ID(),
		Host:            tr.host,
		Containers:      []session.ContainerReport{},
		Series:          &session.Series{IntervalSeconds: tr.opts.SampleInterval.Seconds()},
	}
	unavailable := map[string]bool{}
	sources := map[string]bool{"cgroupfs": true}
	for _, f := range []struct {
		bit  uint8
		name string
	}{{gotCPU, "cpu_usage_percent"}, {gotMem, "memory_usage_percent"}, {gotDisk, "disk_usage_percent"}} {
		if tr.hostGot&f.bit == 0 {
			r.Host.SetUnmeasured(f.name)
			unavailable["host."+f.name] = true
		}
	}
	r.TotalsOf = session.TotalsCgroup
	if tr.run == nil {
		r.TotalsOf = session.TotalsContainers
	}
	if tr.run != nil {
		r.Totals = tr.run.measures(sources, unavailable)
		r.Series.Run = tr.run.points
		tr.run.close()
	}
	keys := seriesKeys(tr.order, tr.containers)
	for i, id := range tr.order {
		s := tr.containers[id]
		c := s.meta
		c.Measures = s.measures(sources, unavailable)
		r.Containers = append(r.Containers, c)
		if r.Series.Containers == nil {
			r.Series.Containers = map[string][]session.Point{}
		}
		r.Series.Containers[keys[i]] = s.points
		s.close()
		if tr.run == nil {
			addMeasures(&r.Totals, &c.Measures)
		}
	}
	if tr.run == nil && len(r.Containers) > 0 {
		r.Series.Run = nil
	}
	for k := range sources {
		r.Sources = append(r.Sources, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(r.Sources))) // "ebpf" before "cgroupfs"
	for k := range unavailable {
		r.Unavailable = append(r.Unavailable, k)
	}
	sort.Strings(r.Unavailable)
	if tr.opts.Meter == nil {
		why := tr.opts.NoMeter
		if why == "" {
			why = "the eBPF probes are not loaded"
		}
		r.SourcesMissing = append(r.SourcesMissing, session.MissingSource{Source: "ebpf", Reason: why})
	}
	if tr.dockerErr != "" {
		r.SourcesMissing = append(r.SourcesMissing, session.MissingSource{Source: "docker", Reason: tr.dockerErr})
	}
	if lm, ok := tr.opts.Meter.(lossMeter); ok {
		if n := lm.BlockLostCompletions(); n > tr.lostAtStart {
			r.BlockLostCompletions = n - tr.lostAtStart
		}
	}
	r.Findings = tr.findings(r)
	if tr.procsID != 0 {
		ps, err := runProcesses(tr.opts.Procs, tr.procsID, tr.opts.ProcFS, tr.procsDir)
		if err != nil {
			tr.logOnce("procs", "reading the run's processes", err)
		}
		r.Processes = processReports(ps)
		if d := tr.opts.Procs.Dropped(); d > tr.procsDropped {
			r.ProcessesDropped = d - tr.procsDropped
		}
		tr.opts.Procs.Unwatch(tr.procsID)
		tr.procsID = 0
	}
	r.ContainersOmitted = len(tr.omitted) + tr.omittedMore
	if r.ContainersOmitted > 0 {
		r.ContainersLimit = tr.opts.MaxContainers
	}
	return r
}

// Close ends the tracker without a report.
func (tr *Tracker) Close() {
	tr.halt()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.run != nil {
		tr.run.close()
	}
	for _, s := range tr.containers {
		s.close()
	}
	tr.closeWatches()
	if tr.procsID != 0 {
		tr.opts.Procs.Unwatch(tr.procsID)
		tr.procsID = 0
	}
}

// halt stops the sampling and the watchers and waits for them.
func (tr *Tracker) halt() {
	tr.cancel()
	if tr.wake >= 0 {
		_, _ = unix.Write(tr.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	tr.done.Wait()
	if tr.ownHub != nil {
		tr.ownHub.close()
	}
}

// closeWatches closes the inotify and wake-up descriptors. tr.mu held.
func (tr *Tracker) closeWatches() {
	if tr.inotify >= 0 {
		unix.Close(tr.inotify)
		unix.Close(tr.wake)
		tr.inotify, tr.wake = -1, -1
	}
}

// dockerFailed records the first failure to look containers up. An
// address where no engine listens is no failure: no engine, no containers
// to miss. tr.mu held.
func (tr *Tracker) dockerFailed(what string, err error) {
	if tr.dockerErr == "" && !docker.IsUnreachable(err) {
		tr.dockerErr = what + ": " + err.Error()
	}
	tr.logOnce("docker", what, err)
}

// seriesKeys names the plot series of the containers in order (IDs):
// their names, but where one name was taken by several containers of the
// run (docker run --rm --name db, twice), "NAME@" and the short ID, which
// no Docker name can be, so that the second does not overwrite the first.
func seriesKeys(order []string, containers map[string]*scope) []string {
	n := make(map[string]int, len(order))
	for _, id := range order {
		n[containers[id].meta.Name]++
	}
	keys := make([]string, len(order))
	for i, id := range order {
		m := containers[id].meta
		keys[i] = m.Name
		if n[m.Name] > 1 {
			keys[i] = m.Name + "@" + shortID(m.ID)
		}
	}
	return keys
}

// shortID is Docker's short form of a container ID: its first 12 hex
// digits.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// addMeasures adds m to sum; percentiles and peaks take the maximum, which
// bounds the true value of the union from below. A field any part did not
// measure is not measured in the sum.
func addMeasures(sum, m *session.Measures) {
	defer sum.SetUnmeasured(m.Unmeasured...)
	sum.CPUSeconds += m.CPUSeconds
	sum.RunqueueWaitSeconds += m.RunqueueWaitSeconds
	sum.RunqueueWaitP50Seconds = max(sum.RunqueueWaitP50Seconds, m.RunqueueWaitP50Seconds)
	sum.RunqueueWaitP99Seconds = max(sum.RunqueueWaitP99Seconds, m.RunqueueWaitP99Seconds)
	sum.ContextSwitches += m.ContextSwitches
	sum.VoluntaryContextSwitches += m.VoluntaryContextSwitches
	sum.InvoluntaryContextSwitches += m.InvoluntaryContextSwitches
	sum.BlockReadBytes += m.BlockReadBytes
	sum.BlockWriteBytes += m.BlockWriteBytes
	sum.BlockReadOperations += m.BlockReadOperations
	sum.BlockWriteOperations += m.BlockWriteOperations
	sum.BlockIOLatencyP99Seconds = max(sum.BlockIOLatencyP99Seconds, m.BlockIOLatencyP99Seconds)
	sum.NetRxBytes += m.NetRxBytes
	sum.NetTxBytes += m.NetTxBytes
	sum.PeakMemoryBytes += m.PeakMemoryBytes
	sum.ProcessesStarted += m.ProcessesStarted
}

// watchDocker adds every container created after the start that the
// selectors match, as soon as the engine says it starts.
func (tr *Tracker) watchDocker(ctx context.Context, evs <-chan docker.Event, errc <-chan error) {
	defer tr.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-errc:
			if ok && err != nil && ctx.Err() == nil {
				tr.mu.Lock()
				tr.eventsFailed = true
				tr.logOnce("events", "watching container events", err)
				tr.mu.Unlock()
			}
			return
		case ev, ok := <-evs:
			if !ok {
				return
			}
			switch ev.Action {
			case "create", "start":
				tr.addContainer(ctx, ev.ID)
				tr.mu.Lock()
				if s := tr.containers[ev.ID]; s != nil && ev.Action == "start" && s.meta.StartedAt.IsZero() {
					s.meta.StartedAt = ev.Time
				}
				tr.mu.Unlock()
			case "die":
				tr.mu.Lock()
				if s := tr.containers[ev.ID]; s != nil {
					tr.readScope(s, true)
					s.meta.FinishedAt, s.meta.ExitCode = ev.Time, ev.ExitCode
				}
				tr.mu.Unlock()
			case "oom":
				tr.mu.Lock()
				if s := tr.containers[ev.ID]; s != nil {
					s.meta.OOMKilled = true
				}
				tr.mu.Unlock()
			}
		}
	}
}

func (tr *Tracker) addContainer(ctx context.Context, id string) {
	tr.mu.Lock()
	s, known := tr.containers[id]
	start := tr.start
	if known && s.watch < 0 {
		// Created before, started now: the cgroup exists from here on.
		tr.readScope(s, true)
		tr.watch(s)
	}
	tr.mu.Unlock()
	if known {
		return
	}
	c, err := tr.opts.Docker.Inspect(ctx, id)
	if err != nil {
		if !docker.IsNotFound(err) && ctx.Err() == nil {
			tr.mu.Lock()
			tr.dockerFailed("inspecting container "+shortID(id), err)
			tr.mu.Unlock()
		}
		return
	}
	tr.learnLayout(ctx)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.addContainerLocked(c, start)
}

// learnLayout asks the engine for its cgroup driver once, without holding
// tr.mu; the engine's default, cgroupfs, stands when it does not answer.
func (tr *Tracker) learnLayout(ctx context.Context) {
	tr.mu.Lock()
	known := tr.layout != nil
	tr.mu.Unlock()
	if known {
		return
	}
	l := cgroups.Layout{Driver: "cgroupfs"}
	info, err := tr.opts.Docker.Info(ctx)
	if err == nil && info.CgroupDriver != "" {
		l.Driver = info.CgroupDriver
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err != nil {
		tr.logOnce("info", "asking the docker engine for its cgroup driver; assuming cgroupfs", err)
	}
	if tr.layout == nil {
		tr.layout = &l
	}
}

// addContainerLocked adds c if it was created after start and matches the
// selectors. tr.mu held.
func (tr *Tracker) addContainerLocked(c docker.Container, start time.Time) {
	if _, known := tr.containers[c.ID]; known || (!start.IsZero() && c.Created.Before(start)) || !matches(tr.sel, c.Labels) {
		return
	}
	if len(tr.order) >= tr.opts.MaxContainers {
		tr.omit(c.ID)
		return
	}
	if tr.layout == nil {
		tr.layout = &cgroups.Layout{Driver: "cgroupfs"}
	}
	l := *tr.layout
	l.Parent = c.CgroupParent
	p := cgroups.DockerPath(l, c.ID)
	s := tr.newScope(c.Name, tr.opts.Hierarchy.Uniform(p), true)
	s.meta = session.ContainerReport{ID: c.ID, Name: c.Name, Image: c.Image, Cgroup: p,
		Lifecycle: session.Lifecycle{CreatedAt: c.Created, StartedAt: c.Started, OOMKilled: c.OOMKilled}}
	if c.State == "exited" || c.State == "dead" {
		s.meta.FinishedAt, s.meta.ExitCode = c.Finished, &c.ExitCode
	}
	// A container's counters are zero when it is added, as it starts: the
	// plots spread its first probe read over the time since.
	s.anchored = true
	if !tr.start.IsZero() {
		s.anchor.T = max(0, tr.opts.now().Sub(tr.start).Seconds())
	}
	tr.containers[c.ID] = s
	tr.order = append(tr.order, c.ID)
	tr.readScope(s, true)
	tr.watch(s)
}

// omit counts a container the session has no room for. tr.mu held.
func (tr *Tracker) omit(id string) {
	if _, ok := tr.omitted[id]; ok {
		return
	}
	if len(tr.omitted) >= maxOmittedIDs {
		tr.omittedMore++
		return
	}
	if tr.omitted == nil {
		tr.omitted = map[string]struct{}{}
	}
	tr.omitted[id] = struct{}{}
}

// catchUpContainers lists containers at the end, to find those whose
// events were lost while the stream was down or had not arrived yet,
// within stopDockerWait and without holding tr.mu. It returns those to
// add.
func (tr *Tracker) catchUpContainers() []docker.Container {
	if tr.opts.Docker == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopDockerWait)
	defer cancel()
	cs, err := tr.opts.Docker.List(ctx)
	if err != nil {
		tr.mu.Lock()
		if tr.eventsFailed {
			tr.dockerFailed("listing the containers created while the event stream was down", err)
		} else {
			tr.logOnce("list", "listing containers at the end", err)
		}
		tr.mu.Unlock()
		return nil
	}
	var found []docker.Container
	for _, c := range cs {
		tr.mu.Lock()
		_, known := tr.containers[c.ID]
		tr.mu.Unlock()
		if known || c.Created.Before(tr.start) || !matches(tr.sel, c.Labels) {
			continue
		}
		if full, err := tr.opts.Docker.Inspect(ctx, c.ID); err == nil {
			c = full
		} else if !docker.IsNotFound(err) {
			tr.mu.Lock()
			tr.dockerFailed("inspecting container "+shortID(c.ID), err)
			tr.mu.Unlock()
		}
		found = append(found, c)
	}
	// The engine lists the newest first; the bound keeps the first.
	sort.SliceStable(found, func(i, j int) bool { return found[i].Created.Before(found[j].Created) })
	tr.learnLayout(ctx)
	return found
}

// watch asks inotify to wake watchCgroups when the scope's cgroup2
// cgroup.events changes, so the final values of a container are read the
// moment its last process exits, before the runtime removes the cgroup.
func (tr *Tracker) watch(s *scope) {
	if tr.inotify < 0 || s.paths.V2 == "" {
		return
	}
	wd, err := unix.InotifyAddWatch(tr.inotify, filepath.Join(tr.opts.Hierarchy.Unified, s.paths.V2, "cgroup.events"), unix.IN_MODIFY)
	if err == nil {
		tr.watches[wd] = s
		s.watch = wd
	}
}

func (tr *Tracker) watchCgroups(ctx context.Context) {
	defer tr.done.Done()
	buf := make([]byte, 4096)
	for ctx.Err() == nil {
		fds := []unix.PollFd{{Fd: int32(tr.inotify), Events: unix.POLLIN}, {Fd: int32(tr.wake), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n <= 0 || fds[1].Revents != 0 {
			continue
		}
		m, err := unix.Read(tr.inotify, buf)
		if err != nil || m < unix.SizeofInotifyEvent {
			continue
		}
		tr.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			wd := int(int32(uint32(buf[off]) | uint32(buf[off+1])<<8 | uint32(buf[off+2])<<16 | uint32(buf[off+3])<<24))
			nameLen := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			if s := tr.watches[wd]; s != nil {
				// The probes keep a removed cgroup's counts: Stop's
				// read has them. The files must be read now.
				tr.readScope(s, true)
				// Read right as the last process left: the values are
				// final, whatever happens to the cgroup next.
				if b, err := readFileInto(filepath.Join(tr.opts.Hierarchy.Unified, s.paths.V2, "cgroup.events"), tr.evbuf[:]); err == nil && !cgroups.Populated(b) && s.haveCG {
					s.final = true
				}
			}
			off += unix.SizeofInotifyEvent + nameLen
		}
		tr.mu.Unlock()
	}
}

type selector struct {
	key, value string
	any        bool
}

func parseSelectors(ss []string) ([]selector, error) {
	var out []selector
	for _, s := range ss {
		k, v, ok := strings.Cut(s, "=")
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("container selector %q: want label=value or label", s)
		}
		out = append(out, selector{key: k, value: v, any: !ok})
	}
	return out, nil
}

func matches(sel []selector, labels map[string]string) bool {
	for _, s := range sel {
		v, ok := labels[s.key]
		if !ok || (!s.any && v != s.value) {
			return false
		}
	}
	return true
}

// readFileInto reads a small file into buf with one read.
func readFileInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Read(buf)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf[:n]), nil
}
