// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// promQL is the parser with the engine's default options.
var promQL = parser.NewParser(parser.Options{})

// ParseExpr parses a PromQL expression as the engine will, for checking a
// rule's expr before it is used.
func ParseExpr(expr string) (parser.Expr, error) { return promQL.ParseExpr(expr) }

// Limits bound what one query may cost, so that a heavy query cannot
// starve collection (the agent's tick takes a few milliseconds of one
// core; a query can take seconds of another).
type Limits struct {
	// Timeout ends a query that runs longer (Prometheus' default 2 m is
	// for a server; an agent's queries are a dashboard's).
	Timeout time.Duration
	// MaxSamples is the most samples a query may hold in memory at once
	// (about 16 bytes each).
	MaxSamples int
	// Concurrency is how many queries run at once; more wait, up to
	// Timeout.
	Concurrency int
	// MaxPoints is the most points per series a range query may return
	// (Prometheus' 11 000).
	MaxPoints int
}

// DefaultLimits suit an agent on a CI host: 30 s, 5 M samples (80 MB), two
// queries at a time.
func DefaultLimits() Limits {
	return Limits{Timeout: 30 * time.Second, MaxSamples: 5_000_000, Concurrency: 2, MaxPoints: 11_000}
}

// Engine evaluates PromQL over the store, within Limits.
type Engine struct {
	eng    *promql.Engine
	q      storage.Queryable
	limits Limits
	sem    chan struct{}
}

// NewEngine evaluates over q (a Store's Queryable).
func NewEngine(q storage.Queryable, l Limits, logger *slog.Logger) *Engine {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxSamples <= 0 {
		l.MaxSamples = d.MaxSamples
	}
	if l.Concurrency <= 0 {
		l.Concurrency = d.Concurrency
	}
	if l.MaxPoints <= 0 {
		l.MaxPoints = d.MaxPoints
	}
	return &Engine{
		eng: promql.NewEngine(promql.EngineOpts{
			Logger:               logger,
			MaxSamples:           l.MaxSamples,
			Timeout:              l.Timeout,
			LookbackDelta:        5 * time.Minute,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			Parser:               promQL,
		}),
		q:      q,
		limits: l,
		sem:    make(chan struct{}, l.Concurrency),
	}
}

// Limits are the engine's bounds.
func (e *Engine) Limits() Limits { return e.limits }

// ErrBusy is returned when the engine's queries stay full for the whole
// timeout.
var ErrBusy = errors.New("too many concurrent queries")

// Result is a query's value and the warnings that came with it.
type Result struct {
	Value    parser.Value
	Warnings annotations.Annotations
}

// Instant evaluates expr at t.
func (e *Engine) Instant(ctx context.Context, expr string, t time.Time) (*Result, error) {
	return e.run(ctx, func() (promql.Query, error) {
		return e.eng.NewInstantQuery(ctx, e.q, nil, expr, t)
	})
}

// Range evaluates expr from start to end every step. The live page's
// history and crmon query use it as they would a Prometheus server.
func (e *Engine) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) (*Result, error) {
	if step <= 0 {
		return nil, &BadRequest{errors.New("step must be more than 0")}
	}
	if end.Before(start) {
		return nil, &BadRequest{errors.New("end is before start")}
	}
	if n := end.Sub(start) / step; n > time.Duration(e.limits.MaxPoints) {
		return nil, &BadRequest{fmt.Errorf("exceeded maximum resolution of %d points per series: %d; use a larger step", e.limits.MaxPoints, n)}
	}
	return e.run(ctx, func() (promql.Query, error) {
		return e.eng.NewRangeQuery(ctx, e.q, nil, expr, start, end, step)
	})
}

// BadRequest is an error in what the caller asked (a parse error, a bad
// range), not in evaluating it.
type BadRequest struct{ Err error }

func (b *BadRequest) Error() string { return b.Err.Error() }
func (b *BadRequest) Unwrap() error { return b.Err }

func (e *Engine) run(ctx context.Context, mk func() (promql.Query, error)) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, e.limits.Timeout)
	defer cancel()
	select {
	case e.sem <- struct{}{}:
		defer func() { <-e.sem }()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waited %s", ErrBusy, e.limits.Timeout)
	}
	q, err := mk()
	if err != nil {
		return nil, &BadRequest{err}
	}
	defer q.Close()
	r := q.Exec(ctx)
	if r.Err != nil {
		return nil, r.Err
	}
	return &Result{Value: r.Value, Warnings: r.Warnings}, nil
}
