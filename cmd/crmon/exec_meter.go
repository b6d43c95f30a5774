// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/sessions"
)

// newExecMeter loads the probes for a run measured without an agent. mode
// is auto (use what loads), required (fail unless all load) or disabled.
// Without probes, the meter is nil and why says what stopped them.
func newExecMeter(mode string, h *cgroups.Hierarchy, logger *slog.Logger) (m sessions.Meter, release func(), why string, err error) {
	switch mode {
	case "disabled":
		return nil, func() {}, "--ebpf disabled", nil
	case "auto", "required":
	default:
		return nil, nil, "", fmt.Errorf("--ebpf %q: want auto, required or disabled", mode)
	}
	opts := probe.DefaultOptions()
	opts.Required = mode == "required"
	// Run-time statistics are for the agent's health metrics; a run
	// does not export them.
	opts.NoStats = true
	opts.Cgroup2Root = h.Unified
	opts.Logger = logger
	p, err := probe.New(opts)
	if err != nil {
		if mode == "required" {
			return nil, nil, "", fmt.Errorf("--ebpf required: loading the eBPF probes: %w", err)
		}
		logger.Warn("eBPF probes unavailable: measuring from cgroup files only", "err", err)
		return nil, func() {}, "loading the eBPF probes: " + err.Error(), nil
	}
	if why := noProbeUp(p); why != "" {
		// Loaded, but nothing attached: as good as none, and the report
		// must say so.
		_ = p.Close()
		return nil, func() {}, "loading the eBPF probes: " + why, nil
	}
	return sessions.NewProbeMeter(p), func() { _ = p.Close() }, "", nil
}

// newProcCounter loads the per-process probes for a run measured here;
// nil when they do not load (the report then has no processes).
func newProcCounter(mode string, logger *slog.Logger) (sessions.ProcCounter, func()) {
	if mode == "disabled" {
		return nil, func() {}
	}
	pc, err := probe.NewProcs()
	if err != nil {
		logger.Warn("per-process counts unavailable", "err", err)
		return nil, func() {}
	}
	return pc, func() { _ = pc.Close() }
}

// noProbeUp says why no probe of p counts anything, or "" when one does.
func noProbeUp(p *probe.Probes) string {
	var reasons []string
	for _, st := range p.Status() {
		if st.Up {
			return ""
		}
		if st.Reason != "" && !slices.Contains(reasons, st.Reason) {
			reasons = append(reasons, st.Reason)
		}
	}
	if len(reasons) == 0 {
		return "no probe attached"
	}
	return strings.Join(reasons, "; ")
}

// localTracker completes base to measure a run in this process: the probes
// loaded here and the Docker engine at dockerHost. It runs no in-process
// agent: an agent's collectors read every mount, process and container,
// which a one-off run does not need, and with no agent there is no other
// reader for the run's own reads to duplicate (internal/sessions). agentErr, when set, is
// why the agent did not measure it; the report's sources_missing then says
// so beside what stopped the probes here.
func localTracker(base sessions.TrackerOptions, mode, dockerHost string, h *cgroups.Hierarchy, agentErr error) (sessions.TrackerOptions, func(), error) {
	meter, closeMeter, why, err := newExecMeter(mode, h, base.Logger)
	if err != nil {
		if agentErr != nil {
			err = fmt.Errorf("the agent did not measure the run (%v), and %w", agentErr, err)
		}
		return base, nil, err
	}
	base.Meter, base.NoMeter = meter, why
	if meter != nil {
		pc, closeProcs := newProcCounter(mode, base.Logger)
		base.Procs = pc
		closeMeter = func(closeMeter func()) func() { return func() { closeProcs(); closeMeter() } }(closeMeter)
	}
	if meter == nil && agentErr != nil {
		base.NoMeter = fmt.Sprintf("the agent did not measure the run (%v), and %s", agentErr, why)
	}
	release := closeMeter
	if d, err := docker.New(dockerHost); err == nil {
		base.Docker = d
		release = func() { d.Close(); closeMeter() }
	}
	return base, release, nil
}
