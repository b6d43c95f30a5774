// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package containers is the "containers" collector: it follows the Docker
// engine's containers (list once, then events), reads each one's cgroup and
// network namespace counters once per tick, and exposes them with cAdvisor's
// metric names and labels and in the snapshot's ContainerMetrics. It also
// maps cgroup paths to containers for the eBPF collector's labels.
//
// Cost: counter files stay open and are re-read with one pread. With the
// eBPF probes, a container whose cgroup switched no task out, did no
// block I/O, had no packets since the last tick and has no task on a CPU
// is idle and costs nothing; without them, one whose CPU total did not
// move since the last tick is idle and costs that one pread. Every
// IdleRefresh ticks an idle container is refreshed: only what moves while
// none of its tasks runs (memory, block I/O, its interfaces) is read, and
// it then holds only those files (5 instead of 19 on a v1 host). One
// that wakes is read in full at the next tick, its files opened again.
// Limits and CFS settings are read on start, on "update" events and
// every minute. Writable-layer sizes come from the engine in the
// background, every DiskUsageInterval.
//
// Churn: a container's last counters are taken when its last process
// leaves (cgroup.events polled, before the runtime removes the
// cgroup), else they are those of the last tick. A container that stopped
// or was removed keeps serving its counters, with their final values, for
// RemovedRetention, so that a scraper at a slower interval still sees
// them; its gauges go at once. A removed one is then dropped with every
// file and map entry.
package containers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/internal/rtnl"
)

// Options configure the collector.
type Options struct {
	// DockerHost is the engine's address ("unix:///var/run/docker.sock");
	// "" uses $DOCKER_HOST or the local socket.
	DockerHost string
	// ContainerLabels lists the Docker labels exported as
	// container_label_<sanitized key> on every container series. Each one
	// is a label on every series, so keep the list short.
	ContainerLabels []string
	// DiskUsageInterval is how often writable-layer sizes are refreshed,
	// in the background (default 1m; the engine walks every layer).
	DiskUsageInterval time.Duration
	// Include and Exclude are path.Match patterns on container names. A
	// container is watched if it matches some Include (or Include is
	// empty) and no Exclude.
	Include, Exclude []string
	// RemovedRetention is how long a container that stopped or was
	// removed keeps serving its counters with their final values; its
	// gauges go at once. 0 serves them until the next Update.
	RemovedRetention time.Duration
	// EnableMetrics adds optional metric groups to the default set:
	// "pressure" (container_pressure_*, PSI), "memory_detail"
	// (container_memory_mapped_file, _swap, _total_active_file_bytes,
	// _total_inactive_file_bytes), "spec_detail"
	// (container_spec_memory_reservation_limit_bytes,
	// container_spec_memory_swap_limit_bytes, container_threads_max,
	// container_creation_time_seconds). Each group costs series on every
	// container, so they are off by default.
	EnableMetrics []string
	// IdleRefresh is how often, in ticks, an idle container's counters
	// are re-read (default 10; 1 every tick, still only what moves while
	// it is idle; negative reads every container in full every tick): it
	// bounds how stale they may get. A container is idle when the probes saw
	// nothing of it since the last tick (SetCgroupCounter), else when its
	// CPU total did not move; its memory, I/O and network counters then
	// barely move either (reclaim, writeback and packets its sockets do
	// not see still move them), and skipping them makes an idle container
	// cost nothing a tick with the probes, one pread without, instead of
	// a dozen. Its memory.stat is read at a refresh only when its memory
	// usage moved, or at every sixth (cgroups.ReadIdle), so what moves
	// without the usage (aging, and so the working set) may be six
	// refreshes old. cAdvisor's dynamic housekeeping backs
	// off the same way, up to 15 s for a container whose stats stay put.
	IdleRefresh int
	Paths       collect.Paths
	Logger      *slog.Logger
	// Client overrides the engine client built from DockerHost.
	Client docker.Client
	// keepReaderFor overrides keepReaderFor, in tests.
	keepReaderFor time.Duration
}

// metricGroups are the optional families on.
type metricGroups struct {
	pressure, memoryDetail, specDetail bool
}

// Registration builds a "containers" registration from base; the agent's
// Paths and Logger replace base's.
func Registration(base Options) collect.Registration {
	return collect.Registration{
		Name:           "containers",
		DefaultEnabled: true,
		Help:           "Docker containers: cgroup, network and writable-layer metrics (cAdvisor names)",
		New: func(o collect.Options) (collect.Collector, error) {
			opts := base
			opts.Paths = o.Paths
			if o.Logger != nil {
				opts.Logger = o.Logger
			}
			return New(opts)
		},
	}
}

// Collector is the containers collector. It implements collect.Collector,
// collect.ContainerLookup and io.Closer; Close stops its goroutines.
type Collector struct {
	opts   Options
	log    *slog.Logger
	client docker.Client
	h      *cgroups.Hierarchy
	descs  descs
	groups metricGroups
	// labelNames are the sanitized container_label_* names, in
	// ContainerLabels order.
	labelNames []string
	hostNetNS  string

	cancel context.CancelFunc
	wg     sync.WaitGroup
	exits  *exitWatcher
	// applies carries what the exit watcher learned to the goroutine that
	// applies it under mu, so that the watcher never waits for mu: a tick
	// or scrape holding it would delay the next container's final read
	// past its cgroup's removal.
	applies chan func()
	stopped <-chan struct{}
	// fullFiles is the most files a container's cgroup reader opened: a
	// final read that opens fewer raced the runtime removing the
	// container's hierarchies, and is no final read.
	fullFiles atomic.Int32
	// ready is closed after the first sync with the engine, or the first
	// failure to reach it.
	ready     chan struct{}
	readyOnce sync.Once

	mu         sync.RWMutex
	byID       map[string]*container
	byCgroup   map[string]*container
	up         bool
	layout     cgroups.Layout
	fsDevice   string
	lastUpdate time.Time
	buf        []byte
	devNames   map[uint64]string
	// root is the root cgroup, served as id="/" (root.go); rootTried
	// says it was opened, or could not be.
	root *container
	// rootNet reads the root's interfaces; nil: from its net/dev file.
	rootNet     *rtnl.Conn
	rootNetNext []netIface
	rootTried   bool
	// rootProcsDue is when the root's cgroup.procs is read next
	// (rootProcsCost).
	rootProcsDue time.Time
	// evicted counts removed containers dropped before their retention
	// was over, to keep at most maxRemoved.
	evicted uint64
	// counter gives the probes' per-cgroup counts, nil without probes;
	// unread counts the containers whose final read was lost, by what
	// stood in for it (lost.go). disks maps partitions to their disks.
	counter collect.CgroupCounter
	// activity tells which cgroups the probes saw active in a tick; nil
	// without probes.
	activity collect.CgroupActivity
	unread   [numUnread]uint64
	disks    map[uint64]uint64
	// pending counts the containers in byID held as pending.
	pending int
	// sample is what Fill serves, by name; scrapeOrder the same for
	// Collect, in the registry's order, the root first. Update rebuilds
	// sample when members moved (a container known or dropped, or no
	// longer pending) and checks the order only then or when a
	// container's label sets were rebuilt (relabeled), sorting only when
	// it is broken; byLabels is sample in the registry's order, kept the
	// same way.
	sample, scrapeOrder, byLabels []*container
	members, sampled              uint64
	relabeled                     bool
}

var (
	_ collect.Collector       = (*Collector)(nil)
	_ collect.ContainerLookup = (*Collector)(nil)
)

// New builds the collector and starts following the engine in the
// background. An engine that is down is not an error: crmon_docker_up says
// so and the collector reconnects.
func New(o Options) (c *Collector, err error) {
	if o.Paths == (collect.Paths{}) {
		o.Paths = collect.DefaultPaths()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DiskUsageInterval <= 0 {
		o.DiskUsageInterval = time.Minute
	}
	if o.RemovedRetention < 0 {
		o.RemovedRetention = 0
	}
	if o.IdleRefresh == 0 {
		o.IdleRefresh = 10
	}
	var errs []error
	var groups metricGroups
	for _, g := range o.EnableMetrics {
		switch g {
		case "pressure":
			groups.pressure = true
		case "memory_detail":
			groups.memoryDetail = true
		case "spec_detail":
			groups.specDetail = true
		default:
			errs = append(errs, fmt.Errorf("unknown container metric group %q (want pressure, memory_detail or spec_detail)", g))
		}
	}
	for _, p := range append(append([]string(nil), o.Include...), o.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("container name pattern %q: %w", p, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h, err := cgroups.Detect(o.Paths.ProcFS, o.Paths.RootFS)
	if err != nil {
		return nil, fmt.Errorf("detecting cgroups: %w", err)
	}
	c = &Collector{
		opts:     o,
		log:      o.Logger.With("collector", "containers"),
		h:        h,
		byID:     map[string]*container{},
		byCgroup: map[string]*container{},
		devNames: map[uint64]string{},
		disks:    map[uint64]uint64{},
		ready:    make(chan struct{}),
		groups:   groups,
	}
	c.labelNames = make([]string, len(o.ContainerLabels))
	for i, l := range o.ContainerLabels {
		c.labelNames[i] = "container_label_" + sanitizeLabel(l)
	}
	c.descs = newDescs(c.labelNames)
	c.hostNetNS = readNetNS(o.Paths.ProcFS, 1)

	c.client = o.Client
	if c.client == nil {
		e, err := docker.New(o.DockerHost)
		if err != nil {
			return nil, err
		}
		c.client = e
	}
	c.exits, err = newExitWatcher(h.Unified, c.onPopulatedZero, c.onCgroupCreated, func(p cgroups.Paths) *cgroups.Reader {
		r, err := c.openCgroup(p)
		if err != nil {
			return nil
		}
		return r
	})
	if err != nil {
		c.log.Debug("no exit watcher; short-lived containers keep their last tick's counters", "err", err)
	} else if o.keepReaderFor > 0 {
		c.exits.keepFor = o.keepReaderFor
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.applies, c.stopped = make(chan func(), 256), ctx.Done()
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.applyLoop(ctx) }()
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.follow(ctx) }()
	go func() { defer c.wg.Done(); c.refreshSizes(ctx) }()
	if c.exits != nil {
		c.wg.Add(2)
		go func() { defer c.wg.Done(); c.exits.run() }()
		go func() { defer c.wg.Done(); c.exits.poll() }()
	}
	return c, nil
}

// Ready is closed once the collector has listed the engine's containers,
// or failed to reach the engine once: an agent may wait on it (briefly)
// before its first tick, so that the first sample has the containers.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

func (c *Collector) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// Name implements collect.Collector.
func (c *Collector) Name() string { return "containers" }

// Close stops following the engine and closes every open file.
func (c *Collector) Close() error {
	c.cancel()
	var errs []error
	if c.exits != nil {
		errs = append(errs, c.exits.close())
	}
	c.wg.Wait()
	if c.exits != nil {
		c.exits.closeFiles()
	}
	c.mu.Lock()
	for _, ct := range c.byID {
		ct.closeFiles()
	}
	c.closeRoot()
	c.byID, c.byCgroup, c.sample, c.scrapeOrder = map[string]*container{}, map[string]*container{}, nil, nil
	c.mu.Unlock()
	errs = append(errs, c.client.Close())
	return errors.Join(errs...)
}

// Up reports whether the engine answered last.
func (c *Collector) Up() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.up
}

// Known is the number of containers held, removed ones whose counters
// are still served included.
func (c *Collector) Known() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byID) - c.pending
}

// LookupCgroup implements collect.ContainerLookup: path is a cgroup2 path
// ("/docker/<id>"), or one of a container's own sub-cgroups.
func (c *Collector) LookupCgroup(p string) (collect.ContainerRef, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ct, ok := c.byCgroup[p]
	if !ok {
		_, id, ok2 := cgroups.ParseContainerPath(p)
		if !ok2 {
			return collect.ContainerRef{}, false
		}
		if ct, ok = c.byID[id]; !ok {
			return collect.ContainerRef{}, false
		}
	}
	if ct.pending {
		return collect.ContainerRef{}, false
	}
	return collect.ContainerRef{ID: ct.id, Name: ct.name, Image: ct.image, Labels: ct.labels}, true
}

// watched applies Include and Exclude to a container name.
func (c *Collector) watched(name string) bool {
	for _, p := range c.opts.Exclude {
		if ok, _ := path.Match(p, name); ok {
			return false
		}
	}
	if len(c.opts.Include) == 0 {
		return true
	}
	for _, p := range c.opts.Include {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// sanitizeLabel makes a Docker label key a Prometheus label name, as
// cAdvisor does: every character outside [a-zA-Z0-9_] becomes '_'.
func sanitizeLabel(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		ch := k[i]
		if ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') {
			b.WriteByte(ch)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.descs.describe(ch) }
