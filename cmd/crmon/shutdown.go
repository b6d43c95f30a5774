// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/crmon-dev/crmon/internal/web"
)

// SIGTERM ends the agent within a second, whatever is in flight: a scrape
// by a client that reads slowly or not at all, a collection, the probes'
// detach. Each step gets what is left of the budget; what does not finish
// in time is abandoned, and the kernel releases it when the process exits.
const (
	// shutdownGrace is how long requests in flight may take to finish
	// before their connections are cut.
	shutdownGrace = 400 * time.Millisecond
	// shutdownBudget bounds the whole stop, from the signal on.
	shutdownBudget = 900 * time.Millisecond
)

// shutdown stops the server and releases src within shutdownBudget. The
// collection loop, whose end ran reports, must have been cancelled.
func shutdown(srv *web.Server, src *sources, ran <-chan error, logger *slog.Logger) error {
	deadline := time.Now().Add(shutdownBudget)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	err := srv.Shutdown(ctx)
	cancel()
	if err != nil {
		logger.Warn("requests still in flight at shutdown; closing their connections", "err", err)
		_ = srv.Close()
	}
	// The collectors are closed last: a tick still running must finish
	// first, or it would use what Close releases.
	left := time.NewTimer(time.Until(deadline))
	defer left.Stop()
	select {
	case <-ran:
	case <-left.C:
		logger.Warn("a collection was still running at shutdown; exiting without closing the collectors")
		src.Abandon()
		return nil
	}
	closed := make(chan error, 1)
	go func() { closed <- src.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			logger.Warn("closing at shutdown", "err", err)
		}
	case <-left.C:
		logger.Warn("closing the collectors and probes took too long; exiting without waiting")
	}
	return nil
}
