// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package export pushes the agent's samples to external systems: Prometheus
// remote write, InfluxDB, Elasticsearch and any HTTP endpoint. Each
// exporter is one subscriber of the agent's sample stream and reads every
// series /metrics serves through agent.Points: the points the store reads
// too, built once a tick and shared, so an exporter runs no gather of its
// own.
//
// Each exporter has two goroutines. The intake takes each sample as it is
// published, turns its series into compact points and appends them to the
// exporter's bounded queue; it never waits on the network, so it never
// delays a tick, and a full queue drops its oldest samples (counted). The
// sender peeks a batch at the head of the queue (batch_size samples, or
// fewer once the oldest has waited flush_interval), sends it with a
// deadline (timeout), and removes it only once it is delivered: a
// retryable failure (network error, 5xx, 429) is retried with exponential
// backoff and jitter, oldest data first, so an outage loses nothing the
// queue can hold and every series arrives in timestamp order. Other 4xx
// answers are not retried: the batch is counted as failed and the
// server's message logged. Exporters share nothing, so a slow one delays
// no other.
package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
)

// Backoff between retries: from minBackoff, doubling to maxBackoff, each
// delay drawn at random from its upper half (jitter), so that many hosts
// coming back after a receiver's outage do not retry in step.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// maxRetryAfter bounds what a server's Retry-After may ask for.
	maxRetryAfter = 5 * time.Minute
)

// sender delivers one batch in one attempt. It returns what it put on the
// wire and, on failure, a *sendError when it knows whether a retry may
// help; any other error is retried.
type sender interface {
	send(ctx context.Context, b batch) (sent, error)
	// wantsDocs says the sender sends each tick's snapshot (Custom),
	// not its series.
	wantsDocs() bool
	close()
}

// sent is what one attempt put on the wire.
type sent struct {
	bytes int
	// skipped counts the batch's samples the receiver's format cannot
	// carry (NaN in InfluxDB), left out of the request: failed, not sent.
	skipped int
}

// sendError is a failed attempt, classified.
type sendError struct {
	retryable bool
	// after is what the server's Retry-After asked for.
	after  time.Duration
	status int
	msg    string
}

func (e *sendError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("HTTP %d: %s", e.status, e.msg)
	}
	return e.msg
}

// Exporter is one [[cleanroom.monitoring.exporters]] at work.
type Exporter struct {
	cfg config.Exporter
	log *slog.Logger
	q   backlog
	s   sender
	// queueDir is the directory of the exporter's queue on disk; "" keeps
	// it in memory.
	queueDir string
	// ptsBuf is the intake's, see points.
	ptsBuf []point
	// shared are the intake's series, which the queue on disk reads back
	// as its own; nil with the queue in memory.
	shared *seriesTable
	labels []label // the exporter's own labels, sorted by name

	sent, failed, retried, superseded, bytes atomic.Uint64
	lastSuccess                              atomic.Int64 // unix nanoseconds

	sub    *agent.Subscription
	cancel context.CancelFunc
	// intake and sender are the two goroutines; draining is closed once
	// the intake has queued its last sample at a stop, when the sender
	// sends what is left without waiting for flush_interval.
	intakeWG, senderWG sync.WaitGroup
	draining           chan struct{}
}

// Options are what every exporter of a Set shares.
type Options struct {
	Logger *slog.Logger
	// Hostname is the instance label's default; "" uses os.Hostname.
	Hostname string
	// QueueDir is where exporters without a queue_path keep their queue
	// on disk, each in a directory named after it (queueDirName); ""
	// keeps their queues in memory.
	QueueDir string
}

// newExporter builds the exporter of c; it sends nothing until run.
func newExporter(c config.Exporter, o Options) (*Exporter, error) {
	e := &Exporter{
		cfg: c,
		log: o.Logger.With("exporter", c.Name, "exporter_type", c.ExporterType),
	}
	switch {
	case c.QueuePath != "":
		e.queueDir = c.QueuePath
	case o.QueueDir != "":
		e.queueDir = filepath.Join(o.QueueDir, queueDirName(c.Name))
	}
	e.labels = exporterLabels(c, o.Hostname)
	hc := newHTTPClient(c)
	var err error
	switch c.ExporterType {
	case config.ExporterPrometheus:
		e.s, err = newRemoteWrite(c, hc, e)
	case config.ExporterInfluxDB:
		e.s, err = newInflux(c, hc, e)
	case config.ExporterCustom:
		e.s = newCustom(c, hc, e)
	case config.ExporterElasticsearch:
		e.s, err = newElastic(c, hc, e)
	default:
		err = fmt.Errorf("exporter_type %q is not supported by this version of crmon", c.ExporterType)
	}
	if err != nil {
		// url.Parse's errors and the clients' quote the endpoint.
		return nil, fmt.Errorf("exporter %q: %s", c.Name, errText(err, c.Endpoint))
	}
	return e, nil
}

// exporterLabels are job="crmon" and instance=the host's name, then the
// config's labels, which may replace them.
func exporterLabels(c config.Exporter, host string) []label {
	if host == "" {
		host, _ = os.Hostname()
	}
	m := map[string]string{"job": "crmon", "instance": host}
	for k, v := range c.Labels {
		m[k] = v
	}
	ls := make([]label, 0, len(m))
	for k, v := range m {
		if v != "" {
			ls = append(ls, label{k, v})
		}
	}
	slices.SortFunc(ls, func(a, b label) int { return cmpString(a.name, b.name) })
	return ls
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// intake queues every sample of sub until it ends.
func (e *Exporter) intake(a *agent.Agent, sub *agent.Subscription) {
	in := newInterner(e.labels)
	in.shared = e.shared
	for s := range sub.C() {
		t := &tick{t: s.Time}
		if e.s.wantsDocs() {
			doc, err := snapshotJSON(s)
			if err != nil {
				e.log.Error("encoding the snapshot", "err", err)
				continue
			}
			t.doc = doc
		} else {
			src, err := a.Points(s)
			if errors.Is(err, agent.ErrSuperseded) {
				// Read a whole interval late: the series are gone.
				e.superseded.Add(uint64(in.last()))
				e.log.Warn("a sample's series were replaced by the next tick's before this exporter read them; the exporter's intake is starved of CPU")
				continue
			}
			if err != nil && len(src) == 0 {
				e.log.Error("reading the series", "err", err)
				continue
			}
			t.pts = e.points(in, src)
		}
		if n := e.q.push(t, time.Now()); n > 0 {
			e.log.Debug("queue full: dropped the oldest samples", "samples", n, "queue_size", e.cfg.QueueSize)
		}
	}
}

// points are the tick's points. The queue on disk keeps none of them once
// it has written them, so their slice is the intake's, reused from tick to
// tick; the memory queue keeps each tick's.
func (e *Exporter) points(in *interner, src []collect.Point) []point {
	if _, ok := e.q.(*diskQueue); !ok {
		return in.points(src)
	}
	e.ptsBuf = in.pointsInto(e.ptsBuf, src)
	return e.ptsBuf
}

// deliver sends the queue's batches until ctx ends.
func (e *Exporter) deliver(ctx context.Context) {
	var (
		retries int
		delay   time.Duration
		down    time.Time // first failure of the current run of failures
	)
	size, whole := e.batchShape()
	// replay is the end of the batch the last run was sending when it
	// was killed: it is sent first, as it was, at once.
	replay := e.q.replayEnd()
	for ctx.Err() == nil && (replay > 0 || e.waitBatch(ctx, size)) {
		var b batch
		if head := e.q.headPos(); replay > head {
			b = e.q.peek(int(replay-head), false)
		} else {
			replay = 0
			b = e.q.peek(size, whole)
		}
		if b.samples() == 0 {
			continue
		}
		e.q.sending(b.lo, b.hi)
		rctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout.Std())
		r, err := e.s.send(rctx, b)
		cancel()
		e.bytes.Add(uint64(r.bytes))
		if err == nil {
			e.q.commit(b.hi)
			replay = 0
			e.sent.Add(uint64(b.samples() - r.skipped))
			e.failed.Add(uint64(r.skipped))
			e.lastSuccess.Store(time.Now().UnixNano())
			if retries > 0 {
				e.log.Info("delivering again", "retries", retries, "down_for", time.Since(down).Round(time.Millisecond), "queued", e.q.len())
			}
			retries, delay = 0, 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var se *sendError
		retryable := !errors.As(err, &se) || se.retryable
		if replay > 0 && se != nil && se.status == http.StatusBadRequest {
			// The receiver already holds the batch (Prometheus: "out of
			// order sample"), delivered before the restart; it was counted
			// as sent then.
			e.q.commit(b.hi)
			replay = 0
			e.log.Info("the receiver refused the batch being sent when the agent last ended, which it had received then; going on with the next", "err", err, "samples", b.samples())
			continue
		}
		if retryable && (e.cfg.MaxRetries == 0 || retries < e.cfg.MaxRetries) {
			if retries == 0 {
				down = time.Now()
			}
			retries++
			e.retried.Add(uint64(b.samples()))
			delay = nextDelay(delay)
			wait := delay
			if se != nil && se.after > 0 {
				wait = max(wait, min(se.after, maxRetryAfter))
			}
			e.log.Warn("send failed; retrying", "err", err, "retry", retries, "in", wait.Round(time.Millisecond), "queued", e.q.len())
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		e.q.commit(b.hi)
		e.failed.Add(uint64(b.samples()))
		if retryable {
			e.log.Error("send failed; giving up the batch after max_retries", "err", err, "retries", retries, "samples", b.samples())
		} else {
			e.log.Error("the receiver refused the batch; not retrying", "err", err, "samples", b.samples())
		}
		retries, delay = 0, 0
	}
}

// batchShape is how many samples a batch carries at most, and whether it
// carries whole ticks, as the sender wants them.
func (e *Exporter) batchShape() (size int, whole bool) {
	size = e.cfg.BatchSize
	if l, ok := e.s.(interface{ maxBatch() int }); ok && l.maxBatch() > 0 {
		size = min(size, l.maxBatch())
	}
	w, ok := e.s.(interface{ wholeTicks() bool })
	return size, ok && w.wholeTicks()
}

// nextDelay doubles the backoff from minBackoff up to maxBackoff and draws
// the wait from its upper half.
func nextDelay(prev time.Duration) time.Duration {
	d := min(max(2*prev, minBackoff), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitBatch waits until a batch is due: batch_size samples queued, or the
// oldest queued for flush_interval. It returns false when ctx ends.
func (e *Exporter) waitBatch(ctx context.Context, size int) bool {
	flush := e.cfg.FlushInterval.Std()
	for {
		if ctx.Err() != nil {
			return false
		}
		select {
		case <-e.draining:
			return e.q.len() > 0
		default:
		}
		var timer <-chan time.Time
		if n := e.q.len(); n >= size {
			return true
		} else if oldest, ok := e.q.oldest(); ok {
			wait := flush - time.Since(oldest)
			if wait <= 0 {
				return true
			}
			t := time.NewTimer(wait)
			timer = t.C
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return false
		case <-e.draining:
		case <-e.q.readyC():
		case <-timer:
		}
	}
}

// Set is every configured exporter at work.
type Set struct {
	a *agent.Agent
	o Options

	mu        sync.Mutex // guards exporters
	exporters []*Exporter

	descSent, descFailed, descDropped, descRetried *prometheus.Desc
	descQueue, descCapacity, descLast, descBytes   *prometheus.Desc
	descQueueBytes                                 *prometheus.Desc
}

// subscriberBuffer is each exporter's subscription buffer: the intake
// only converts and queues, so a few samples are plenty.
const subscriberBuffer = 4

// Start starts the exporters of cs on a's samples. Close stops them.
func Start(a *agent.Agent, cs []config.Exporter, o Options) (*Set, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := newSet()
	s.a, s.o = a, o
	if err := s.Reload(cs); err != nil {
		return nil, err
	}
	s.warnOrphanQueues(cs)
	return s, nil
}

// warnOrphanQueues logs the queue directories under QueueDir that no
// configured exporter uses (one renamed or removed, with what it had not
// sent): crmon leaves them alone, since the exporter may come back.
func (s *Set) warnOrphanQueues(cs []config.Exporter) {
	if s.o.QueueDir == "" {
		return
	}
	ents, err := os.ReadDir(s.o.QueueDir)
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, c := range cs {
		used[queueDirName(c.Name)] = true
	}
	for _, e := range ents {
		if !e.IsDir() || used[e.Name()] {
			continue
		}
		dir := filepath.Join(s.o.QueueDir, e.Name())
		segs, _ := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
		var bytes int64
		for _, p := range segs {
			if st, err := os.Stat(p); err == nil {
				bytes += st.Size()
			}
		}
		s.o.Logger.Warn("a queue directory that no configured exporter uses (renamed or removed?); an exporter of that name would send what it holds; delete it if that exporter is gone for good",
			"dir", dir, "bytes", bytes)
	}
}

// Reload applies a new list of exporters: those whose configuration is
// unchanged keep running with their queues; the others stop, sending
// what they had queued for at most their delivery_grace_period (all at
// once), and the new ones start. On error nothing changes.
func (s *Set) Reload(cs []config.Exporter) error {
	s.mu.Lock()
	old := s.exporters
	s.mu.Unlock()
	var next, started []*Exporter
	kept := map[*Exporter]bool{}
	for _, c := range cs {
		i := slices.IndexFunc(old, func(e *Exporter) bool { return reflect.DeepEqual(e.cfg, c) })
		if i >= 0 {
			next = append(next, old[i])
			kept[old[i]] = true
			continue
		}
		e, err := newExporter(c, s.o)
		if err != nil {
			for _, e := range started {
				e.s.close()
			}
			return err
		}
		next = append(next, e)
		started = append(started, e)
	}
	var gone []*Exporter
	for _, e := range old {
		if !kept[e] {
			gone = append(gone, e)
		}
	}
	stopAll(gone)
	for _, e := range started {
		e.start(s.a)
	}
	s.mu.Lock()
	s.exporters = next
	s.mu.Unlock()
	return nil
}

// openQueue opens the exporter's queue: on disk in its directory, with
// what an earlier run left there, or in memory when there is no
// directory or it is not usable (logged).
func (e *Exporter) openQueue() backlog {
	if e.queueDir == "" {
		return newQueue(e.cfg.QueueSize)
	}
	maxBytes := e.cfg.QueueMaxBytes
	if maxBytes <= 0 {
		maxBytes = config.DefaultQueueMaxBytes // a config not from a file
	}
	shared := newSeriesTable()
	q, err := openDiskQueue(queueOptions{
		dir: e.queueDir, max: e.cfg.QueueSize, maxBytes: maxBytes,
		labels: e.labels, log: e.log, shared: shared,
	})
	if err != nil {
		e.log.Error("the exporter's queue cannot be kept on disk; it is kept in memory, and a restart during an outage loses it (set queue_path to a writable directory)", "err", err)
		return newQueue(e.cfg.QueueSize)
	}
	e.shared = shared
	if n := q.len(); n > 0 {
		e.log.Info("sending what the exporter's queue on disk kept from the last run", "samples", n, "dir", e.queueDir)
	}
	return q
}

// start runs the exporter's intake and sender.
func (e *Exporter) start(a *agent.Agent) {
	e.q = e.openQueue()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.draining = make(chan struct{})
	e.sub = a.Subscribe("export/"+e.cfg.Name, subscriberBuffer)
	e.intakeWG.Add(1)
	e.senderWG.Add(1)
	go func() { defer e.intakeWG.Done(); e.intake(a, e.sub) }()
	go func() { defer e.senderWG.Done(); e.deliver(ctx) }()
}

// stop ends the exporter: its intake queues what its subscription still
// holds, then its sender sends what is queued, batch after batch without
// waiting for flush_interval, until the queue is empty or
// delivery_grace_period has passed (a request or a retry's wait in flight
// then is abandoned). What is left is counted as dropped and logged.
func (e *Exporter) stop() {
	e.sub.Close()
	e.intakeWG.Wait()
	grace := e.cfg.DeliveryGracePeriod.Std()
	start := time.Now()
	if grace <= 0 {
		e.cancel()
	} else {
		t := time.AfterFunc(grace, e.cancel)
		defer t.Stop()
	}
	close(e.draining)
	e.senderWG.Wait()
	e.cancel()
	if n, kept := e.q.close(); n > 0 && kept {
		e.log.Warn("exporter stopped with samples it could not send; its queue on disk keeps them for the next start", "samples", n, "dir", e.queueDir, "took", time.Since(start).Round(time.Millisecond))
	} else if n > 0 {
		e.log.Warn("exporter stopped with samples it could not send; they are dropped", "samples", n, "delivery_grace_period", e.cfg.DeliveryGracePeriod, "took", time.Since(start).Round(time.Millisecond))
	} else if time.Since(start) > time.Second {
		e.log.Info("exporter sent what it had queued before stopping", "took", time.Since(start).Round(time.Millisecond))
	}
	e.s.close()
}

// stopAll stops es at the same time, so that a stop waits for the longest
// grace period, not their sum.
func stopAll(es []*Exporter) {
	var wg sync.WaitGroup
	for _, e := range es {
		wg.Go(e.stop)
	}
	wg.Wait()
}

func newSet() *Set {
	l := []string{"exporter", "exporter_type"}
	return &Set{
		descSent:       prometheus.NewDesc("crmon_exporter_samples_sent_total", "Samples an exporter delivered.", l, nil),
		descFailed:     prometheus.NewDesc("crmon_exporter_samples_failed_total", "Samples an exporter gave up: refused by the receiver (a 4xx other than 429), or still failing after max_retries.", l, nil),
		descDropped:    prometheus.NewDesc("crmon_exporter_samples_dropped_total", "Samples an exporter lost before sending: its queue was full (queue_size or queue_max_bytes: the oldest go), a tick could not be written to its queue on disk or read back from it, or its intake read a tick too late.", l, nil),
		descRetried:    prometheus.NewDesc("crmon_exporter_samples_retried_total", "Samples in requests that failed with a retryable error and were sent again.", l, nil),
		descQueue:      prometheus.NewDesc("crmon_exporter_queue_samples", "Samples waiting in an exporter's queue.", l, nil),
		descCapacity:   prometheus.NewDesc("crmon_exporter_queue_capacity_samples", "The exporter's queue_size.", l, nil),
		descLast:       prometheus.NewDesc("crmon_exporter_last_success_timestamp_seconds", "When an exporter last delivered a batch; 0 before the first.", l, nil),
		descBytes:      prometheus.NewDesc("crmon_exporter_sent_bytes_total", "Request bytes an exporter put on the wire (compressed, as sent), retries included.", l, nil),
		descQueueBytes: prometheus.NewDesc("crmon_exporter_queue_bytes", "Bytes an exporter's queue takes on disk (queue_max_bytes bounds it); 0 for a queue in memory.", l, nil),
	}
}

// Close stops every exporter, each sending what it has queued for at most
// its delivery_grace_period.
func (s *Set) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	es := s.exporters
	s.exporters = nil
	s.mu.Unlock()
	stopAll(es)
}

// Describe is empty: the exporters change on reload.
func (s *Set) Describe(chan<- *prometheus.Desc) {}

// Collect emits every exporter's metrics.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	if s == nil {
		return
	}
	s.mu.Lock()
	es := s.exporters
	s.mu.Unlock()
	for _, e := range es {
		lv := []string{e.cfg.Name, e.cfg.ExporterType}
		c := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
		}
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
		}
		c(s.descSent, e.sent.Load())
		c(s.descFailed, e.failed.Load())
		c(s.descDropped, e.q.droppedTotal()+e.superseded.Load())
		c(s.descRetried, e.retried.Load())
		c(s.descBytes, e.bytes.Load())
		g(s.descQueue, float64(e.q.len()))
		g(s.descCapacity, float64(e.cfg.QueueSize))
		g(s.descLast, float64(e.lastSuccess.Load())/1e9)
		g(s.descQueueBytes, float64(e.q.diskBytes()))
	}
}
