// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// A collector that panics (a bug, or a value from the outside world it
// did not expect) costs its own part of one tick or one scrape, never the
// loop or the other collectors: the panic is recovered where the agent
// calls the collector, logged once per distinct cause, and shown as
// crmon_collector_success{collector} 0.

// errPanicked is what update returns for a recovered panic.
var errPanicked = errors.New("collector panicked")

// maxLoggedPanics bounds the distinct panics remembered as logged: a panic
// message may carry what the outside world named (a cgroup, a label
// value), so their number is not crmon's to choose.
const maxLoggedPanics = 64

// panicLog remembers which collectors' last Collect, AppendText or AppendSeries
// panicked, and which panics were logged.
type panicLog struct {
	mu      sync.Mutex
	inServe map[string]bool     // by collector name
	logged  map[string]struct{} // by collector, phase and message
}

// serving reports whether name's last Collect, AppendText or AppendSeries
// panicked.
func (p *panicLog) serving(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inServe[name]
}

// setServing records whether name's Collect, AppendText or AppendSeries just panicked.
func (p *panicLog) setServing(name string, panicked bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !panicked && !p.inServe[name] {
		return
	}
	if p.inServe == nil {
		p.inServe = map[string]bool{}
	}
	if panicked {
		p.inServe[name] = true
	} else {
		delete(p.inServe, name)
	}
}

// first reports whether this panic is the first of its kind: it is logged
// then and not again.
func (p *panicLog) first(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.logged[key]; ok || len(p.logged) >= maxLoggedPanics {
		return false
	}
	if p.logged == nil {
		p.logged = map[string]struct{}{}
	}
	p.logged[key] = struct{}{}
	return true
}

// recovered logs a recovered panic of collector name during phase
// ("update", "fill", "collect", "text", "series") the first time it is seen.
func (a *Agent) recovered(name, phase string, r any) {
	msg := fmt.Sprint(r)
	if len(msg) > 512 {
		msg = msg[:512]
	}
	if !a.panics.first(name + "\x00" + phase + "\x00" + msg) {
		return
	}
	a.logger.Error("collector panicked; its metrics are left out until it recovers (logged once)",
		"collector", name, "phase", phase, "panic", msg, "stack", string(debug.Stack()))
}

// update runs c.Update, turning a panic into errPanicked.
func (a *Agent) update(ctx context.Context, c collect.Collector, now time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.recovered(c.Name(), "update", r)
			err = errPanicked
		}
	}()
	return c.Update(ctx, now)
}

// fill runs c.Fill; false if it panicked.
func (a *Agent) fill(c collect.Collector, m *metrics.ResourceMetrics) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			a.recovered(c.Name(), "fill", r)
			ok = false
		}
	}()
	c.Fill(m)
	return true
}

// collectOne runs c.Collect. After a panic, what c sent before it stays
// in the scrape; the rest of its series are missing.
func (a *Agent) collectOne(c collect.Collector, ch chan<- prometheus.Metric) {
	panicked := true
	defer func() {
		if panicked {
			a.recovered(c.Name(), "collect", recover())
		}
		a.panics.setServing(c.Name(), panicked)
	}()
	c.Collect(ch)
	panicked = false
}

// appendText runs t.AppendText; after a panic, nothing of what it
// appended is kept.
func (a *Agent) appendText(name string, t collect.TextAppender, b []byte) []byte {
	return appendGuarded(a, name, "text", b, t.AppendText)
}

// appendSeries runs sa.AppendSeries; after a panic, nothing of what it
// appended is kept.
func (a *Agent) appendSeries(name string, sa collect.SeriesAppender, dst []collect.Point) []collect.Point {
	return appendGuarded(a, name, "series", dst, sa.AppendSeries)
}

// appendGuarded runs appendTo(dst) for collector name; after a panic it
// is recovered and logged as what, and dst is returned as it was.
func appendGuarded[T any](a *Agent, name, what string, dst []T, appendTo func([]T) []T) (out []T) {
	n := len(dst)
	panicked := true
	defer func() {
		if panicked {
			a.recovered(name, what, recover())
			out = dst[:n]
		}
		a.panics.setServing(name, panicked)
	}()
	out = appendTo(dst)
	panicked = false
	return out
}
