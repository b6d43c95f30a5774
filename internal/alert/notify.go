// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/config"
)

// Channel delivers notifications to one destination. Send must return
// by ctx's deadline, and its errors must not carry secrets (URLs with
// tokens, passwords).
type Channel interface {
	Name() string
	Type() string // one of config.ChannelTypes
	Send(ctx context.Context, n Notification) error
}

// permanent marks an error that a retry cannot fix (a 4xx answer).
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Delivery defaults.
const (
	DefaultQueueSize      = 1000
	DefaultAttemptTimeout = 10 * time.Second
	DefaultRetryDeadline  = 2 * time.Minute
	DefaultBackoff        = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
)

// DeliveryOptions configure a Dispatcher.
type DeliveryOptions struct {
	// QueueSize bounds the notifications waiting per channel; beyond it
	// a new one is dropped and counted.
	QueueSize int
	// AttemptTimeout bounds one attempt to deliver.
	AttemptTimeout time.Duration
	// RetryDeadline bounds the attempts to deliver one notification,
	// counted from the first.
	RetryDeadline time.Duration
	// Backoff is the wait before the first retry; each retry doubles
	// it, up to MaxBackoff, and a random share of up to half is taken
	// off (jitter), so that retries of many alerts do not march in step.
	Backoff, MaxBackoff time.Duration
	Logger              *slog.Logger
}

// Dispatcher delivers notifications to channels, each through its own
// bounded queue and goroutine, so that a slow or dead channel delays
// nothing but its own queue.
type Dispatcher struct {
	opts   DeliveryOptions
	log    *slog.Logger
	queues []*queue
	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      *DeliveryMetrics
}

type queue struct {
	ch Channel
	q  chan Notification
}

// DeliveryMetrics are the delivery's metrics; they outlive a Dispatcher
// (a reload makes a new one), so that counters never go back.
type DeliveryMetrics struct {
	notifications *prometheus.CounterVec
	queueLength   *prometheus.GaugeVec
	duration      *prometheus.HistogramVec
	attemptsFail  *prometheus.CounterVec
}

// NewDeliveryMetrics makes the metrics; register them once.
func NewDeliveryMetrics() *DeliveryMetrics {
	return &DeliveryMetrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmon_alert_notifications_total",
			Help: "Alert notifications by channel and result: sent, failed (every attempt up to the retry deadline failed, or the channel refused it) or dropped (its queue was full).",
		}, []string{"channel", "result"}),
		queueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crmon_alert_queue_length",
			Help: "Alert notifications waiting for their channel.",
		}, []string{"channel"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crmon_alert_notification_duration_seconds",
			Help:    "Duration of one attempt to deliver an alert notification.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"channel"}),
		attemptsFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crmon_alert_notification_attempts_failed_total",
			Help: "Attempts to deliver an alert notification that failed; each is retried until the retry deadline.",
		}, []string{"channel"}),
	}
}

// Describe implements prometheus.Collector.
func (m *DeliveryMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.notifications.Describe(ch)
	m.queueLength.Describe(ch)
	m.duration.Describe(ch)
	m.attemptsFail.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *DeliveryMetrics) Collect(ch chan<- prometheus.Metric) {
	m.notifications.Collect(ch)
	m.queueLength.Collect(ch)
	m.duration.Collect(ch)
	m.attemptsFail.Collect(ch)
}

// NewDispatcher starts a goroutine per channel; Close stops them.
func NewDispatcher(channels []Channel, m *DeliveryMetrics, opts DeliveryOptions) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.RetryDeadline <= 0 {
		opts.RetryDeadline = DefaultRetryDeadline
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewDeliveryMetrics()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{opts: opts, log: opts.Logger, cancel: cancel, m: m}
	for _, c := range channels {
		q := &queue{ch: c, q: make(chan Notification, opts.QueueSize)}
		d.queues = append(d.queues, q)
		m.queueLength.WithLabelValues(c.Name()).Set(0)
		for _, r := range []string{"sent", "failed", "dropped"} {
			m.notifications.WithLabelValues(c.Name(), r)
		}
		d.wg.Add(1)
		go d.run(ctx, q)
	}
	return d
}

// Notify queues n for each of its channels without waiting; a full queue
// drops it, counted and logged.
func (d *Dispatcher) Notify(n Notification) {
	for _, q := range d.queues {
		if !wants(q.ch, n) {
			continue
		}
		select {
		case q.q <- n:
			d.m.queueLength.WithLabelValues(q.ch.Name()).Set(float64(len(q.q)))
		default:
			d.m.notifications.WithLabelValues(q.ch.Name(), "dropped").Inc()
			d.log.Warn("alert notification dropped: the channel's queue is full", "channel", q.ch.Name(), "alert", n.Alert.Name, "queue_size", cap(q.q))
		}
	}
}

// wants reports whether channel c takes n: a channel the rule names (or
// any, when it names none); a resend only to Alertmanager.
func wants(c Channel, n Notification) bool {
	if n.Resend && c.Type() != config.ChannelAlertmanager {
		return false
	}
	return len(n.Channels) == 0 || slices.Contains(n.Channels, c.Name())
}

// Close stops the goroutines; what is still queued is not sent. It waits
// for an attempt under way no longer than until ctx ends.
func (d *Dispatcher) Close(ctx context.Context) {
	d.cancel()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (d *Dispatcher) run(ctx context.Context, q *queue) {
	defer d.wg.Done()
	name := q.ch.Name()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-q.q:
			d.m.queueLength.WithLabelValues(name).Set(float64(len(q.q)))
			err := d.deliver(ctx, q.ch, n)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				d.m.notifications.WithLabelValues(name, "failed").Inc()
				d.log.Error("alert notification failed", "channel", name, "type", q.ch.Type(), "alert", n.Alert.Name, "state", n.Alert.State, "err", err)
				continue
			}
			d.m.notifications.WithLabelValues(name, "sent").Inc()
		}
	}
}

// deliver sends n, retrying with exponential backoff and jitter until it
// succeeds, fails for good, or the retry deadline passes.
func (d *Dispatcher) deliver(ctx context.Context, c Channel, n Notification) error {
	deadline := time.Now().Add(d.opts.RetryDeadline)
	wait := d.opts.Backoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, min(d.opts.AttemptTimeout, time.Until(deadline)))
		start := time.Now()
		err := c.Send(actx, n)
		cancel()
		d.m.duration.WithLabelValues(c.Name()).Observe(time.Since(start).Seconds())
		if err == nil {
			return nil
		}
		d.m.attemptsFail.WithLabelValues(c.Name()).Inc()
		var p permanent
		if errors.As(err, &p) {
			return err
		}
		sleep := wait - time.Duration(rand.Int64N(int64(wait)/2+1))
		if time.Until(deadline) < sleep {
			return errors.Join(err, errors.New("giving up: retry deadline reached"))
		}
		d.log.Warn("alert notification attempt failed; retrying", "channel", c.Name(), "attempt", attempt, "in", sleep.Round(time.Millisecond), "err", err)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, d.opts.MaxBackoff)
	}
}
