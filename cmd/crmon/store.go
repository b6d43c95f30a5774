// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/alert"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/store"
	"github.com/crmon-dev/crmon/internal/version"
)

// tsdbDir is the store's TSDB under store.path, beside the alert state.
const tsdbDir = "tsdb"

// history is the running agent's store: nil fields when it is off.
type history struct {
	store  *store.Store
	engine *store.Engine
	done   chan struct{}
	// started is the store's section as the agent started with it.
	started config.Store
}

// startStore opens the store when the config enables it. Unprivileged,
// with the default path (which only root can write), the agent runs
// without it and says so; a path the operator chose must work.
func startStore(cfg *config.Config, logger *slog.Logger) (*history, error) {
	sc := cfg.Monitoring.Store
	h := &history{started: sc}
	if !sc.Enabled {
		return h, nil
	}
	if os.Geteuid() != 0 && sc.Path == config.DefaultStorePath {
		if err := os.MkdirAll(sc.Path, 0o750); err != nil {
			logger.Warn("the local store is off: its default directory is not writable unprivileged; set [cleanroom.monitoring.store] path", "path", sc.Path, "err", err)
			return h, nil
		}
	}
	st, err := store.New(store.Options{
		Dir:       filepath.Join(sc.Path, tsdbDir),
		Retention: cfg.Monitoring.RetentionPeriod.Std(),
		MaxBytes:  sc.MaxBytes,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	h.store = st
	h.engine = store.NewEngine(st.Queryable(), queryLimits(sc), logger)
	return h, nil
}

// queryLimits are the query API's bounds from the config.
func queryLimits(sc config.Store) store.Limits {
	l := store.DefaultLimits()
	l.Timeout = sc.QueryTimeout.Std()
	l.MaxSamples = sc.QueryMaxSamples
	l.Concurrency = sc.QueryConcurrency
	return l
}

// reload applies what a reload may change: the query limits (running
// queries finish within theirs), retention_period and max_bytes (applied
// when the store next checks its blocks, within a minute). Turning the
// store on or off and moving it take a restart, and the log says so.
func (h *history) reload(cfg *config.Config, logger *slog.Logger) {
	sc := cfg.Monitoring.Store
	if sc.Enabled != h.started.Enabled || sc.Path != h.started.Path {
		logger.Warn("the store's enabled and path change at the next start; the running agent keeps the store it started with",
			"enabled", h.started.Enabled, "path", h.started.Path, "new_enabled", sc.Enabled, "new_path", sc.Path)
	}
	if h.store == nil {
		return
	}
	h.engine.SetLimits(queryLimits(sc))
	if err := h.store.SetRetention(cfg.Monitoring.RetentionPeriod.Std(), sc.MaxBytes); err != nil {
		logger.Error("store reload failed; keeping its retention and size bound", "err", err)
	}
}

// exprQuery evaluates alert rules' PromQL over the store; nil when the
// store is off.
func (h *history) exprQuery() func(context.Context, string, time.Time) ([]alert.ExprSample, error) {
	if h.store == nil {
		return nil
	}
	return func(ctx context.Context, expr string, t time.Time) ([]alert.ExprSample, error) {
		var out []alert.ExprSample
		err := h.engine.Instant(ctx, expr, t, func(r *store.Result) error {
			switch v := r.Value.(type) {
			case promql.Vector:
				out = make([]alert.ExprSample, 0, len(v))
				for _, s := range v {
					if s.H != nil {
						continue // no native histograms in the store
					}
					l := s.Metric.Map()
					delete(l, model.MetricNameLabel)
					out = append(out, alert.ExprSample{Labels: l, Value: s.F})
				}
				return nil
			case promql.Scalar:
				out = []alert.ExprSample{{Labels: map[string]string{}, Value: v.V}}
				return nil
			}
			return fmt.Errorf("the expression gives a %s, not an instant vector or a scalar", r.Value.Type())
		})
		return out, err
	}
}

// collectors are the store's self-metrics, for /metrics.
func (h *history) collectors() []prometheus.Collector {
	if h.store == nil {
		return nil
	}
	return []prometheus.Collector{h.store}
}

// handlers are the query API's, for the agent's listener.
func (h *history) handlers(logger *slog.Logger) map[string]http.Handler {
	if h.store == nil {
		return nil
	}
	return store.NewAPI(h.store, h.engine, version.Get().Version, logger).Handlers()
}

// run appends every sample of a until a stops; then the store is closed.
func (h *history) run(a *agent.Agent) {
	if h.store == nil {
		return
	}
	h.done = make(chan struct{})
	// A few samples of slack, as for the alert engine: an append takes a
	// few milliseconds, a compaction longer.
	sub := a.Subscribe("store", 4)
	go func() {
		defer close(h.done)
		h.store.Run(a, sub)
		_ = h.store.Close()
	}()
}

// wait lets the store close after the agent stopped, within d: every
// committed tick is in the write-ahead log already, so one that does not
// finish in time loses nothing.
func (h *history) wait(d time.Duration) {
	if h.done == nil {
		return
	}
	select {
	case <-h.done:
	case <-time.After(d):
	}
}
