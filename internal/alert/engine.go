// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Defaults of Options.
const (
	// DefaultResendInterval is how often a firing alert is sent to
	// Alertmanager again, Prometheus' --rules.alert.resend-delay.
	DefaultResendInterval = time.Minute
	// DefaultMaxInstances bounds the alert instances held at once: the
	// container_* rules make one per container.
	DefaultMaxInstances = 10000
	// DefaultStateWriteInterval is the least time between two writes of
	// the state file: under churn (hundreds of container instances
	// starting and ending) the changes of that time make one write. A
	// stop writes what is left (Flush); a crash loses at most this much.
	DefaultStateWriteInterval = 10 * time.Second
	// DefaultMaxStateBytes bounds the state file; beyond it, pending
	// instances and then the oldest are left out, counted and logged.
	DefaultMaxStateBytes = 8 << 20
)

// Options configure an Engine.
type Options struct {
	// Cooldown is the least time between two notifications of the same
	// instance while it fires.
	Cooldown time.Duration
	// ResendInterval is how often a firing instance is resent to
	// Alertmanager channels; DefaultResendInterval when 0.
	ResendInterval time.Duration
	// MaxInstances bounds the instances; DefaultMaxInstances when 0.
	MaxInstances int
	// StatePath is the file that keeps the instances across restarts;
	// "" keeps them in memory only.
	StatePath string
	// StateWriteInterval is DefaultStateWriteInterval when 0, measured
	// in the samples' time.
	StateWriteInterval time.Duration
	// MaxStateBytes is DefaultMaxStateBytes when 0.
	MaxStateBytes int
	// Query evaluates an expr rule's PromQL at a time, over the local
	// store; nil when there is none, and expr rules are not evaluated.
	Query  func(ctx context.Context, expr string, t time.Time) ([]ExprSample, error)
	Logger *slog.Logger
}

// ExprSample is one series an expr rule's query returned.
type ExprSample struct {
	Labels map[string]string // without __name__
	Value  float64
}

// exprResult is an expr rule's query result at one evaluation.
type exprResult struct {
	samples []ExprSample
	err     error
}

// maxExprSeries bounds the instances one expr rule's query may start at
// one evaluation; the engine's MaxInstances bounds all.
const maxExprSeries = 1000

// instKey identifies an instance: its rule and, for a per-container
// rule, the container's id ("" for a host rule). Cheaper to look up on
// every tick than the labels' fingerprint.
type instKey struct{ rule, id string }

// instance is one alert instance's state.
type instance struct {
	ruleKey string
	// container names the container in messages; "" for a host rule.
	container string
	alert     Alert
	// lastNotified is the last notification to every channel; lastSent
	// the last to Alertmanager, resends included.
	lastNotified time.Time
	lastSent     time.Time
	seen         bool // in the current evaluation
}

// Engine evaluates rules against samples. Its clock is the samples' time,
// so that tests drive it with samples alone.
type Engine struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // guards everything below
	rules    []Rule
	ruleKeys []string // rules[i].key()
	inst     map[instKey]*instance
	ended    []Notification // resolved by a reload, sent at the next Eval
	overflow uint64
	// dirty says the state changed since the state file was last
	// written; written is when that was, in the samples' time.
	dirty   bool
	written time.Time
	// saveFailed is set while saving fails, so that it is logged once.
	saveFailed bool
	// exprLogged is when each expr rule's failure was last logged.
	exprLogged map[string]time.Time
	// wmu serialises writes of the state file (an evaluation's and
	// Flush's), without holding mu across the disk.
	wmu sync.Mutex

	descAlerts, descOverflow *prometheus.Desc
}

// New makes an engine for rules and restores the instances of the state
// file whose rules are unchanged.
func New(rules []Rule, opts Options) *Engine {
	if opts.ResendInterval <= 0 {
		opts.ResendInterval = DefaultResendInterval
	}
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = DefaultMaxInstances
	}
	if opts.StateWriteInterval <= 0 {
		opts.StateWriteInterval = DefaultStateWriteInterval
	}
	if opts.MaxStateBytes <= 0 {
		opts.MaxStateBytes = DefaultMaxStateBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opts: opts,
		log:  opts.Logger,
		inst: map[instKey]*instance{},
		descAlerts: prometheus.NewDesc("crmon_alerts",
			"Alert instances by state.", []string{"state"}, nil),
		descOverflow: prometheus.NewDesc("crmon_alert_instances_dropped_total",
			"Alert instances not started because the most the engine holds were held.", nil, nil),
	}
	e.setRules(rules)
	e.load()
	return e
}

func (e *Engine) setRules(rules []Rule) {
	e.rules = slices.Clone(rules)
	e.ruleKeys = make([]string, len(rules))
	for i := range rules {
		e.ruleKeys[i] = rules[i].key()
	}
}

// SetRules replaces the rules (a reload). Instances of an unchanged rule
// keep their state; those of a changed or removed rule end, and a firing
// one is notified as resolved at the next Eval.
func (e *Engine) SetRules(rules []Rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := map[string]bool{}
	for i := range rules {
		keys[rules[i].key()] = true
	}
	for k, in := range e.inst {
		if keys[in.ruleKey] {
			continue
		}
		if in.alert.State == StateFiring {
			a := in.resolved(in.alert.Timestamp)
			e.ended = append(e.ended, Notification{Alert: a, Channels: e.channelsOf(a.Name)})
		}
		delete(e.inst, k)
		e.dirty = true
	}
	e.setRules(rules)
}

// channelsOf returns the channels of the rule named name in the rules
// held before a reload; nil (every channel) when it is gone.
func (e *Engine) channelsOf(name string) []string {
	for i := range e.rules {
		if e.rules[i].Name == name {
			return e.rules[i].Channels
		}
	}
	return nil
}

// Eval evaluates every rule on m at m's time and returns what to notify.
// When the state changed and the last write of the state file is
// StateWriteInterval old, it saves it, after letting go of the lock that
// the API and scrapes take. Eval is not meant to run concurrently with
// itself: the agent's stream calls it from one goroutine.
func (e *Engine) Eval(m *metrics.ResourceMetrics) []Notification {
	out, snap, path := e.eval(m, e.queryExprs(m.Timestamp))
	if snap != nil {
		e.write(path, snap)
	}
	return out
}

// Flush writes the state file if the state changed since the last write:
// the agent calls it when it stops, so that a restart resumes from the
// last state, whatever the write interval held back.
func (e *Engine) Flush() {
	e.mu.Lock()
	var snap *stateFile
	path := e.opts.StatePath
	if e.dirty && path != "" {
		snap, e.dirty = e.state(), false
	}
	e.mu.Unlock()
	if snap != nil {
		e.write(path, snap)
	}
}

// SetOptions changes, on a reload, the cooldown and the state file; an
// empty path stops saving.
func (e *Engine) SetOptions(cooldown time.Duration, statePath string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if statePath != e.opts.StatePath {
		// The new file is written at the next evaluation.
		e.dirty, e.written = true, time.Time{}
	}
	e.opts.Cooldown, e.opts.StatePath = cooldown, statePath
}

// queryExprs runs the expr rules' queries at t, before the evaluation
// takes the lock, each within the collection interval's worth of time it
// can spare (exprTimeout).
func (e *Engine) queryExprs(t time.Time) map[string]exprResult {
	e.mu.Lock()
	var exprs []Rule
	for _, r := range e.rules {
		if r.Expr != "" {
			exprs = append(exprs, r)
		}
	}
	q := e.opts.Query
	e.mu.Unlock()
	if len(exprs) == 0 {
		return nil
	}
	out := make(map[string]exprResult, len(exprs))
	for _, r := range exprs {
		if q == nil {
			out[r.Name] = exprResult{err: errNoStore}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), exprTimeout)
		ss, err := q(ctx, r.Expr, t)
		cancel()
		if len(ss) > maxExprSeries {
			ss, err = ss[:maxExprSeries], fmt.Errorf("%d series, more than the %d an expr rule may alert on; the rest are left out", len(ss), maxExprSeries)
			e.exprFailed(r.Name, err)
			err = nil
		}
		if err != nil {
			e.exprFailed(r.Name, err)
		}
		out[r.Name] = exprResult{ss, err}
	}
	return out
}

// exprTimeout bounds one expr rule's query.
const exprTimeout = 5 * time.Second

var errNoStore = errors.New("no local store to evaluate the expression against")

// exprFailed logs an expr rule's failed query, at most once a minute per
// rule.
func (e *Engine) exprFailed(rule string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.exprLogged == nil {
		e.exprLogged = map[string]time.Time{}
	}
	if last, ok := e.exprLogged[rule]; ok && now.Sub(last) < time.Minute {
		return
	}
	e.exprLogged[rule] = now
	e.log.Warn("alert rule: evaluating its expr failed; its alerts stay as they were (logged at most once a minute)", "rule", rule, "err", err)
}

func (e *Engine) eval(m *metrics.ResourceMetrics, exprs map[string]exprResult) ([]Notification, *stateFile, string) {
	now := m.Timestamp
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.ended
	e.ended = nil
	for _, in := range e.inst {
		in.seen = false
	}
	changed := len(out) > 0
	for i := range e.rules {
		r := &e.rules[i]
		switch {
		case r.Expr != "":
			res, ok := exprs[r.Name]
			if !ok || res.err != nil {
				// Unknown this time: its instances stay as they are.
				for k, in := range e.inst {
					if k.rule == r.Name {
						in.seen = true
					}
				}
				continue
			}
			for _, x := range res.samples {
				name := x.Labels["name"]
				out, changed = e.step(out, changed, i, fingerprint(x.Labels), x.Labels, name, x.Value, true, now)
			}
		case perContainer(r.Resource):
			for j := range m.Containers.ContainerDetails {
				d := &m.Containers.ContainerDetails[j]
				if d.State != "running" {
					continue
				}
				id := containerID(d)
				v := containerValue(r.Resource, d)
				out, changed = e.stepContainer(out, changed, i, d, id, v, now)
			}
		default:
			if v, ok := hostValue(r.Resource, m); ok {
				out, changed = e.step(out, changed, i, "", nil, "", v, compare(r.Condition, v, r.Threshold), now)
			}
		}
	}
	// An instance not seen this time (its container went away, the host
	// stopped reporting the value) ends: a firing one resolves.
	for k, in := range e.inst {
		if in.seen {
			continue
		}
		if in.alert.State == StateFiring {
			a := in.resolved(now)
			out = append(out, Notification{Alert: a, Channels: e.channelsOf(a.Name)})
		}
		delete(e.inst, k)
		changed = true
	}
	e.dirty = e.dirty || changed
	var snap *stateFile
	if e.dirty && e.opts.StatePath != "" && (e.written.IsZero() || now.Sub(e.written) >= e.opts.StateWriteInterval || now.Before(e.written)) {
		// write sets dirty again if it fails.
		snap, e.dirty, e.written = e.state(), false, now
	}
	return out, snap, e.opts.StatePath
}

// labels are an instance's labels: the rule's, then alertname, severity
// and resource, then the container's, which win over the rule's.
func (e *Engine) labels(r *Rule, extra map[string]string) map[string]string {
	l := make(map[string]string, len(r.Labels)+3+len(extra))
	maps.Copy(l, r.Labels)
	l["alertname"] = r.Name
	l["severity"] = r.Severity
	l["resource"] = r.Resource
	maps.Copy(l, extra)
	return l
}

// containerID is the id label of a container: its cgroup, as in the
// container_* metrics, or its id when the cgroup is not known.
func containerID(d *metrics.ContainerDetailMetrics) string {
	if d.CgroupPath != "" {
		return d.CgroupPath
	}
	return d.ContainerID
}

// notified is the alert as a notification carries it, message included.
func (in *instance) notified() Alert {
	a := in.alert
	a.Message = message(a.Resource, a.Condition(), a.Value, a.Threshold, in.container, false)
	return a
}

// resolved is the alert's resolved notification, ended at t.
func (in *instance) resolved(t time.Time) Alert {
	a := in.alert
	a.State, a.EndsAt, a.Timestamp = StateResolved, t, t
	a.Message = message(a.Resource, a.Condition(), a.Value, a.Threshold, in.container, true)
	return a
}

// step advances the instance of rule i (and container d, nil for a host
// rule) with the value v at now. The common case, a condition that does
// not hold and no instance, costs one map lookup and no allocation.
// stepContainer is step for a per-container rule: the container's labels
// are built only when an instance starts.
func (e *Engine) stepContainer(out []Notification, changed bool, i int, d *metrics.ContainerDetailMetrics, id string, v float64, now time.Time) ([]Notification, bool) {
	r := &e.rules[i]
	hold := compare(r.Condition, v, r.Threshold)
	var extra map[string]string
	if _, ok := e.inst[instKey{r.Name, id}]; !ok && hold {
		extra = map[string]string{"name": d.ContainerName, "image": d.Image, "id": id}
	}
	return e.step(out, changed, i, id, extra, cmp.Or(d.ContainerName, d.ContainerID), v, hold, now)
}

func (e *Engine) step(out []Notification, changed bool, i int, id string, extra map[string]string, container string, v float64, hold bool, now time.Time) ([]Notification, bool) {
	r := &e.rules[i]
	key := instKey{rule: r.Name, id: id}
	in := e.inst[key]
	if in == nil {
		if !hold {
			return out, changed
		}
		if len(e.inst) >= e.opts.MaxInstances {
			e.overflow++
			return out, changed
		}
		in = &instance{ruleKey: e.ruleKeys[i], container: container}
		in.alert = Alert{
			Name: r.Name, Severity: r.Severity, Resource: r.Resource, Threshold: r.Threshold,
			Labels: e.labels(r, extra), State: StatePending, ActiveAt: now, condition: r.Condition,
		}
		e.inst[key] = in
		changed = true
	}
	in.seen = true
	a := &in.alert
	a.Value, a.Timestamp = v, now
	switch a.State {
	case StatePending:
		if !hold {
			delete(e.inst, key)
			return out, true
		}
	case StateFiring:
		keep := hold
		if r.ResolveThreshold != nil && r.Expr == "" {
			keep = compare(r.Condition, v, *r.ResolveThreshold)
		}
		if !keep {
			res := in.resolved(now)
			delete(e.inst, key)
			return append(out, Notification{Alert: res, Channels: r.Channels}), true
		}
	}
	if a.State == StatePending && now.Sub(a.ActiveAt) >= r.For {
		a.State, a.StartsAt = StateFiring, now
		changed = true
	}
	if a.State != StateFiring {
		return out, changed
	}
	switch {
	case in.lastNotified.IsZero() || now.Sub(in.lastNotified) >= e.opts.Cooldown:
		in.lastNotified, in.lastSent = now, now
		out = append(out, Notification{Alert: in.notified(), Channels: r.Channels})
		changed = true
	case now.Sub(in.lastSent) >= e.opts.ResendInterval:
		in.lastSent = now
		out = append(out, Notification{Alert: in.notified(), Channels: r.Channels, Resend: true})
	}
	return out, changed
}

// Active evaluates m once and returns the active instances: Eval and
// Alerts in one, for a one-off sample.
func (e *Engine) Active(m *metrics.ResourceMetrics) []Alert {
	e.Eval(m)
	return e.Alerts()
}

// Alerts returns the active instances (pending and firing), by name and
// then labels.
func (e *Engine) Alerts() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Alert, 0, len(e.inst))
	for _, in := range e.inst {
		a := in.notified()
		a.Labels = maps.Clone(a.Labels)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Fingerprint(), b.Fingerprint()))
	})
	return out
}

// Describe sends nothing: an unchecked collector.
func (e *Engine) Describe(chan<- *prometheus.Desc) {}

// Collect emits crmon_alerts{state}.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	var pending, firing int
	for _, in := range e.inst {
		switch in.alert.State {
		case StatePending:
			pending++
		case StateFiring:
			firing++
		}
	}
	overflow := e.overflow
	e.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(e.descAlerts, prometheus.GaugeValue, float64(pending), string(StatePending))
	ch <- prometheus.MustNewConstMetric(e.descAlerts, prometheus.GaugeValue, float64(firing), string(StateFiring))
	ch <- prometheus.MustNewConstMetric(e.descOverflow, prometheus.CounterValue, float64(overflow))
}
