// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/crmon-dev/crmon/internal/config"
)

// elastic indexes series in Elasticsearch through the _bulk API
// (go-elasticsearch's BulkIndexer), gzip-compressed. One document per
// sample group: the samples of one tick that share their labels, as
// Metricbeat's Prometheus module groups them,
//
//	{"@timestamp": "…", "labels": {"name": "build", "job": "crmon", …},
//	 "metrics": {"container_cpu_usage_seconds_total": 12.5, …}}
//
// in the index <index>-YYYY.MM.DD (the tick's UTC day, as Beats name
// theirs), whose mapping an index template gives (elasticTemplate).
// Documents have IDs derived from their index, time and labels, so that a
// batch sent again after a partial failure overwrites what was indexed
// instead of duplicating it.
type elastic struct {
	c  *elasticsearch.Client
	tr *authTransport
	e  *Exporter
	// groups are the sample groups (label sets) of the series sent
	// lately; sweep forgets those unused for a while.
	groups map[string]*esGroup
	// batches numbers the batches sent, ticks the ticks encoded.
	batches, ticks, swept uint64
	// What a batch is built in, reused from one to the next.
	docs    []esDoc
	body    []byte
	ends    []int
	srcs    [][]byte
	id      []byte
	ids     []string
	ts      []byte
	readers []bytes.Reader
	// template is true once the index template is in place, or refused
	// for good (logged).
	template bool
	// bi is the bulk indexer, made at the first batch (see indexer),
	// with a buffer of flushBytes; st what its callbacks report.
	bi         esutil.BulkIndexer
	flushBytes int
	biIndex    string
	st         esBatch
}

// elasticTemplate is the mapping of crmon's indices: labels are
// keywords, metrics doubles, @timestamp a date.
const elasticTemplate = `{
  "index_patterns": [%q],
  "priority": 200,
  "template": {
    "mappings": {
      "dynamic_templates": [
        {"labels": {"path_match": "labels.*", "mapping": {"type": "keyword"}}},
        {"metrics": {"path_match": "metrics.*", "mapping": {"type": "double"}}}
      ],
      "properties": {
        "@timestamp": {"type": "date"},
        "labels": {"type": "object"},
        "metrics": {"type": "object"}
      }
    }
  },
  "_meta": {"description": "crmon's samples: one document per tick and label set"}
}`

func newElastic(c config.Exporter, hc *http.Client, e *Exporter) (*elastic, error) {
	tr := hc.Transport.(*authTransport)
	// A token is an Elasticsearch API key (the base64 of id:key).
	tr.tokenScheme = "ApiKey"
	tr.gzip = true
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: []string{c.Endpoint},
		Transport: tr,
		// The transport compresses (authTransport.compress).
		CompressRequestBody: false,
		// deliver retries, with the same backoff as every exporter.
		DisableRetry: true,
	})
	if err != nil {
		return nil, err
	}
	return &elastic{c: es, tr: tr, e: e, groups: map[string]*esGroup{}}, nil
}

func (el *elastic) wantsDocs() bool { return false }
func (el *elastic) close()          { el.closeIndexer() }

// esGroup is one sample group: a label set, its documents' "labels"
// object rendered once, and a hash of it for their IDs.
type esGroup struct {
	labels []byte
	hash   [16]byte
	// tick and doc place the group's document in the batch being
	// encoded: doc is its index in docs when tick is the tick's number.
	tick uint64
	doc  int
	// used is the last batch that carried the group; gone is set when
	// sweep forgot it, so that its series find their group again.
	used uint64
	gone bool
}

// esDoc is one document of a batch: a group's samples at one tick.
type esDoc struct {
	g       *esGroup
	t       time.Time
	index   string
	metrics []point
}

// wholeTicks makes every batch end at a tick's end, so that a sample
// group, one document, never spans two batches: the second would replace
// the first.
func (el *elastic) wholeTicks() bool { return true }

func (el *elastic) send(ctx context.Context, b batch) (sent, error) {
	before := el.tr.sentTotal()
	if err := el.ensureTemplate(ctx); err != nil {
		return sent{bytes: int(el.tr.sentTotal() - before)}, err
	}
	docs, skipped := el.group(b)
	body := el.encode(docs)
	// The indexer's requests go to the first document's index
	// (POST /<index>/_bulk), whose action lines then need no _index.
	index := ""
	if len(docs) > 0 {
		index = docs[0].index
	}
	ids := el.docIDs(docs)
	need := 0
	for i := range docs {
		need += len(body[i]) + 1 + esMetaLen(ids[i], docs[i].index, index)
	}
	bi, err := el.indexer(need, index)
	if err != nil {
		return sent{}, err
	}
	st := &el.st
	st.reset(ctx)
	// One callback for every item, and readers reused from batch to
	// batch: two allocations a document fewer. A refused item is found by
	// its ID, which is rare enough to search for.
	onFailure := func(_ context.Context, it esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
		if err != nil {
			return // the request failed: OnError has it
		}
		samples := 0
		if i := slices.Index(ids, it.DocumentID); i >= 0 {
			samples = len(docs[i].metrics)
		}
		st.itemErr(it.DocumentID, samples, r.Status, r.Error.Type+": "+r.Error.Reason)
	}
	if cap(el.readers) < len(docs) {
		el.readers = make([]bytes.Reader, len(docs))
	}
	readers := el.readers[:len(docs)]
	for i := range docs {
		readers[i].Reset(body[i])
		ix := docs[i].index
		if ix == index {
			ix = ""
		}
		err = bi.Add(ctx, esutil.BulkIndexerItem{
			Index:      ix,
			Action:     "index",
			DocumentID: ids[i],
			Body:       &readers[i],
			OnFailure:  onFailure,
		})
		if err != nil {
			break
		}
	}
	if err == nil {
		err = bi.Flush(ctx)
	}
	if err != nil {
		// The deadline passed (Add and Flush fail only then): the
		// request in flight has the same deadline, so the worker is
		// about to be done; wait for it before anything else uses the
		// transport, and start afresh at the next batch.
		el.closeIndexer()
		return sent{bytes: int(el.tr.sentTotal() - before)}, &sendError{retryable: true, msg: err.Error()}
	}
	r := sent{bytes: int(el.tr.sentTotal() - before), skipped: skipped}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.flushErr != nil {
		return r, el.requestError(st.flushErr)
	}
	if st.retryable > 0 {
		// Sent again whole: the documents already indexed are
		// overwritten with themselves.
		return r, &sendError{retryable: true, msg: fmt.Sprintf("%d of %d documents refused for now: %s", st.retryable, len(docs), message([]byte(st.first)))}
	}
	if st.refused > 0 {
		el.e.log.Error("Elasticsearch refused documents; not retrying them", "samples", st.refused, "first", message([]byte(st.first)))
		r.skipped += st.refused
	}
	return r, nil
}

// esBatch is what the indexer's callbacks learn of the batch being sent.
// They run on the indexer's worker goroutine; send reads it once Flush
// has returned.
type esBatch struct {
	mu sync.Mutex
	// ctx is the batch's: its deadline bounds the _bulk requests.
	ctx       context.Context
	retryable int    // documents refused with a retryable status
	refused   int    // samples of documents refused for good
	first     string // the first item error, for the log
	flushErr  error
}

func (st *esBatch) reset(ctx context.Context) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ctx, st.retryable, st.refused, st.first, st.flushErr = ctx, 0, 0, "", nil
}

func (st *esBatch) itemErr(id string, samples, status int, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.first == "" {
		st.first = fmt.Sprintf("%s (document %s, status %d)", reason, id, status)
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		st.retryable++
	} else {
		st.refused += samples
	}
}

// esMetaLen is the length of the action line the indexer writes for a
// document: {"index":{"_id":"…"}} and a newline, with ,"_index":"…" when
// its index is not the request's (IDs are hex and index names lower-case
// ASCII, which JSON quotes as they are).
func esMetaLen(id, index, requestIndex string) int {
	n := len(`{"index":{"_id":""}}`+"\n") + len(id)
	if index != requestIndex {
		n += len(`,"_index":""`) + len(index)
	}
	return n
}

// esQueue is how many documents wait for the indexer's worker: with the
// default, one, the exporter and the worker handed over each document in
// turn. At host + 50 containers 256 took BenchmarkExporters/Elasticsearch
// from 0.087 % to 0.081 % of a core (medians of three; 4096 did no
// better), for a channel of 57 kB (224 bytes an item).
const esQueue = 256

// Bounds of the indexer's FlushBytes, its buffer's size.
const (
	esMinFlushBytes = 256 << 10
	esMaxFlushBytes = 16 << 20
)

// indexer is the exporter's BulkIndexer, kept from batch to batch so that
// its buffer and worker are reused: one made per batch cost a 1 MiB
// buffer, a goroutine and a ticker each time (see BenchmarkExporters).
// A batch of need bytes is sent in one request: when need outgrows the
// buffer (more containers), the indexer is made again with a quarter to
// spare, up to esMaxFlushBytes, beyond which a batch takes several
// requests. The buffer must keep 512 bytes free after each document
// (bytes.Buffer.ReadFrom), or it is reallocated and copied.
//
// Its requests go to index, the day's: a new day makes a new indexer.
// Naming the index once a request rather than in every action line saves
// a fifth of the indexer's work on the action lines (it quotes every
// string of them with strconv.AppendQuote) and 17 bytes a document.
func (el *elastic) indexer(need int, index string) (esutil.BulkIndexer, error) {
	need = min(need+need/4+512, esMaxFlushBytes)
	if el.bi != nil && need <= el.flushBytes && index == el.biIndex {
		return el.bi, nil
	}
	el.closeIndexer()
	flushBytes := max(need, esMinFlushBytes)
	st := &el.st
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     el.c,
		Index:      index,
		NumWorkers: 1,
		// Room for many documents between the exporter and the worker,
		// rather than one at a time (the default): fewer handoffs.
		QueueSizeMultiplier: esQueue,
		FlushBytes:          flushBytes,
		// The batch is the exporter's: send flushes it. The timer is
		// the indexer's, and idle.
		FlushInterval: 24 * time.Hour,
		// The worker sends with a context of its own, without a
		// deadline: give its requests the batch's.
		OnFlushStart: func(context.Context) context.Context {
			st.mu.Lock()
			defer st.mu.Unlock()
			return st.ctx
		},
		OnError: func(_ context.Context, err error) {
			st.mu.Lock()
			defer st.mu.Unlock()
			if st.flushErr == nil {
				st.flushErr = err
			}
		},
	})
	if err != nil {
		return nil, err
	}
	el.bi, el.flushBytes, el.biIndex = bi, flushBytes, index
	return bi, nil
}

// closeIndexer stops the indexer's worker, waiting for the request it
// may have in flight (whose deadline is the batch's) for at most a few
// seconds.
func (el *elastic) closeIndexer() {
	if el.bi == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := el.bi.Close(ctx); err != nil {
		el.e.log.Warn("Elasticsearch exporter: the bulk indexer did not stop in time", "err", err)
	}
	el.bi = nil
}

// requestError classifies a failed _bulk request by what the transport
// saw.
func (el *elastic) requestError(err error) error {
	last := el.tr.lastResponse()
	switch {
	case strings.Contains(err.Error(), "not Elasticsearch"):
		el.e.log.Error(fmt.Sprintf("the endpoint does not answer like Elasticsearch (no X-Elastic-Product: Elasticsearch header); it looks like %s; check exporter_type and endpoint", orUnknown(last.server)), "endpoint", redact(el.e.cfg.Endpoint))
		return &sendError{msg: err.Error()}
	case last.err != nil || last.status == 0:
		return &sendError{retryable: true, msg: err.Error()}
	case last.status/100 == 3:
		return redirected(last.status, last.location)
	}
	return classify(last.status, last.retryAfter, []byte(err.Error()))
}

func orUnknown(s string) string {
	if s == "" {
		return "another kind of server"
	}
	return s
}

// ensureTemplate puts crmon's index template in place before the first
// documents, so that their mapping is the documented one. A refusal for
// good (a user without the manage_index_templates privilege) is logged
// once, and documents go on with Elasticsearch's dynamic mapping.
func (el *elastic) ensureTemplate(ctx context.Context) error {
	if el.template {
		return nil
	}
	name := el.e.cfg.Index
	body := fmt.Sprintf(elasticTemplate, name+"-*")
	res, err := el.c.Indices.PutIndexTemplate(name, strings.NewReader(body), el.c.Indices.PutIndexTemplate.WithContext(ctx))
	if err != nil {
		return el.requestError(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 == 3 {
		return redirected(res.StatusCode, res.Header.Get("Location"))
	}
	if !res.IsError() {
		el.template = true
		return nil
	}
	se := classify(res.StatusCode, retryAfter(res.Header.Get("Retry-After")), readAll(res.Body))
	if se.retryable {
		return se
	}
	el.template = true
	el.e.log.Error("Elasticsearch refused crmon's index template; indexing with its dynamic mapping", "template", name, "err", se.Error())
	return nil
}

// group groups b's samples by tick and label set, into el.docs. NaN and
// ±Inf, which JSON cannot carry, are left out and counted.
func (el *elastic) group(b batch) (docs []esDoc, skipped int) {
	el.batches++
	docs = el.docs[:0]
	for _, c := range b.chunks {
		el.ticks++
		index := el.e.cfg.Index + "-" + c.t.UTC().Format("2006.01.02")
		for _, p := range c.pts[c.from:c.to] {
			if isNaNOrInf(p.v) {
				skipped++
				continue
			}
			g := el.groupOf(p.s)
			if g.tick != el.ticks {
				g.tick, g.doc = el.ticks, len(docs)
				if len(docs) < cap(docs) {
					docs = docs[:g.doc+1]
				} else {
					docs = append(docs, esDoc{})
				}
				d := &docs[g.doc]
				d.g, d.t, d.index, d.metrics = g, c.t, index, d.metrics[:0]
			}
			d := &docs[g.doc]
			d.metrics = append(d.metrics, p)
		}
	}
	el.docs = docs
	el.sweep()
	return docs, skipped
}

// groupOf is s's sample group, found or made the first time s is sent.
func (el *elastic) groupOf(s *series) *esGroup {
	if g := s.grp; g != nil && !g.gone {
		g.used = el.batches
		return g
	}
	var key strings.Builder
	for _, l := range s.labels {
		key.WriteString(l.name)
		key.WriteString(sep)
		key.WriteString(l.value)
		key.WriteString(sep)
	}
	g, ok := el.groups[key.String()]
	if !ok {
		m := make(map[string]string, len(s.labels))
		for _, l := range s.labels {
			m[l.name] = l.value
		}
		lj, _ := json.Marshal(m) // sorted keys, escaped as encoding/json does
		g = &esGroup{labels: lj, hash: fnv128(key.String())}
		el.groups[key.String()] = g
	}
	g.used = el.batches
	s.grp = g
	// The metric's name as a JSON key, followed by its colon.
	nj, _ := json.Marshal(s.name)
	s.enc = append(nj, ':')
	return g
}

// sweep forgets, every sweepEvery batches, the groups no batch carried
// since the last sweep (exited containers).
const sweepEvery = 64

func (el *elastic) sweep() {
	if el.batches-el.swept < sweepEvery {
		return
	}
	for k, g := range el.groups {
		if g.used <= el.swept {
			g.gone = true
			delete(el.groups, k)
		}
	}
	el.swept = el.batches
}

// fnv128a is hash/fnv's FNV-128a as a value, whose state can be copied:
// see docIDs. TestFNV128a checks it against hash/fnv.
type fnv128a [2]uint64

func newFNV128a() fnv128a { return fnv128a{0x6c62272e07bb0142, 0x62b821756295c58d} }

func (s *fnv128a) write(data []byte) {
	const primeLower, primeShift = 0x13b, 24
	for _, c := range data {
		s[1] ^= uint64(c)
		s0, s1 := bits.Mul64(primeLower, s[1])
		s0 += s[1]<<primeShift + primeLower*s[0]
		s[1], s[0] = s1, s0
	}
}

func (s *fnv128a) sum(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, s[0])
	return binary.BigEndian.AppendUint64(b, s[1])
}

func fnv128(s string) (h [16]byte) {
	f := fnv.New128a()
	f.Write([]byte(s))
	f.Sum(h[:0])
	return h
}

// docIDs are the documents' IDs, each derived from the document's time
// and labels (its index follows from its time), so that the document sent
// again replaces itself: the hex of the FNV-128a hash of the time in
// nanoseconds (8 bytes, big-endian) and the group's hash. They are cut
// from one string, one allocation a batch rather than one a document.
//
// The documents of a tick share its time, which the hash reads first: its
// state after the time is computed once a tick, and only the group's hash
// is hashed for each document (with hash/fnv's hash.Hash, a third of the
// IDs' CPU was hashing the time again for every document).
func (el *elastic) docIDs(docs []esDoc) []string {
	const n = 2 * 16 // hex digits of an ID
	buf := el.id[:0]
	var tb [8]byte
	var sum [16]byte
	var at fnv128a
	var t time.Time
	for i := range docs {
		d := &docs[i]
		if i == 0 || !d.t.Equal(t) {
			t = d.t
			binary.BigEndian.PutUint64(tb[:], uint64(t.UnixNano()))
			at = newFNV128a()
			at.write(tb[:])
		}
		h := at
		h.write(d.g.hash[:])
		buf = hex.AppendEncode(buf, h.sum(sum[:0]))
	}
	el.id = buf
	all := string(buf)
	ids := el.ids[:0]
	for i := range docs {
		ids = append(ids, all[i*n:(i+1)*n])
	}
	el.ids = ids
	return ids
}

// encode writes each document's source, one after the other in one
// buffer reused from batch to batch, and returns each one's bytes:
//
//	{"@timestamp":"…","labels":{…},"metrics":{"name":value,…}}
//
// Hand-written: with json.Marshal of a struct of maps, encoding was
// 40 % of the exporter's CPU at host + 50 containers (0.45 % of a core
// with the default compression; 0.06 % with this and BestSpeed, see
// BenchmarkExporters/Elasticsearch). Strings are the groups' labels and
// the metric names, each escaped once by encoding/json; the tests decode
// what it writes with encoding/json and the strict _bulk server.
func (el *elastic) encode(docs []esDoc) [][]byte {
	buf := el.body[:0]
	ends := el.ends[:0]
	// The documents of a tick share its time: formatted once a tick.
	var t time.Time
	var ts []byte
	for i := range docs {
		d := &docs[i]
		buf = append(buf, `{"@timestamp":"`...)
		if i == 0 || !d.t.Equal(t) {
			t = d.t
			ts = d.t.UTC().AppendFormat(el.ts[:0], time.RFC3339Nano)
			el.ts = ts
		}
		buf = append(buf, ts...)
		buf = append(buf, `","labels":`...)
		buf = append(buf, d.g.labels...)
		buf = append(buf, `,"metrics":{`...)
		for j, p := range d.metrics {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, p.s.enc...)
			buf = appendJSONFloat(buf, p.v)
		}
		buf = append(buf, "}}"...)
		ends = append(ends, len(buf))
	}
	el.body, el.ends = buf, ends
	out := el.srcs[:0]
	start := 0
	for _, end := range ends {
		out = append(out, buf[start:end:end])
		start = end
	}
	el.srcs = out
	return out
}

// appendJSONFloat writes f as encoding/json does (f is finite).
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
