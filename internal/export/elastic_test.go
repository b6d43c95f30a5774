// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmon-dev/crmon/internal/config"
)

// bulkServer is a strict stand-in for Elasticsearch's _bulk API (no
// Elasticsearch can be installed here): it refuses any request whose
// framing or headers differ from what go-elasticsearch sends, answers
// with the product header, and fails chosen items the way Elasticsearch
// does, in a 200 answer with "errors": true.
type bulkServer struct {
	t        *testing.T
	mu       sync.Mutex
	docs     map[string]map[string]json.RawMessage // index → _id → source
	template string
	// reject429 fails the next n items with 429 once each;
	// poison fails items whose labels have kind=poison with a 400 for good.
	reject429 int
	items429  int
	items400  int
	requests  int
	noProduct bool
}

func (s *bulkServer) fail(w http.ResponseWriter, format string, args ...any) {
	s.t.Errorf("bulk server: "+format, args...)
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

func (s *bulkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if !s.noProduct {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "go-elasticsearch/8.") {
		s.fail(w, "User-Agent %q", ua)
		return
	}
	if meta := r.Header.Get("X-Elastic-Client-Meta"); !strings.HasPrefix(meta, "es=8.") {
		s.fail(w, "X-Elastic-Client-Meta %q", meta)
		return
	}
	if a := r.Header.Get("Authorization"); a != "ApiKey a2V5" {
		s.fail(w, "Authorization %q", a)
		return
	}
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.fail(w, "gzip: %v", err)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		s.fail(w, "reading: %v", err)
		return
	}
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/_index_template/crmon":
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			s.fail(w, "template: %v", err)
			return
		}
		s.template = string(b)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"acknowledged":true}`))
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_bulk"):
		// POST /_bulk, or /<index>/_bulk whose index is the default of
		// action lines without _index.
		index := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/_bulk")
		if r.URL.Path == "/_bulk" {
			index = ""
		} else if index == "" || strings.ContainsAny(index, "/*,") || strings.ToLower(index) != index {
			s.fail(w, "bulk path %q", r.URL.Path)
			return
		}
		// Elasticsearch takes either for _bulk; go-elasticsearch 8
		// sends application/json.
		if ct := r.Header.Get("Content-Type"); ct != "application/json" && ct != "application/x-ndjson" {
			s.fail(w, "Content-Type %q", ct)
			return
		}
		s.bulk(w, b, index)
	default:
		s.fail(w, "%s %s", r.Method, r.URL.Path)
	}
}

func (s *bulkServer) bulk(w http.ResponseWriter, b []byte, index string) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		s.fail(w, "the body must end with a newline")
		return
	}
	type item struct {
		Index  string          `json:"_index"`
		ID     string          `json:"_id"`
		Status int             `json:"status"`
		Result string          `json:"result,omitempty"`
		Error  json.RawMessage `json:"error,omitempty"`
	}
	var items []map[string]item
	errs := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			s.fail(w, "action line %q: %v", sc.Text(), err)
			return
		}
		a, ok := action["index"]
		if a.Index == "" {
			a.Index = index
		}
		if !ok || a.Index == "" || a.ID == "" {
			s.fail(w, "action line %q: want an index action with _id, and _index or a request's index", sc.Text())
			return
		}
		if !sc.Scan() {
			s.fail(w, "an action without a source")
			return
		}
		var src struct {
			Timestamp time.Time          `json:"@timestamp"`
			Labels    map[string]string  `json:"labels"`
			Metrics   map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal(sc.Bytes(), &src); err != nil || src.Timestamp.IsZero() || len(src.Metrics) == 0 {
			s.fail(w, "source line %q: %v", sc.Text(), err)
			return
		}
		if want := "crmon-" + src.Timestamp.UTC().Format("2006.01.02"); a.Index != want {
			s.fail(w, "index %q for a document of %v, want %q", a.Index, src.Timestamp, want)
			return
		}
		it := item{Index: a.Index, ID: a.ID, Status: 201, Result: "created"}
		switch {
		case src.Labels["kind"] == "poison":
			it = item{Index: a.Index, ID: a.ID, Status: 400, Error: json.RawMessage(`{"type":"mapper_parsing_exception","reason":"failed to parse field [metrics.test_step] of type [long]"}`)}
			s.items400++
		case s.reject429 > 0:
			s.reject429--
			s.items429++
			it = item{Index: a.Index, ID: a.ID, Status: 429, Error: json.RawMessage(`{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}`)}
		default:
			if s.docs[a.Index] == nil {
				s.docs[a.Index] = map[string]json.RawMessage{}
			}
			if _, ok := s.docs[a.Index][a.ID]; ok {
				it.Result, it.Status = "updated", 200
			}
			s.docs[a.Index][a.ID] = append(json.RawMessage(nil), sc.Bytes()...)
		}
		errs = errs || it.Error != nil
		items = append(items, map[string]item{"index": it})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errs, "items": items})
}

// TestElasticsearchBulk indexes through the strict _bulk server: the
// index template first, then one document per tick and label set in the
// day's index; items refused with 429 are sent again (the batch whole,
// the IDs making it idempotent), an item refused with 400 is counted as
// failed and logged; every other sample is indexed as served.
//
// With a batch_size smaller than a tick, batches still end at a tick's
// end, so that no document replaces another of the same group.
func TestElasticsearchBulk(t *testing.T) {
	for _, size := range []int{config.DefaultBatchSize, 3} {
		t.Run(fmt.Sprintf("batch_size=%d", size), func(t *testing.T) { testElasticsearchBulk(t, size) })
	}
}

func testElasticsearchBulk(t *testing.T, batchSize int) {
	bs := &bulkServer{t: t, docs: map[string]map[string]json.RawMessage{}, reject429: 3}
	srv := httptest.NewServer(bs)
	defer srv.Close()
	a := newTestAgent(t)
	// A label value that Elasticsearch refuses for the test's sake.
	c := exporterConfig("elastic", config.ExporterElasticsearch, srv.URL)
	c.Index = "crmon"
	c.BatchSize = batchSize
	c.Credentials.Token = "a2V5"
	var logs strings.Builder
	var logMu sync.Mutex
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "es-host", Logger: logTo(&logMu, &logs)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	tickN(t, a, 10)
	waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 10 })
	want := uint64(rec.total())
	waitFor(t, 20*time.Second, "every sample to be indexed or refused", e.counts, func() bool { return e.sent.Load()+e.failed.Load() == want })

	bs.mu.Lock()
	defer bs.mu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !strings.Contains(bs.template, `"index_patterns": ["crmon-*"]`) || !strings.Contains(bs.template, `"labels.*"`) {
		t.Errorf("index template:\n%s", bs.template)
	}
	if bs.items429 != 3 || e.retried.Load() == 0 {
		t.Errorf("429 items %d, %s", bs.items429, e.counts())
	}
	// Every served sample is in a document of its tick and labels.
	type key struct {
		ms     int64
		labels string
	}
	stored := map[key]map[string]float64{}
	for _, docs := range bs.docs {
		for _, raw := range docs {
			var d struct {
				Timestamp time.Time          `json:"@timestamp"`
				Labels    map[string]string  `json:"labels"`
				Metrics   map[string]float64 `json:"metrics"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			stored[key{d.Timestamp.UnixMilli(), labelString(d.Labels)}] = d.Metrics
		}
	}
	found := 0
	for id, ws := range rec.values {
		m := map[string]string{}
		name := ""
		for _, kv := range strings.Split(id, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "__name__" {
				name = v
			} else {
				m[k] = v
			}
		}
		for ms, v := range ws {
			got, ok := stored[key{ms, labelString(m)}][name]
			if !ok {
				t.Errorf("not indexed: %s at %d", id, ms)
				continue
			}
			if got != v {
				t.Errorf("%s at %d: %v, served %v", id, ms, got, v)
			}
			found++
		}
	}
	if uint64(found) != want || e.failed.Load() != 0 {
		t.Errorf("%d of %d samples indexed; %s", found, want, e.counts())
	}
}

// TestElasticsearchRefusals: documents Elasticsearch refuses for good
// (400) are counted as failed and logged once per batch, not retried; a
// server without the product header is named as not Elasticsearch.
func TestElasticsearchRefusals(t *testing.T) {
	bs := &bulkServer{t: t, docs: map[string]map[string]json.RawMessage{}}
	srv := httptest.NewServer(bs)
	defer srv.Close()
	a := newTestAgent(t)
	c := exporterConfig("elastic", config.ExporterElasticsearch, srv.URL)
	c.Index = "crmon"
	// kind=poison on every series: the server refuses them all.
	c.Labels = map[string]string{"kind": "poison"}
	c.Credentials.Token = "a2V5"
	var logs strings.Builder
	var logMu sync.Mutex
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "h", Logger: logTo(&logMu, &logs)})
	defer set.Close()
	e := set.exporters[0]
	tickN(t, a, 2)
	// test_step has its own kind label, which wins: those documents are
	// indexed, every other one is refused.
	waitFor(t, 10*time.Second, "the batch to be refused", e.counts, func() bool { return e.failed.Load() > 0 && e.sent.Load() > 0 })
	if e.retried.Load() != 0 {
		t.Errorf("retried a 400: %s", e.counts())
	}
	logMu.Lock()
	l := logs.String()
	logMu.Unlock()
	if !strings.Contains(l, "Elasticsearch refused documents; not retrying them") || !strings.Contains(l, "mapper_parsing_exception") || !strings.Contains(l, "exporter=elastic") {
		t.Errorf("log:\n%s", l)
	}

	// The same exporter type pointed at a server that is not Elasticsearch.
	bs2 := &bulkServer{t: t, docs: map[string]map[string]json.RawMessage{}, noProduct: true}
	srv2 := httptest.NewServer(bs2)
	defer srv2.Close()
	c.Endpoint, c.Name = srv2.URL, "not-elastic"
	logs.Reset()
	set2 := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "h", Logger: logTo(&logMu, &logs)})
	defer set2.Close()
	tickN(t, a, 1)
	e2 := set2.exporters[0]
	waitFor(t, 10*time.Second, "the batch to fail", e2.counts, func() bool { return e2.failed.Load() > 0 })
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "does not answer like Elasticsearch") || !strings.Contains(logs.String(), "exporter=not-elastic") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// TestElasticsearchJSONFloat: the encoder writes numbers as encoding/json
// does.
func TestElasticsearchJSONFloat(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 12.5, 1e-7, 1.5e-9, 1e20, 1e21, 3.4e38, -2.5e-300, 123456789.125} {
		want, _ := json.Marshal(f)
		if got := appendJSONFloat(nil, f); string(got) != string(want) {
			t.Errorf("%v: %s, want %s", f, got, want)
		}
	}
}

// TestElasticsearchStalledAnswer: a _bulk request whose answer stalls
// after its headers ends at the exporter's timeout (the bulk indexer's
// worker sends with a context of its own, which gets the batch's
// deadline), as a retryable failure, and the request is closed then, not
// left to a worker; the next batch, to a server that answers again, is
// indexed.
func TestElasticsearchStalledAnswer(t *testing.T) {
	bs := &bulkServer{t: t, docs: map[string]map[string]json.RawMessage{}}
	var stall, abandoned atomic.Bool
	stall.Store(true)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") && stall.Load() {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"took":1,`))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				abandoned.Store(true)
			case <-release:
			}
			return
		}
		bs.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handlers
	c := exporterConfig("elastic", config.ExporterElasticsearch, srv.URL)
	c.Index = "crmon"
	c.Credentials.Token = "a2V5"
	c.Timeout = config.Duration(300 * time.Millisecond)
	e, err := newExporter(c, Options{Hostname: "h", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.s.close()
	openTestQueue(t, e)
	fl := newFleet(t, 2)
	in := newFamInterner(e.labels)
	size, whole := e.batchShape()
	send := func(i int) error {
		e.q.push(&tick{t: time.Unix(1765000000+int64(i)*10, 0), pts: in.families(fl.tick(i))}, time.Now())
		b := e.q.peek(size, whole)
		ctx, cancel := context.WithTimeout(t.Context(), c.Timeout.Std())
		defer cancel()
		_, err := e.s.send(ctx, b)
		if err == nil {
			e.q.commit(b.hi)
		}
		return err
	}
	done := make(chan error, 1)
	go func() { done <- send(0) }()
	select {
	case err := <-done:
		var se *sendError
		if !errors.As(err, &se) || !se.retryable {
			t.Fatalf("a stalled answer: %v, want a retryable error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a stalled answer held the send past 100 times its timeout")
	}
	// The request itself ended at the deadline: no worker is left
	// waiting on the answer, holding a connection and the transport.
	// (The server learns that the client closed it a moment later.)
	waitFor(t, 10*time.Second, "the stalled request to be closed", func() string { return "" }, abandoned.Load)
	stall.Store(false)
	if err := send(1); err != nil {
		t.Fatalf("the next batch: %v", err)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	n := 0
	for _, docs := range bs.docs {
		n += len(docs)
	}
	// Both ticks: the first stayed queued.
	if want := len(e.s.(*elastic).docs); n != want || n == 0 {
		t.Errorf("%d documents indexed once the server answered, want %d", n, want)
	}
}

// TestElasticsearchAcrossMidnight: a batch whose ticks straddle midnight
// (UTC) goes to the first day's index by its request path, and the next
// day's documents name their index in their action lines; the strict
// server checks each document's index against its time.
func TestElasticsearchAcrossMidnight(t *testing.T) {
	bs := &bulkServer{t: t, docs: map[string]map[string]json.RawMessage{}}
	srv := httptest.NewServer(bs)
	defer srv.Close()
	c := exporterConfig("elastic", config.ExporterElasticsearch, srv.URL)
	c.Index = "crmon"
	c.Credentials.Token = "a2V5"
	e, err := newExporter(c, Options{Hostname: "h", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.s.close()
	openTestQueue(t, e)
	fl := newFleet(t, 1)
	in := newFamInterner(e.labels)
	midnight := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{midnight.Add(-10 * time.Second), midnight} {
		e.q.push(&tick{t: at, pts: in.families(fl.tick(i))}, time.Now())
	}
	size, _ := e.batchShape()
	b := e.q.peek(2*size, true)
	if len(b.chunks) != 2 {
		t.Fatalf("%d ticks in the batch, want both", len(b.chunks))
	}
	if _, err := e.s.send(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	perDay := len(e.s.(*elastic).docs) / 2
	for _, ix := range []string{"crmon-2026.12.06", "crmon-2026.12.07"} {
		if n := len(bs.docs[ix]); n != perDay || n == 0 {
			t.Errorf("%s: %d documents, want %d", ix, n, perDay)
		}
	}
}
