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

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/containers"
	"github.com/crmon-dev/crmon/internal/host"
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
			DiskstatsDeviceExclude:       c.String("collector.diskstats.device-exclude"),
			NetstatFields:                c.String("collector.netstat.fields"),
			VmstatFields:                 c.String("collector.vmstat.fields"),
		}
	}
	if cfg != nil {
		cc := cfg.Monitoring.Containers
		ctrOpts = containers.Options{
			DockerHost:        cc.DockerHost,
			ContainerLabels:   cc.ContainerLabels,
			DiskUsageInterval: cc.DiskUsageInterval.Std(),
			Include:           cc.Include,
			Exclude:           cc.Exclude,
		}
	}
	return append(host.RegistrationsWithOptions(hostOpts), containers.Registration(ctrOpts))
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
		&cli.StringFlag{Name: "collector.diskstats.device-exclude", Usage: "regexp of block devices to leave out (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_DISKSTATS_DEVICE_EXCLUDE"}},
		&cli.StringFlag{Name: "collector.netstat.fields", Usage: "regexp of /proc/net/{netstat,snmp,snmp6} fields to export (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_NETSTAT_FIELDS"}},
		&cli.StringFlag{Name: "collector.vmstat.fields", Usage: "regexp of /proc/vmstat fields to export (default: node_exporter's)", EnvVars: []string{"CRMON_COLLECTOR_VMSTAT_FIELDS"}},
		&cli.StringFlag{Name: "ebpf", Value: "auto", Usage: "eBPF probes: auto (use them when the kernel allows), required (fail without them) or disabled; overrides the config", EnvVars: []string{"CRMON_EBPF"}},
	}
	for _, r := range registrations(nil, nil) {
		state := "disabled"
		if r.DefaultEnabled {
			state = "enabled"
		}
		fs = append(fs, &cli.BoolFlag{
			Name:    "collector." + r.Name,
			Value:   r.DefaultEnabled,
			Usage:   fmt.Sprintf("%s (default %s)", r.Help, state),
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
}

func newSources(c *cli.Context, cfg *config.Config, logger *slog.Logger) (s *sources, err error) {
	s = &sources{
		c:      c,
		logger: logger,
		paths: collect.Paths{
			ProcFS: c.String("path.procfs"),
			SysFS:  c.String("path.sysfs"),
			RootFS: c.String("path.rootfs"),
		},
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if _, err := s.Reload(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload builds the collector set for cfg and returns the set it replaces,
// for the caller to close once the agent no longer uses it. On error the
// old set stays.
func (s *sources) Reload(cfg *config.Config) (old []collect.Collector, err error) {
	if !cfg.Monitoring.EnableMonitoring {
		return s.swap(nil), nil
	}
	opts := collect.Options{Paths: s.paths, Logger: s.logger, TopN: cfg.Monitoring.TopProcesses}
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

// Handlers are the API handlers the agent mounts beside /metrics.
func (s *sources) Handlers(a *agent.Agent) map[string]http.Handler { return nil }

// ProbeSummary says which eBPF probes run, for the start-up log line.
func (s *sources) ProbeSummary() string { return "none" }

// Close releases everything.
func (s *sources) Close() error {
	err := closeAll(s.collectors)
	s.collectors = nil
	return err
}
