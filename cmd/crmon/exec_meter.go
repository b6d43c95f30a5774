// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"log/slog"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/sessions"
)

// newExecMeter loads the probes for a run measured without an agent. mode
// is auto, required or disabled.
func newExecMeter(mode string, h *cgroups.Hierarchy, logger *slog.Logger) (sessions.Meter, func(), error) {
	switch mode {
	case "disabled":
		return nil, func() {}, nil
	case "auto", "required":
	default:
		return nil, nil, fmt.Errorf("--ebpf %q: want auto, required or disabled", mode)
	}
	if mode == "required" {
		return nil, nil, fmt.Errorf("--ebpf required: the probes are not available in this build")
	}
	return nil, func() {}, nil
}
