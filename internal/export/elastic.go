// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
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
	c    *elasticsearch.Client
	tr   *authTransport
	e    *Exporter
	lbuf []label
	// template is true once the index template is in place, or refused
	// for good (logged).
	template bool
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
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:           []string{c.Endpoint},
		Transport:           tr,
		CompressRequestBody: true,
		// deliver retries, with the same backoff as every exporter.
		DisableRetry: true,
	})
	if err != nil {
		return nil, err
	}
	return &elastic{c: es, tr: tr, e: e}, nil
}

func (el *elastic) wantsDocs() bool { return false }
func (el *elastic) close()          {}

// doc is one sample group.
type doc struct {
	Timestamp time.Time          `json:"@timestamp"`
	Labels    map[string]string  `json:"labels"`
	Metrics   map[string]float64 `json:"metrics"`
	samples   int
	index, id string
}

func (el *elastic) send(ctx context.Context, b batch) (sent, error) {
	before := el.tr.sentTotal()
	if err := el.ensureTemplate(ctx); err != nil {
		return sent{bytes: int(el.tr.sentTotal() - before)}, err
	}
	docs, skipped := el.docs(b)
	var (
		mu        sync.Mutex
		retryable int    // documents refused with a retryable status
		refused   int    // samples of documents refused for good
		first     string // the first item error, for the log
		flushErr  error
	)
	itemErr := func(d *doc, status int, reason string) {
		mu.Lock()
		defer mu.Unlock()
		if first == "" {
			first = fmt.Sprintf("%s (document %s, status %d)", reason, d.id, status)
		}
		if status == http.StatusTooManyRequests || status >= 500 {
			retryable++
		} else {
			refused += d.samples
		}
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     el.c,
		NumWorkers: 1,
		// The batch is the exporter's: flush on Close, or when a
		// request reaches 1 MiB (the indexer allocates its buffer at
		// this size for each batch; a default batch is about 200 kB).
		FlushBytes:    1 << 20,
		FlushInterval: time.Hour,
		OnError: func(_ context.Context, err error) {
			mu.Lock()
			defer mu.Unlock()
			if flushErr == nil {
				flushErr = err
			}
		},
	})
	if err != nil {
		return sent{}, err
	}
	for i := range docs {
		d := &docs[i]
		body, err := json.Marshal(d)
		if err != nil {
			return sent{}, err
		}
		err = bi.Add(ctx, esutil.BulkIndexerItem{
			Index:      d.index,
			Action:     "index",
			DocumentID: d.id,
			Body:       bytes.NewReader(body),
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
				if err != nil {
					return // the request failed: OnError has it
				}
				itemErr(d, r.Status, r.Error.Type+": "+r.Error.Reason)
			},
		})
		if err != nil {
			bi.Close(ctx)
			return sent{bytes: int(el.tr.sentTotal() - before)}, &sendError{retryable: true, msg: err.Error()}
		}
	}
	if err := bi.Close(ctx); err != nil && flushErr == nil {
		flushErr = err
	}
	r := sent{bytes: int(el.tr.sentTotal() - before), skipped: skipped}
	if flushErr != nil {
		return r, el.requestError(flushErr)
	}
	if retryable > 0 {
		// Sent again whole: the documents already indexed are
		// overwritten with themselves.
		return r, &sendError{retryable: true, msg: fmt.Sprintf("%d of %d documents refused for now: %s", retryable, len(docs), message([]byte(first)))}
	}
	if refused > 0 {
		el.e.log.Error("Elasticsearch refused documents; not retrying them", "samples", refused, "first", message([]byte(first)))
		r.skipped += refused
	}
	return r, nil
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

// docs groups b's samples by tick and label set. NaN and ±Inf, which
// JSON cannot carry, are left out and counted.
func (el *elastic) docs(b batch) (docs []doc, skipped int) {
	index := map[string]int{}
	var key strings.Builder
	for _, c := range b.chunks {
		idx := el.e.cfg.Index + "-" + c.t.UTC().Format("2006.01.02")
		ts := strconv.FormatInt(c.t.UnixNano(), 10)
		clear(index)
		for _, p := range c.pts[c.from:c.to] {
			if isNaNOrInf(p.v) {
				skipped++
				continue
			}
			name, ls := splitKey(p.key, el.lbuf)
			ls = mergeLabels(ls, el.e.labels)
			el.lbuf = ls
			key.Reset()
			for _, l := range ls {
				key.WriteString(l.name)
				key.WriteString(sep)
				key.WriteString(l.value)
				key.WriteString(sep)
			}
			i, ok := index[key.String()]
			if !ok {
				i = len(docs)
				index[key.String()] = i
				lm := make(map[string]string, len(ls))
				for _, l := range ls {
					lm[l.name] = l.value
				}
				h := fnv.New128a()
				h.Write([]byte(idx + sep + ts + sep + key.String()))
				docs = append(docs, doc{Timestamp: c.t, Labels: lm, Metrics: map[string]float64{}, index: idx, id: fmt.Sprintf("%x", h.Sum(nil))})
			}
			docs[i].Metrics[name] = p.v
			docs[i].samples++
		}
	}
	return docs, skipped
}
