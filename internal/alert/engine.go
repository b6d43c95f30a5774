// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"cmp"
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
	Logger    *slog.Logger
}

// instance is one alert instance's state.
type instance struct {
	ruleKey string
	alert   Alert
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
	inst     map[string]*instance
	ended    []Notification // resolved by a reload, sent at the next Eval
	overflow uint64
	saved    bool // the state file holds the current state
	// saveFailed is set while saving fails, so that it is logged once.
	saveFailed bool

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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opts:  opts,
		log:   opts.Logger,
		rules: slices.Clone(rules),
		inst:  map[string]*instance{},
		descAlerts: prometheus.NewDesc("crmon_alerts",
			"Alert instances by state.", []string{"state"}, nil),
		descOverflow: prometheus.NewDesc("crmon_alert_instances_dropped_total",
			"Alert instances not started because the most the engine holds were held.", nil, nil),
	}
	e.load()
	return e
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
			a := in.alert
			a.State, a.EndsAt = StateResolved, a.Timestamp
			e.ended = append(e.ended, Notification{Alert: a, Channels: e.channelsOf(a.Name)})
		}
		delete(e.inst, k)
		e.saved = false
	}
	e.rules = slices.Clone(rules)
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
func (e *Engine) Eval(m *metrics.ResourceMetrics) []Notification {
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
		rk := r.key()
		if perContainer(r.Resource) {
			for j := range m.Containers.ContainerDetails {
				d := &m.Containers.ContainerDetails[j]
				if d.State != "running" {
					continue
				}
				id := d.CgroupPath
				if id == "" {
					id = d.ContainerID
				}
				labels := e.labels(r, map[string]string{"name": d.ContainerName, "image": d.Image, "id": id})
				name := d.ContainerName
				if name == "" {
					name = d.ContainerID
				}
				out, changed = e.step(out, changed, r, rk, labels, containerValue(r.Resource, d), name, now)
			}
		} else if v, ok := hostValue(r.Resource, m); ok {
			out, changed = e.step(out, changed, r, rk, e.labels(r, nil), v, "", now)
		}
	}
	// An instance not seen this time (its container went away, the host
	// stopped reporting the value) ends: a firing one resolves.
	for k, in := range e.inst {
		if in.seen {
			continue
		}
		if in.alert.State == StateFiring {
			a := in.alert
			a.State, a.EndsAt, a.Timestamp = StateResolved, now, now
			out = append(out, Notification{Alert: a, Channels: e.channelsOf(a.Name)})
		}
		delete(e.inst, k)
		changed = true
	}
	if changed || !e.saved {
		e.save()
	}
	return out
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

// step advances one instance with the value v at now.
func (e *Engine) step(out []Notification, changed bool, r *Rule, rk string, labels map[string]string, v float64, container string, now time.Time) ([]Notification, bool) {
	key := r.Name + "\x00" + fingerprint(labels)
	in := e.inst[key]
	hold := compare(r.Condition, v, r.Threshold)
	if in == nil {
		if !hold {
			return out, changed
		}
		if len(e.inst) >= e.opts.MaxInstances {
			e.overflow++
			return out, changed
		}
		in = &instance{ruleKey: rk, alert: Alert{
			Name: r.Name, Severity: r.Severity, Resource: r.Resource, Threshold: r.Threshold,
			Labels: labels, State: StatePending, ActiveAt: now,
		}}
		e.inst[key] = in
		changed = true
	}
	in.seen = true
	a := &in.alert
	a.Value, a.Timestamp, a.Message = v, now, message(r, v, container)
	switch a.State {
	case StatePending:
		if !hold {
			delete(e.inst, key)
			return out, true
		}
	case StateFiring:
		keep := hold
		if r.ResolveThreshold != nil {
			keep = compare(r.Condition, v, *r.ResolveThreshold)
		}
		if !keep {
			res := *a
			res.State, res.EndsAt = StateResolved, now
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
		out = append(out, Notification{Alert: *a, Channels: r.Channels})
		changed = true
	case now.Sub(in.lastSent) >= e.opts.ResendInterval:
		in.lastSent = now
		out = append(out, Notification{Alert: *a, Channels: r.Channels, Resend: true})
	}
	return out, changed
}

// Alerts returns the active instances (pending and firing), by name and
// then labels.
func (e *Engine) Alerts() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Alert, 0, len(e.inst))
	for _, in := range e.inst {
		a := in.alert
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
