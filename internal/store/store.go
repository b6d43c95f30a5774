// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package store keeps crmon's local history: every series the agent serves
// on /metrics, appended once per tick to an embedded Prometheus TSDB, and
// queried with PromQL.
//
// The store reads the agent's sample stream (agent.Subscribe) and, for each
// sample, the series /metrics served at its tick (agent.Points), so the
// history holds exactly what a scraper would have stored, under the tick's
// timestamp. It never runs readers of its own and never delays a
// tick: when it falls behind, the subscription drops samples and the agent
// counts them.
//
// Failures to write (an unwritable directory, a full disk) are counted in
// crmon_store_append_failures_total and logged at most once a minute;
// collection and /metrics go on. A directory that cannot be opened is
// tried again each minute.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
)

// Options configure a store.
type Options struct {
	// Dir is the TSDB's directory (created if missing).
	Dir string
	// Retention is how long samples are kept (retention_period).
	Retention time.Duration
	// MaxBytes bounds the persisted blocks; the oldest go first. 0 leaves
	// only Retention. The write-ahead log and the head's memory-mapped
	// chunks come on top (at most a few blocks' worth).
	MaxBytes int64
	// BlockDuration, when set, is the time range of every block: the
	// head is cut into blocks of it and they are never merged. Tests set
	// it short. 0 is the store's layout (compact.go): ten-minute head
	// blocks merged into blocks of two hours, then up to a day.
	BlockDuration time.Duration
	Logger        *slog.Logger

	// blockReload is how often the TSDB checks its blocks against the
	// retention and the size bound; 0 is its default, a minute. Tests
	// set it short.
	blockReload time.Duration
	// tsdbLayout leaves the blocks and the write-ahead log's segments
	// at the TSDB's defaults, for benchmarks that compare.
	tsdbLayout bool
}

// The TSDB's head settings (see open).
const headStripes = 1 << 10

// ErrClosed is returned by queries once the store is closed, and while
// its directory has not been opened yet.
var ErrClosed = errors.New("the store is not open")

// Store is the local history.
type Store struct {
	opts Options
	log  *slog.Logger

	mu sync.RWMutex // guards db: queries hold it read, Close and open write
	db *tsdb.DB
	// tsdbReg holds the TSDB's own metrics, read by Collect under
	// crmon_store_* names.
	tsdbReg *pickRegistry

	// Touched by the appending goroutine only. ids holds the series of
	// the last tick by the agent's identity of them, byRef by their
	// reference in the TSDB; live holds them as the last tick appended
	// them, next this tick's.
	ids        map[*collect.Series]*entry
	byRef      map[storage.SeriesRef]*entry
	live, next []*entry
	seen       uint64
	lb         labels.ScratchBuilder
	lastOpen   time.Time
	lastWarn   time.Time

	// retention and maxBytes are Options' (ms and bytes), which a
	// reload may change (SetRetention).
	retention, maxBytes atomic.Int64

	appended, failures, skipped atomic.Uint64
	diskBytes                   atomic.Int64
	lastAppend                  atomic.Int64 // ms of the last committed tick
	tickEvery                   atomic.Int64 // ns between the last two committed ticks

	descSeries, descAppended, descFailures, descSkipped, descBytes *prometheus.Desc
	descOldest, descNewest, descCompactions, descCompactFailed     *prometheus.Desc
	descUp, descRetention, descMaxBytes                            *prometheus.Desc
}

// entry is a series the last tick appended: the agent's identity of it,
// its labels, built once, and its reference in the TSDB.
type entry struct {
	series *collect.Series
	ref    storage.SeriesRef
	lset   labels.Labels
	seen   uint64
}

// New makes a store and tries to open its directory. A directory that
// cannot be opened is logged and tried again from Run, once a minute; New
// fails only on options that can never work.
func New(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no directory")
	}
	if opts.Retention <= 0 {
		return nil, errors.New("store: retention must be more than 0")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		opts:  opts,
		log:   opts.Logger.With("component", "store"),
		ids:   map[*collect.Series]*entry{},
		byRef: map[storage.SeriesRef]*entry{},
		lb:    labels.NewScratchBuilder(16),
		descSeries: prometheus.NewDesc("crmon_store_head_series",
			"Series in the store's in-memory head block.", nil, nil),
		descAppended: prometheus.NewDesc("crmon_store_samples_appended_total",
			"Samples the store committed, staleness markers included.", nil, nil),
		descFailures: prometheus.NewDesc("crmon_store_append_failures_total",
			"Ticks the store could not write (directory not writable or not open, disk full, samples refused); the samples of those ticks are not in the history.", nil, nil),
		descSkipped: prometheus.NewDesc("crmon_store_ticks_skipped_total",
			"Samples the store did not write because the next tick had already started updating before it read them (the store fell behind by a whole interval).", nil, nil),
		descBytes: prometheus.NewDesc("crmon_store_bytes",
			"Bytes the store holds on disk: blocks, write-ahead log and head chunks.", nil, nil),
		descOldest: prometheus.NewDesc("crmon_store_oldest_timestamp_seconds",
			"Time of the oldest sample the store holds.", nil, nil),
		descNewest: prometheus.NewDesc("crmon_store_newest_timestamp_seconds",
			"Time of the newest tick the store committed.", nil, nil),
		descCompactions: prometheus.NewDesc("crmon_store_compactions_total",
			"Compactions of the store's blocks (the head cut into a block, blocks merged).", nil, nil),
		descCompactFailed: prometheus.NewDesc("crmon_store_compactions_failed_total",
			"Compactions of the store's blocks that failed.", nil, nil),
		descUp: prometheus.NewDesc("crmon_store_up",
			"Whether the store's directory is open (1) or not (0: see the log; it is tried again each minute).", nil, nil),
		descRetention: prometheus.NewDesc("crmon_store_retention_seconds",
			"How long the store keeps samples (retention_period).", nil, nil),
		descMaxBytes: prometheus.NewDesc("crmon_store_max_bytes",
			"The store's size bound on disk (max_bytes); 0 for none.", nil, nil),
	}
	s.retention.Store(opts.Retention.Milliseconds())
	s.maxBytes.Store(opts.MaxBytes)
	if err := s.open(); err != nil {
		s.log.Error("store not open; collection goes on without history, trying again each minute", "dir", opts.Dir, "err", err)
	}
	return s, nil
}

// open opens the TSDB unless it is open.
func (s *Store) open() error {
	s.mu.RLock()
	open := s.db != nil
	s.mu.RUnlock()
	if open {
		return nil
	}
	s.lastOpen = time.Now()
	if err := os.MkdirAll(s.opts.Dir, 0o750); err != nil {
		return err
	}
	o := tsdb.DefaultOptions()
	o.RetentionDuration = s.retention.Load()
	o.MaxBytes = s.maxBytes.Load()
	// The write-ahead log holds the head's samples, not yet
	// chunk-encoded: snappy makes it 5.7 bytes a sample instead of 11,
	// measured on a host with 50 idle containers (BenchmarkDiskWAL).
	// zstd gives 3.6, but the TSDB builds its encoder with the library's
	// defaults, which cost the agent 33 MiB more RSS, side by side.
	o.WALCompression = compression.Snappy
	// Blocks of up to a tenth of the retention, as Prometheus does, so
	// that retention and max_bytes delete in small steps.
	o.MaxBlockDuration = max(tsdb.DefaultBlockDuration, min(o.RetentionDuration/10, 31*24*time.Hour.Milliseconds()))
	switch {
	case s.opts.BlockDuration > 0:
		o.MinBlockDuration = s.opts.BlockDuration.Milliseconds()
		o.MaxBlockDuration = o.MinBlockDuration
	case !s.opts.tsdbLayout:
		o.MinBlockDuration = headBlock.Milliseconds()
		o.WALSegmentSize = walSegmentSize
		o.NewCompactorFunc = newCompactor(blockRanges(headBlock, time.Duration(o.MaxBlockDuration)*time.Millisecond))
	}
	// The head's series map is striped for many appenders; the store
	// has one. The default 16 384 stripes held 4.8 MB of the agent's
	// heap for 2 231 series (a heap profile at 50 containers).
	o.StripeSize = headStripes
	// The head's chunks are written to chunks_head/ through a buffer of
	// 4 MiB by default, for a server's write rate; the store writes a few
	// kilobytes a second.
	o.HeadChunksWriteBufferSize = chunks.MinWriteBufferSize
	// Series whose last sample is a staleness marker (gone containers)
	// leave the head at its next cut, within 20 minutes with the store's
	// layout. The TSDB's stale-series compaction (StaleSeriesCompaction-
	// Threshold) would evict them sooner, but into blocks of their own
	// that no merge may join to the others (the TSDB keeps them apart to
	// replay its log right): on a host whose containers came and went it
	// left four blocks where one was due, and their indexes.
	if s.opts.blockReload > 0 {
		o.BlockReloadInterval = s.opts.blockReload
	}
	reg := newPickRegistry("prometheus_tsdb_compactions_total", "prometheus_tsdb_compactions_failed_total", "prometheus_tsdb_head_chunks")
	db, err := tsdb.Open(s.opts.Dir, s.log, reg, o, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.db, s.tsdbReg = db, reg
	s.mu.Unlock()
	s.updateSize()
	return nil
}

// SetRetention changes how long the store keeps samples and its size
// bound (retention_period and max_bytes, on a reload). The TSDB applies
// them when it next checks its blocks, within a minute. The blocks' time
// range, chosen from the retention at open, stays until the next start.
func (s *Store) SetRetention(retention time.Duration, maxBytes int64) error {
	if retention <= 0 {
		return errors.New("store: retention must be more than 0")
	}
	if maxBytes < 0 {
		return errors.New("store: max_bytes must be 0 or more")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		err := s.db.ApplyConfig(&promconfig.Config{StorageConfig: promconfig.StorageConfig{TSDBConfig: &promconfig.TSDBConfig{
			Retention: &promconfig.TSDBRetentionConfig{Time: model.Duration(retention), Size: units.Base2Bytes(maxBytes)},
		}}})
		if err != nil {
			return err
		}
	}
	// Closed, open() reads them.
	s.retention.Store(retention.Milliseconds())
	s.maxBytes.Store(maxBytes)
	return nil
}

// Close closes the TSDB; the head stays in the write-ahead log for the
// next start.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// Run appends every sample sub delivers until it is closed.
func (s *Store) Run(a *agent.Agent, sub *agent.Subscription) {
	for smp := range sub.C() {
		s.Append(a, smp)
	}
}

// Append writes one sample: every series /metrics served at its tick
// (agent.Points). It is Run's body, exported for tests and benchmarks
// that drive the agent's ticks themselves.
func (s *Store) Append(a *agent.Agent, smp *agent.Sample) {
	// Read the series first: they are the tick's only until the next one.
	pts, err := a.Points(smp)
	if errors.Is(err, agent.ErrSuperseded) {
		s.skipped.Add(1)
		return
	}
	if err != nil && len(pts) == 0 {
		s.fail("gathering the series for the store", err)
		return
	}
	// A gather that failed in part gives what it could, as a scrape does.
	if err := s.ensureOpen(); err != nil {
		s.fail("store not open", err)
		return
	}
	if err := s.appendPoints(pts, smp.Time.UnixMilli()); err != nil {
		if errors.Is(err, errCommit) {
			s.closeAfterLogError()
		}
		s.fail("appending to the store", err)
		return
	}
	s.updateSize()
}

// errCommit marks a tick the write-ahead log did not take (a full disk).
var errCommit = errors.New("not committed")

// closeAfterLogError closes the TSDB after its write-ahead log failed to
// take a tick. The log may then hold a torn record (the first pages of a
// record larger than the rest of its page, the others never written), and
// the TSDB's repair at the next open drops everything from the first
// corrupt record on: every tick the log took after the disk had room
// again would be lost at the next start. Closed, the store is opened
// again within a minute (ensureOpen), its repair cutting the log where the
// tear is before anything is written after it. The series' references are
// the closed head's, forgotten with it.
func (s *Store) closeAfterLogError() {
	s.mu.Lock()
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			s.log.Warn("closing the store after its write-ahead log failed", "err", err)
		}
		s.db = nil
	}
	s.mu.Unlock()
	clear(s.ids)
	clear(s.byRef)
	s.live, s.next = s.live[:0], s.next[:0]
}

// ensureOpen opens the store if it is closed and a minute has passed
// since the last try.
func (s *Store) ensureOpen() error {
	s.mu.RLock()
	open := s.db != nil
	s.mu.RUnlock()
	if open {
		return nil
	}
	if time.Since(s.lastOpen) < time.Minute {
		return ErrClosed
	}
	if err := s.open(); err != nil {
		return err
	}
	s.log.Info("store opened", "dir", s.opts.Dir)
	return nil
}

// fail counts a tick that was not written, and logs it at most once a
// minute.
func (s *Store) fail(msg string, err error) {
	s.failures.Add(1)
	if time.Since(s.lastWarn) < time.Minute {
		return
	}
	s.lastWarn = time.Now()
	s.log.Error(msg+"; collection goes on, this tick's samples are not in the history (logged at most once a minute, counted in crmon_store_append_failures_total)",
		"dir", s.opts.Dir, "failures", s.failures.Load(), "err", err)
}

// appendPoints appends pts at t (ms), and a staleness marker for every
// series of the last tick that is gone, as a scrape does, so that a
// removed container's series end where it went instead of lingering for
// the lookback window.
//
// A series is found by its identity (collect.Series, the same object from
// tick to tick), one map lookup, and appended by its reference in the
// TSDB: no label is compared or hashed on a steady tick, and a series'
// labels are built once in its life.
func (s *Store) appendPoints(pts []collect.Point, t int64) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	app := s.db.Appender(context.Background())
	defer func() {
		if err != nil {
			_ = app.Rollback()
		}
	}()
	s.seen++
	var n, refused uint64
	var firstRefused error
	s.next = s.next[:0]
	for _, p := range pts {
		e := s.ids[p.Series]
		if e == nil {
			e = s.newEntry(p.Series)
		}
		if e.seen == s.seen {
			continue // the same series twice; the first wins, as in a scrape
		}
		e.seen = s.seen
		s.next = append(s.next, e)
		ref, aerr := app.Append(e.ref, e.lset, t, p.Value)
		if aerr != nil {
			// Out of order (the clock went back): this series' sample
			// is refused, the others go on.
			refused++
			if firstRefused == nil {
				firstRefused = fmt.Errorf("%s: %w", e.lset, aerr)
			}
			continue
		}
		if ref != e.ref {
			s.setRef(e, ref)
		}
		n++
	}
	// Every series of the last tick is in live; those this one did not
	// append are gone: a staleness marker, as a scrape writes.
	var stale uint64
	for _, e := range s.live {
		if e.seen == s.seen {
			continue
		}
		if _, aerr := app.Append(e.ref, e.lset, t, math.Float64frombits(value.StaleNaN)); aerr == nil {
			stale++
		}
		s.forget(e)
	}
	s.live, s.next = s.next, s.live
	if err := app.Commit(); err != nil {
		return fmt.Errorf("%w: %w", errCommit, err)
	}
	s.appended.Add(n + stale)
	if prev := s.lastAppend.Swap(t); prev > 0 && t > prev {
		s.tickEvery.Store((time.Duration(t-prev) * time.Millisecond).Nanoseconds())
	}
	if refused > 0 {
		return fmt.Errorf("%d samples refused, first: %w", refused, firstRefused)
	}
	return nil
}

// newEntry adds the entry of a series the store has not appended since
// it last went: its labels are built here, once.
func (s *Store) newEntry(series *collect.Series) *entry {
	s.lb.Reset()
	s.lb.Add(model.MetricNameLabel, series.Name)
	for _, l := range series.Labels {
		s.lb.Add(l.Name, l.Value)
	}
	s.lb.Sort()
	e := &entry{series: series, lset: s.lb.Labels()}
	s.ids[series] = e
	return e
}

// setRef records that e's series has reference ref in the TSDB. Another
// entry that had it is the same series under an identity that went this
// tick (a container's labels rebuilt with the same values): e takes its
// place, and no staleness marker ends the series.
func (s *Store) setRef(e *entry, ref storage.SeriesRef) {
	if o := s.byRef[ref]; o != nil && o != e && o.seen != s.seen {
		o.seen = s.seen
		delete(s.ids, o.series)
	}
	if s.byRef[e.ref] == e {
		delete(s.byRef, e.ref)
	}
	e.ref = ref
	s.byRef[ref] = e
}

// forget drops a series that went.
func (s *Store) forget(e *entry) {
	if s.ids[e.series] == e {
		delete(s.ids, e.series)
	}
	if s.byRef[e.ref] == e {
		delete(s.byRef, e.ref)
	}
}

// updateSize measures the directory: blocks from the TSDB, the write-ahead
// log and head chunks by listing them. A handful of files; run after each
// append, never from Collect.
func (s *Store) updateSize() {
	s.mu.RLock()
	db := s.db
	var n int64
	if db != nil {
		for _, b := range db.Blocks() {
			n += b.Size()
		}
	}
	s.mu.RUnlock()
	if db == nil {
		return
	}
	for _, sub := range []string{"wal", "chunks_head"} {
		n += dirSize(filepath.Join(s.opts.Dir, sub))
	}
	s.diskBytes.Store(n)
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if in, err := d.Info(); err == nil {
			n += in.Size()
		}
		return nil
	})
	return n
}

// Bytes is what the store holds on disk, as of the last append.
func (s *Store) Bytes() int64 { return s.diskBytes.Load() }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Queryable is the store for PromQL and the series API. Its queriers fail
// with ErrClosed while the store is not open.
func (s *Store) Queryable() storage.Queryable { return queryable{s} }

type queryable struct{ s *Store }

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	if q.s.db == nil {
		return nil, ErrClosed
	}
	return q.s.db.Querier(mint, maxt)
}

// Stats are the head's cardinality figures, for /api/v1/status/tsdb.
func (s *Store) Stats(label string, limit int) (*tsdb.Stats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	return s.db.Head().Stats(label, limit), nil
}

// Describe sends nothing: which metrics exist depends on whether the
// directory is open.
func (s *Store) Describe(chan<- *prometheus.Desc) {}

// Collect emits crmon_store_*. It reads counters and the TSDB's in-memory
// state only.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(s.descAppended, float64(s.appended.Load()))
	counter(s.descFailures, float64(s.failures.Load()))
	counter(s.descSkipped, float64(s.skipped.Load()))
	gauge(s.descRetention, float64(s.retention.Load())/1e3)
	gauge(s.descMaxBytes, float64(s.maxBytes.Load()))
	s.mu.RLock()
	db, reg := s.db, s.tsdbReg
	up := 0.0
	var series uint64
	oldest := int64(math.MaxInt64)
	if db != nil {
		up = 1
		h := db.Head()
		series = h.NumSeries()
		if h.NumSeries() > 0 {
			oldest = h.MinTime()
		}
		if bs := db.Blocks(); len(bs) > 0 {
			oldest = min(oldest, bs[0].Meta().MinTime)
		}
	}
	s.mu.RUnlock()
	gauge(s.descUp, up)
	if db == nil {
		return
	}
	gauge(s.descSeries, float64(series))
	gauge(s.descBytes, float64(s.diskBytes.Load()))
	if oldest != math.MaxInt64 {
		gauge(s.descOldest, float64(oldest)/1e3)
	}
	if t := s.lastAppend.Load(); t > 0 {
		gauge(s.descNewest, float64(t)/1e3)
	}
	m := tsdbMetrics(reg, "prometheus_tsdb_compactions_total", "prometheus_tsdb_compactions_failed_total")
	counter(s.descCompactions, m[0])
	counter(s.descCompactFailed, m[1])
}

// headChunks is how many chunks the head holds, from the TSDB's metrics.
func (s *Store) headChunks() int64 {
	s.mu.RLock()
	reg := s.tsdbReg
	s.mu.RUnlock()
	if reg == nil {
		return 0
	}
	return int64(tsdbMetrics(reg, "prometheus_tsdb_head_chunks")[0])
}

// pickRegistry is the registry the TSDB registers its metrics with: it
// keeps the collectors of the few metrics crmon reads and drops the rest.
// Gathering all of the TSDB's (about 90 families) for each tick's
// crmon_store_compactions_total cost the agent 0.5 ms a tick at 1 s, with
// 50 containers (a CPU profile of the agent).
type pickRegistry struct {
	*prometheus.Registry
	names []string
}

func newPickRegistry(names ...string) *pickRegistry {
	return &pickRegistry{Registry: prometheus.NewRegistry(), names: names}
}

// Register keeps c if it describes one of the names.
func (p *pickRegistry) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 8)
	go func() { c.Describe(ch); close(ch) }()
	keep := false
	for d := range ch {
		// A Desc shows its name only in its String: Desc{fqName: "…", …}.
		for _, n := range p.names {
			keep = keep || strings.Contains(d.String(), `fqName: "`+n+`"`)
		}
	}
	if !keep {
		return nil
	}
	return p.Registry.Register(c)
}

// MustRegister registers cs, panicking as prometheus.Registry does.
func (p *pickRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := p.Register(c); err != nil {
			panic(err)
		}
	}
}

// tsdbMetrics reads the TSDB's own metrics by name (summed over labels):
// the TSDB counts compactions and chunks and exports nothing else for it.
func tsdbMetrics(reg prometheus.Gatherer, names ...string) []float64 {
	out := make([]float64, len(names))
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if i := slices.Index(names, mf.GetName()); i >= 0 {
			for _, m := range mf.GetMetric() {
				out[i] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return out
}
