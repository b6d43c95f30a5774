// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"log/slog"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/sessions"
)

// newExecMeter loads the probes for a run measured without an agent. mode
// is auto (use what loads), required (fail unless all load) or disabled.
func newExecMeter(mode string, h *cgroups.Hierarchy, logger *slog.Logger) (sessions.Meter, func(), error) {
	switch mode {
	case "disabled":
		return nil, func() {}, nil
	case "auto", "required":
	default:
		return nil, nil, fmt.Errorf("--ebpf %q: want auto, required or disabled", mode)
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
			return nil, nil, err
		}
		logger.Warn("eBPF probes unavailable: measuring from cgroup files only", "err", err)
		return nil, func() {}, nil
	}
	return sessions.NewProbeMeter(p), func() { _ = p.Close() }, nil
}
