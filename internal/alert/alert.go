// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package alert is crmon's alert engine: it evaluates the thresholds and
// alert rules of the configuration against each sample of the agent's
// stream, keeps each alert instance's state as Prometheus does (inactive,
// pending for `for`, firing, resolved), and decides when to notify: when an
// instance starts firing, again while it fires no sooner than the cooldown
// period after the last notification, and once when it resolves.
package alert

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// State is an alert instance's state.
type State string

// States, as Prometheus names them, plus resolved, which a notification
// carries once when a firing instance stops.
const (
	StateInactive State = "inactive"
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Alert is one alert instance as it is notified and served: ADR-006's
// fields (severity, resource, message, value, threshold, timestamp) plus
// labels, state, and the times Prometheus and Alertmanager use.
type Alert struct {
	Name      string            `json:"name"`
	Severity  string            `json:"severity"`
	Resource  string            `json:"resource"`
	Message   string            `json:"message"`
	Value     float64           `json:"value"`
	Threshold float64           `json:"threshold"`
	Timestamp time.Time         `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
	State     State             `json:"state"`
	// ActiveAt is when the condition began to hold (pending began).
	ActiveAt time.Time `json:"active_at"`
	// StartsAt is when the alert began to fire; zero while pending.
	StartsAt time.Time `json:"starts_at,omitzero"`
	// EndsAt is when it resolved; zero while it is active.
	EndsAt time.Time `json:"ends_at,omitzero"`

	// condition is the rule's, for the message.
	condition string
}

// Condition is the rule's condition, e.g. ">".
func (a *Alert) Condition() string { return a.condition }

// Fingerprint identifies the instance: its labels, sorted.
func (a *Alert) Fingerprint() string { return fingerprint(a.Labels) }

func fingerprint(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(&b, "%s=%q,", k, labels[k])
	}
	return b.String()
}

// Notification is an alert to deliver to channels.
type Notification struct {
	Alert Alert
	// Channels are the channel names of the alert's rule; empty means
	// every channel.
	Channels []string
	// Resend is a repeat for Alertmanager only: Prometheus resends every
	// active alert to Alertmanager so that it does not time out, while
	// people are notified again only after the cooldown.
	Resend bool
}
