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
// nothing but its own queue. A reload (Reload) keeps the queues of the
// channels it does not change; Close delivers what is queued for a
// bounded time, and counts and logs what it could not.
type Dispatcher struct {
	opts DeliveryOptions
	log  *slog.Logger
	m    *DeliveryMetrics

	mu     sync.RWMutex // guards queues and closed; Notify only reads
	queues []*queue
	closed bool
}

// queue is one channel's queue and the goroutine that empties it.
type queue struct {
	ch Channel
	q  chan Notification
	// ctx ends the attempt under way: cancel aborts the delivery.
	ctx    context.Context
	cancel context.CancelFunc
	// drain, closed, makes the goroutine return once the queue is empty;
	// handOver, closed, makes it return at once, leaving what is queued.
	drain, handOver chan struct{}
	done            chan struct{}
	// aborted is the notification whose delivery was cut short by
	// cancel; read after done.
	aborted *Notification
	// first are the notifications a changed channel's predecessor
	// handed over: delivered before those in q. Set before run starts.
	first []Notification
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
			Help: "Alert notifications by channel and result: sent, failed (every attempt up to the retry deadline failed, or the channel refused it) or dropped (its queue was full, or it was still queued when the grace period ran out at a stop or after its channel was removed).",
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
	d := &Dispatcher{opts: opts, log: opts.Logger, m: m}
	for _, c := range channels {
		d.queues = append(d.queues, d.start(c))
	}
	return d
}

// start makes c's queue and starts its goroutine.
func (d *Dispatcher) start(c Channel) *queue {
	q := d.newQueue(c)
	go d.run(q)
	return q
}

// newQueue makes c's queue; run empties it.
func (d *Dispatcher) newQueue(c Channel) *queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue{
		ch: c, q: make(chan Notification, d.opts.QueueSize), ctx: ctx, cancel: cancel,
		drain: make(chan struct{}), handOver: make(chan struct{}), done: make(chan struct{}),
	}
	d.m.queueLength.WithLabelValues(c.Name()).Set(0)
	for _, r := range []string{"sent", "failed", "dropped"} {
		d.m.notifications.WithLabelValues(c.Name(), r)
	}
	return q
}

// Notify queues n for each of its channels without waiting; a full queue
// drops it, counted and logged.
func (d *Dispatcher) Notify(n Notification) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return
	}
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

// Reload replaces the channels with channels, without losing what is
// queued:
//   - a channel whose name and settings are unchanged (SameChannel) keeps
//     its queue, its goroutine and the delivery under way; the new
//     instance is not used;
//   - a changed channel (same name, other settings: a fixed URL, a new
//     password) hands what is queued, and a delivery it had to cut short,
//     to its successor, which delivers them with the new settings;
//   - a removed channel delivers what is queued for at most grace, in the
//     background; what is left then is counted as dropped and logged.
func (d *Dispatcher) Reload(channels []Channel, grace time.Duration) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	old := make(map[string]*queue, len(d.queues))
	for _, q := range d.queues {
		old[q.ch.Name()] = q
	}
	queues := make([]*queue, 0, len(channels))
	var handed [][2]*queue // old, new
	for _, c := range channels {
		o := old[c.Name()]
		delete(old, c.Name())
		switch {
		case o != nil && SameChannel(o.ch, c):
			queues = append(queues, o)
		case o != nil:
			// The successor takes new notifications at once, and starts
			// once the predecessor has stopped (below, without d.mu:
			// its Send may take until its context's end to return).
			close(o.handOver)
			o.cancel()
			nq := d.newQueue(c)
			handed = append(handed, [2]*queue{o, nq})
			queues = append(queues, nq)
		default:
			queues = append(queues, d.start(c))
		}
	}
	d.queues = queues
	d.mu.Unlock()
	for _, h := range handed {
		<-h[0].done
		d.handOver(h[0], h[1])
		go d.run(h[1])
	}
	for _, q := range old {
		go func() {
			d.finish(q, grace, "its channel was removed by a reload")
			// Its queue is gone; its counters stay, as counters do.
			d.m.queueLength.DeleteLabelValues(q.ch.Name())
		}()
	}
}

// handOver gives what o held, once it has stopped, to its successor n,
// which delivers it first; n has not started. Nothing is lost: n holds
// what o held (at most its queue and the delivery cut short) beside its
// own queue.
func (d *Dispatcher) handOver(o, n *queue) {
	put := func(x Notification) {
		if wants(n.ch, x) {
			n.first = append(n.first, x)
		}
	}
	if o.aborted != nil {
		put(*o.aborted)
	}
	for _, x := range o.first {
		put(x)
	}
	for len(o.q) > 0 {
		put(<-o.q)
	}
	name := n.ch.Name()
	d.m.queueLength.WithLabelValues(name).Set(float64(len(n.first) + len(n.q)))
	if len(n.first) > 0 {
		d.log.Info("alert channel changed by a reload; its queued notifications go out with the new settings", "channel", name, "notifications", len(n.first))
	}
}

// finish lets q deliver what is queued for at most grace, then cuts the
// delivery short; what was not delivered is counted as dropped and logged
// with why.
func (d *Dispatcher) finish(q *queue, grace time.Duration, why string) {
	close(q.drain)
	t := time.NewTimer(grace)
	select {
	case <-q.done:
		t.Stop()
	case <-t.C:
		q.cancel()
		<-q.done
	}
	q.cancel()
	left := len(q.first) + len(q.q)
	if q.aborted != nil {
		left++
	}
	name := q.ch.Name()
	d.m.queueLength.WithLabelValues(name).Set(0)
	if left > 0 {
		d.m.notifications.WithLabelValues(name, "dropped").Add(float64(left))
		d.log.Error("alert notifications not sent: "+why+" and the grace period ran out", "channel", name, "unsent", left, "grace", grace)
	}
}

// Close stops taking notifications and lets every channel deliver what is
// queued for at most grace; then it cuts the deliveries short and returns.
// What was not delivered is counted as dropped and logged per channel.
func (d *Dispatcher) Close(grace time.Duration) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	qs := d.queues
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.finish(q, grace, "the agent stopped")
		}()
	}
	wg.Wait()
}

// wants reports whether channel c takes n: a channel the rule names (or
// any, when it names none); a resend only to Alertmanager.
func wants(c Channel, n Notification) bool {
	if n.Resend && c.Type() != config.ChannelAlertmanager {
		return false
	}
	return len(n.Channels) == 0 || slices.Contains(n.Channels, c.Name())
}

// run delivers q's notifications one by one until its queue is handed
// over, or drained, or its delivery is cut short.
func (d *Dispatcher) run(q *queue) {
	defer close(q.done)
	name := q.ch.Name()
	for {
		n, ok := q.next()
		if !ok {
			return
		}
		d.m.queueLength.WithLabelValues(name).Set(float64(len(q.first) + len(q.q)))
		err := d.deliver(q.ctx, q.ch, n)
		if err != nil && q.ctx.Err() != nil {
			q.aborted = &n
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

// next waits for q's next notification: what a predecessor handed over
// first, then the queue. false says stop: the queue is handed over, or
// drained and empty, or its delivery cut short.
func (q *queue) next() (Notification, bool) {
	select {
	case <-q.handOver:
		return Notification{}, false
	case <-q.ctx.Done():
		return Notification{}, false
	default:
	}
	if len(q.first) > 0 {
		n := q.first[0]
		q.first = q.first[1:]
		return n, true
	}
	select {
	case n := <-q.q:
		return n, true
	default:
	}
	// Empty: wait for the next one, or for the end.
	select {
	case n := <-q.q:
		return n, true
	case <-q.drain:
		return Notification{}, false
	case <-q.handOver:
		return Notification{}, false
	case <-q.ctx.Done():
		return Notification{}, false
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
