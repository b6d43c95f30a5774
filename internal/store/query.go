// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
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

// Engine evaluates PromQL over the store, within Limits, which a reload
// may change (SetLimits).
type Engine struct {
	q   storage.Queryable
	log *slog.Logger
	cur atomic.Pointer[engineState]
}

// engineState is one set of limits and what enforces them: the PromQL
// engine (its sample bound and timeout are fixed when it is made) and the
// query slots. A query keeps the state it started with, so a reload never
// changes a running query's bounds, and its slot is given back to the
// semaphore it came from.
type engineState struct {
	eng    *promql.Engine
	limits Limits
	sem    chan struct{}
}

// NewEngine evaluates over q (a Store's Queryable).
func NewEngine(q storage.Queryable, l Limits, logger *slog.Logger) *Engine {
	e := &Engine{q: q, log: logger}
	e.SetLimits(l)
	return e
}

// SetLimits makes the engine's next queries run within l (zero fields are
// the defaults'); running ones finish within the limits they started
// with, so for a while both may run.
func (e *Engine) SetLimits(l Limits) {
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
	e.cur.Store(&engineState{
		eng: promql.NewEngine(promql.EngineOpts{
			Logger:               e.log,
			MaxSamples:           l.MaxSamples,
			Timeout:              l.Timeout,
			LookbackDelta:        5 * time.Minute,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
			Parser:               promQL,
		}),
		limits: l,
		sem:    make(chan struct{}, l.Concurrency),
	})
}

// Limits are the engine's bounds.
func (e *Engine) Limits() Limits { return e.cur.Load().limits }

// ErrBusy is returned when the engine's queries stay full for the whole
// timeout.
var ErrBusy = errors.New("too many concurrent queries")

// Result is a query's value and the warnings that came with it.
type Result struct {
	Value    parser.Value
	Warnings annotations.Annotations
}

// Instant evaluates expr at t and hands the result to use.
//
// use runs while the query holds its slot and its memory: the PromQL
// engine recycles a result's points once the query is closed, so use
// must copy what it keeps, and whatever it builds from the result
// (an encoded answer) is built within the concurrency bound.
func (e *Engine) Instant(ctx context.Context, expr string, t time.Time, use func(*Result) error) error {
	return e.run(ctx, func(ctx context.Context, st *engineState) (promql.Query, error) {
		return st.eng.NewInstantQuery(ctx, e.q, nil, expr, t)
	}, use)
}

// Range evaluates expr from start to end every step and hands the result
// to use, as Instant does. The live page's history and crmon query use it
// as they would a Prometheus server.
func (e *Engine) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration, use func(*Result) error) error {
	if step <= 0 {
		return &BadRequest{errors.New("step must be more than 0")}
	}
	if end.Before(start) {
		return &BadRequest{errors.New("end is before start")}
	}
	maxPoints := e.Limits().MaxPoints
	if n := end.Sub(start) / step; n > time.Duration(maxPoints) {
		return &BadRequest{fmt.Errorf("exceeded maximum resolution of %d points per series: %d; use a larger step", maxPoints, n)}
	}
	return e.run(ctx, func(ctx context.Context, st *engineState) (promql.Query, error) {
		return st.eng.NewRangeQuery(ctx, e.q, nil, expr, start, end, step)
	}, use)
}

// BadRequest is an error in what the caller asked (a parse error, a bad
// range), not in evaluating it.
type BadRequest struct{ Err error }

func (b *BadRequest) Error() string { return b.Err.Error() }
func (b *BadRequest) Unwrap() error { return b.Err }

// acquire takes one of the engine's query slots for a query that may run
// for the engine's timeout, waiting included. It returns the context
// bounded by that timeout, the state the slot belongs to, and done, which
// gives the slot back and ends the context.
func (e *Engine) acquire(ctx context.Context) (_ context.Context, _ *engineState, done func(), _ error) {
	st := e.cur.Load()
	ctx, cancel := context.WithTimeout(ctx, st.limits.Timeout)
	select {
	case st.sem <- struct{}{}:
		return ctx, st, func() { <-st.sem; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, nil, fmt.Errorf("%w: waited %s", ErrBusy, st.limits.Timeout)
	}
}

func (e *Engine) run(ctx context.Context, mk func(context.Context, *engineState) (promql.Query, error), use func(*Result) error) error {
	ctx, st, done, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer done()
	q, err := mk(ctx, st)
	if err != nil {
		return &BadRequest{err}
	}
	defer q.Close()
	r := q.Exec(ctx)
	if r.Err != nil {
		return r.Err
	}
	return use(&Result{Value: r.Value, Warnings: r.Warnings})
}
