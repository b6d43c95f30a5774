// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/containers"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/internal/host"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/sessions"
)

// registrations are every collector crmon has, in the order the agent
// updates and fills them: host first, then containers, then the eBPF
// collector, which attaches its per-cgroup counts to the containers.
// cfg may be nil when only the names are wanted (for the flags).
func registrations(c *cli.Context, cfg *config.Config) []collect.Registration {
	var hostOpts host.Options
	var ctrOpts containers.Options
	if c != nil {
		hostOpts = host.Options{
			FilesystemMountPointsExclude: c.String("collector.filesystem.mount-points-exclude"),
			FilesystemFSTypesExclude:     c.String("collector.filesystem.fs-types-exclude"),
			FilesystemNoStatfs:           !c.Bool("collector.filesystem.statfs"),
			FilesystemMountTimeout:       c.Duration("collector.filesystem.mount-timeout"),
			DiskstatsDeviceExclude:       c.String("collector.diskstats.device-exclude"),
			NetdevDeviceExclude:          c.String("collector.netdev.device-exclude"),
			NetclassDeviceExclude:        c.String("collector.netclass.ignored-devices"),
			ProcessesScanInterval:        c.Duration("collector.processes.scan-interval"),
			NetstatFields:                c.String("collector.netstat.fields"),
			VmstatFields:                 c.String("collector.vmstat.fields"),
		}
	}
	if cfg != nil {
		cc := cfg.Monitoring.Containers
		ctrOpts = containers.Options{
			DockerHost:        cc.DockerHost,
			ContainerLabels:   cc.ContainerLabels,
			EnableMetrics:     cc.EnableMetrics,
			DiskUsageInterval: cc.DiskUsageInterval.Std(),
			IdleRefresh:       idleTicks(cc.IdleRefresh.Std(), cfg.Monitoring.CollectionInterval.Std()),
			RemovedRetention:  cc.RemovedRetention.Std(),
			Include:           cc.Include,
			Exclude:           cc.Exclude,
		}
		// Idle containers' veths are as quiet as the containers.
		hostOpts.NetdevIdleRefresh = cc.IdleRefresh.Std()
		if hostOpts.NetdevIdleRefresh == 0 {
			hostOpts.NetdevIdleRefresh = -1
		}
	}
	return append(host.RegistrationsWithOptions(hostOpts), containers.Registration(ctrOpts))
}

// idleTicks turns idle_refresh into ticks of the collection interval, at
// least one: at the default 10 s interval, an idle container's memory and
// block I/O are read every tick, and nothing else of it. 0 reads every
// container in full every tick (-1).
func idleTicks(refresh, interval time.Duration) int {
	if refresh <= 0 {
		return -1
	}
	if interval <= 0 {
		return 1
	}
	return max(1, int((refresh+interval/2)/interval))
}

// sourceFlags are the flags that choose what the agent reads and where.
func sourceFlags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "path.procfs", Value: "/proc", Usage: "procfs mount point", EnvVars: []string{"CRMON_PATH_PROCFS"}},
		&cli.StringFlag{Name: "path.sysfs", Value: "/sys", Usage: "sysfs mount point", EnvVars: []string{"CRMON_PATH_SYSFS"}},
		&cli.StringFlag{Name: "path.rootfs", Value: "/", Usage: "root filesystem of the host (for a sidecar: where the host's / is mounted)", EnvVars: []string{"CRMON_PATH_ROOTFS"}},
		&cli.StringFlag{Name: "collector.filesystem.mount-points-exclude", Usage: "regexp of mount points to leave out (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_FILESYSTEM_MOUNT_POINTS_EXCLUDE"}},
		&cli.StringFlag{Name: "collector.filesystem.fs-types-exclude", Usage: "regexp of filesystem types to leave out (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_FILESYSTEM_FS_TYPES_EXCLUDE"}},
		&cli.BoolFlag{Name: "collector.filesystem.statfs", Value: true, Hidden: true, Usage: "statfs mount points (off for fixture trees)"},
		&cli.DurationFlag{Name: "collector.filesystem.mount-timeout", Value: 5 * time.Second, Usage: "how long a statfs may take before the mount is skipped until it answers", EnvVars: []string{"CRMON_COLLECTOR_FILESYSTEM_MOUNT_TIMEOUT"}, Action: durationIn(10*time.Millisecond, time.Minute)},
		// Containers' host-side veths would add some forty series each to
		// the node_network_* families; their traffic is in
		// container_network_* under the container's name. Pass an empty
		// value to include them.
		&cli.StringFlag{Name: "collector.netdev.device-exclude", Value: "^veth", Usage: "regexp of interfaces to leave out of node_network_* statistics", EnvVars: []string{"CRMON_COLLECTOR_NETDEV_DEVICE_EXCLUDE"}},
		&cli.StringFlag{Name: "collector.netclass.ignored-devices", Value: "^veth", Usage: "regexp of interfaces to leave out of node_network_* properties", EnvVars: []string{"CRMON_COLLECTOR_NETCLASS_IGNORED_DEVICES"}},
		// Reading every /proc/PID/stat is the agent's largest cost on a
		// host with many containers (each brings a shim and its threads);
		// the process count, the top-N lists and node_processes_state are
		// then up to 5 s old, while the thread count stays fresh.
		&cli.DurationFlag{Name: "collector.processes.scan-interval", Value: 5 * time.Second, Usage: "time between full reads of every /proc/PID for the top-N lists and process states (0: every tick)", EnvVars: []string{"CRMON_COLLECTOR_PROCESSES_SCAN_INTERVAL"}, Action: durationIn(0, time.Hour)},
		&cli.StringFlag{Name: "collector.diskstats.device-exclude", Usage: "regexp of block devices to leave out (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_DISKSTATS_DEVICE_EXCLUDE"}},
		&cli.StringFlag{Name: "collector.netstat.fields", Usage: "regexp of /proc/net/{netstat,snmp,snmp6} fields to export (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_NETSTAT_FIELDS"}},
		&cli.StringFlag{Name: "collector.vmstat.fields", Usage: "regexp of /proc/vmstat fields to export (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_VMSTAT_FIELDS"}},
		&cli.StringFlag{Name: "ebpf", Value: "auto", Usage: "eBPF probes: auto (use them when the kernel allows), required (fail without them) or disabled; overrides the config", EnvVars: []string{"CRMON_EBPF"}, Action: oneOf(config.EBPFModes...)},
	}
	for _, r := range registrations(nil, nil) {
		fs = append(fs, &cli.BoolFlag{
			Name:    "collector." + r.Name,
			Value:   r.DefaultEnabled,
			Usage:   r.Help,
			EnvVars: []string{"CRMON_COLLECTOR_" + strings.ToUpper(strings.ReplaceAll(r.Name, ".", "_"))},
		})
	}
	return fs
}

// sources owns the collectors and what they share (the probes, the Docker
// connection) for the life of the agent; a config reload rebuilds the
// collectors around them.
type sources struct {
	c      *cli.Context
	logger *slog.Logger
	paths  collect.Paths

	collectors []collect.Collector
	// built is what the collector set was built from; a reload that
	// changes none of it keeps the set, and with it the previous readings
	// that rates are computed from.
	built string

	// Loaded once for the agent's life: reloading BPF programs on SIGHUP
	// would lose counts and cost a few hundred milliseconds.
	probes *probe.Probes
	// procs counts the processes of the sessions' cgroups; nil without.
	procs *probe.Procs
	// tasks lists the host's processes for the processes collector in
	// one pass; nil without (procfs then).
	tasks    *probe.Tasks
	ebpfMode string
	// probeErr is why the probes did not load in auto mode.
	probeErr error
	sessions *sessions.Manager
	engine   *docker.Engine
}

func newSources(c *cli.Context, cfg *config.Config, logger *slog.Logger) (*sources, error) {
	s := &sources{
		c:      c,
		logger: logger,
		paths: collect.Paths{
			ProcFS: c.String("path.procfs"),
			SysFS:  c.String("path.sysfs"),
			RootFS: c.String("path.rootfs"),
		},
	}
	if err := s.loadProbes(cfg); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := s.Reload(cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// loadProbes loads the eBPF probes the config asks for. In "auto" mode a
// kernel or privilege that does not allow them is logged once and the
// agent runs on procfs and cgroupfs, with crmon_probe_up 0.
func (s *sources) loadProbes(cfg *config.Config) error {
	e := cfg.Monitoring.EBPF
	s.ebpfMode = e.Mode
	if e.Mode == config.EBPFDisabled || !cfg.Monitoring.EnableMonitoring {
		return nil
	}
	p, err := probe.New(probe.Options{
		Sched:      e.Sched,
		Block:      e.Block,
		Net:        e.Net,
		NoStats:    !e.Stats,
		Required:   e.Mode == config.EBPFRequired,
		MaxCgroups: uint32(e.MapMaxEntries),
		LostAfter:  e.LostCompletionAfter.Std(),
		// Test runs sum removed cgroups for as long as they last; the
		// export keeps them only for removed_retention.
		RemovedRetention: max(10*time.Minute, cfg.Monitoring.Containers.RemovedRetention.Std()),
		ProcFS:           s.paths.ProcFS,
		SysFS:            s.paths.SysFS,
		Logger:           s.logger,
	})
	if err != nil {
		if e.Mode == config.EBPFRequired {
			return fmt.Errorf("ebpf = required: %w", err)
		}
		s.logger.Warn("eBPF probes unavailable; running on procfs and cgroupfs", "err", err)
		s.probeErr = err
		return nil
	}
	s.probes = p
	if t, err := probe.NewTasks(); err == nil {
		s.tasks = t
		if err := t.WalkErr(); err != nil {
			s.logger.Info("the processes scan uses the task iterator: no task list walk (Linux 6.7)", "err", err)
		}
	} else {
		s.logger.Info("the processes scan reads procfs: no task iterator", "err", err)
	}
	return nil
}

// Reload builds the collector set for cfg and returns the set it replaces,
// for the caller to close once the agent no longer uses it. On error the
// old set stays.
func (s *sources) Reload(cfg *config.Config) (old []collect.Collector, err error) {
	if !cfg.Monitoring.EnableMonitoring {
		s.built = ""
		return s.swap(nil), nil
	}
	if s.probes == nil {
		// Monitoring may have been off at start, or ebpf disabled.
		if err := s.loadProbes(cfg); err != nil {
			return nil, err
		}
	}
	m := cfg.Monitoring
	// The interval is in the key because idle_refresh becomes a number
	// of ticks.
	key := fmt.Sprintf("%d|%t|%+v|%q|%q|%d|%t|%v", m.TopProcesses, m.ProcessCommandLines, m.Containers, m.EBPF.Include, m.EBPF.Exclude, m.EBPF.MaxSeries, s.probes != nil, m.CollectionInterval)
	if key == s.built && s.collectors != nil {
		return nil, nil
	}
	opts := collect.Options{Paths: s.paths, Logger: s.logger, TopN: cfg.Monitoring.TopProcesses, CommandLines: cfg.Monitoring.ProcessCommandLines}
	var cs []collect.Collector
	for _, r := range registrations(s.c, cfg) {
		if !s.c.Bool("collector." + r.Name) {
			continue
		}
		col, err := r.New(opts)
		if err != nil {
			closeAll(cs)
			return nil, fmt.Errorf("collector %s: %w", r.Name, err)
		}
		cs = append(cs, col)
	}
	if s.probes != nil {
		var lookup collect.ContainerLookup
		for _, c := range cs {
			if l, ok := c.(collect.ContainerLookup); ok {
				lookup = l
			}
		}
		e := cfg.Monitoring.EBPF
		pc := probe.NewCollector(s.probes, probe.CollectorOptions{
			Lookup:           lookup,
			Include:          e.Include,
			Exclude:          e.Exclude,
			MaxSeries:        e.MaxSeries,
			RemovedRetention: m.Containers.RemovedRetention.Std(),
			Logger:           s.logger,
		})
		// The probes' counts stand in for the final counters of a
		// container whose cgroup went before they could be read.
		if ct, ok := lookup.(*containers.Collector); ok {
			ct.SetCgroupCounter(pc.(collect.CgroupCounter))
		}
		// The processes scan leaves out those of cgroups that did
		// nothing since it last read them, or lists every process in
		// one read of the task iterator.
		for _, c := range cs {
			if a, ok := c.(interface {
				SetCgroupActivity(collect.CgroupActivity)
			}); ok {
				a.SetCgroupActivity(pc.(collect.CgroupActivity))
			}
			if l, ok := c.(interface {
				SetProcessLister(collect.ProcessLister)
			}); ok && s.tasks != nil {
				l.SetProcessLister(s.tasks)
			}
		}
		cs = append(cs, pc)
	}
	s.built = key
	return s.swap(cs), nil
}

func (s *sources) swap(cs []collect.Collector) (old []collect.Collector) {
	old, s.collectors = s.collectors, cs
	return old
}

func closeAll(cs []collect.Collector) error {
	var errs []error
	for _, c := range cs {
		if cl, ok := c.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}

// Collectors is the current set, in update order.
func (s *sources) Collectors() []collect.Collector { return s.collectors }

// Handlers are the API handlers the agent mounts beside /metrics: the
// test-run sessions, measured with the agent's own probes and fed by its
// sample stream.
func (s *sources) Handlers(cfg *config.Config, a *agent.Agent) (map[string]http.Handler, error) {
	h, err := cgroups.Detect(s.paths.ProcFS, s.paths.RootFS)
	if err != nil {
		s.logger.Warn("no cgroup hierarchy; the sessions API is off", "err", err)
		return nil, nil
	}
	sc := cfg.Monitoring.Sessions
	opts := sessions.ManagerOptions{
		Hierarchy:      h,
		ProcFS:         s.paths.ProcFS,
		DiskPath:       s.paths.RootFS,
		MaxSessions:    sc.MaxSessions,
		MaxPerUser:     sc.MaxSessionsPerUser,
		AbandonedAfter: sc.AbandonedAfter.Std(),
		Logger:         s.logger,
	}
	switch {
	case s.probes != nil && noProbeUp(s.probes) == "":
		opts.Meter = sessions.NewProbeMeter(s.probes)
		if s.procs == nil {
			if pc, err := probe.NewProcs(); err == nil {
				s.procs = pc
			} else {
				s.logger.Warn("sessions will not count processes one by one", "err", err)
			}
		}
		if s.procs != nil {
			opts.Procs = s.procs
		}
	case s.probes != nil:
		opts.NoMeter = "the agent's eBPF probes are down: " + noProbeUp(s.probes)
	case s.probeErr != nil:
		opts.NoMeter = "the agent could not load the eBPF probes: " + s.probeErr.Error()
	default:
		opts.NoMeter = "the agent runs without eBPF probes (ebpf = " + s.ebpfMode + ")"
	}
	if cfg.Monitoring.Containers.Enabled {
		if e, err := docker.New(cfg.Monitoring.Containers.DockerHost); err == nil {
			s.engine = e
			opts.Docker = e
		} else {
			s.logger.Warn("sessions will not see containers", "err", err)
		}
	}
	// A few ticks of slack: feeding the sessions takes microseconds per
	// session.
	opts.Samples = a.Subscribe("sessions", 4)
	s.sessions = sessions.NewManager(opts)
	return map[string]http.Handler{"/api/v1/sessions": s.sessions}, nil
}

// ProbeSummary says which eBPF probes run, for the start-up log line.
func (s *sources) ProbeSummary() string {
	if s.probes == nil {
		return "off (" + s.ebpfMode + ")"
	}
	var up, down []string
	for _, st := range s.probes.Status() {
		if st.Up {
			up = append(up, st.Probe)
		} else {
			down = append(down, st.Probe)
		}
	}
	out := "up: " + strings.Join(up, ",")
	if len(down) > 0 {
		out += "; down: " + strings.Join(down, ",")
	}
	return out
}

// Abandon forgets everything without closing it, for an exit that cannot
// wait for a collection to finish; the kernel detaches the probes when the
// process exits.
func (s *sources) Abandon() {
	s.collectors, s.sessions, s.engine, s.probes, s.procs, s.tasks = nil, nil, nil, nil, nil, nil
}

// Close releases everything: collectors, sessions, the Docker client, and
// last the probes, which detach from the kernel.
func (s *sources) Close() error {
	errs := []error{closeAll(s.collectors)}
	s.collectors = nil
	if s.sessions != nil {
		errs = append(errs, s.sessions.Close())
	}
	if s.engine != nil {
		errs = append(errs, s.engine.Close())
	}
	if s.procs != nil {
		errs = append(errs, s.procs.Close())
		s.procs = nil
	}
	if s.tasks != nil {
		errs = append(errs, s.tasks.Close())
		s.tasks = nil
	}
	if s.probes != nil {
		errs = append(errs, s.probes.Close())
		s.probes = nil
	}
	return errors.Join(errs...)
}
