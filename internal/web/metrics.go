// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metricsHandler serves the agent's metrics in the exposition format the
// scraper asks for, like promhttp, with what a scrape budget of a few
// milliseconds needs on a host of fifty containers (2 000 series, 340 kB
// of text):
//
//   - in the text format, which Prometheus takes when OpenMetrics is not
//     offered, the host and container series are written by their
//     collectors (collect.TextAppender); only the rest goes through
//     client_golang's gather and encode. Protobuf asks for everything
//     through client_golang.
//   - gzip at its fastest level, with klauspost/compress, three times
//     faster than the standard library's best speed for fewer bytes, and
//     each family compressed once while its text does not change
//     (gzipCache).
//   - the body built in a buffer, so its length is known and a failed
//     encode never sends half a scrape.
//   - the buffer and the gzip writer kept from one scrape to the next. A
//     sync.Pool is emptied by the garbage collections between two scrapes
//     15 s apart, and the 340 kB body and the gzip writer's tables would
//     be allocated anew, and left to the collector, for every scrape.
type metricsHandler struct {
	full, rest  prometheus.Gatherer
	direct      func([]byte) []byte
	log         *slog.Logger
	inflight    chan struct{}
	bufs, zbufs spare[*bytes.Buffer]
	gz          *gzipCache
}

// spare keeps one idle object between uses; concurrent users beyond it
// get new ones, which are dropped after use.
type spare[T any] struct {
	c   chan T
	new func() T
}

func newSpare[T any](new func() T) spare[T] { return spare[T]{c: make(chan T, 1), new: new} }

func (s spare[T]) get() T {
	select {
	case v := <-s.c:
		return v
	default:
		return s.new()
	}
}

func (s spare[T]) put(v T) {
	select {
	case s.c <- v:
	default:
	}
}

func newMetricsHandler(full, rest prometheus.Gatherer, direct func([]byte) []byte, log *slog.Logger, maxInflight int) *metricsHandler {
	return &metricsHandler{
		full:     full,
		rest:     rest,
		direct:   direct,
		log:      log,
		inflight: make(chan struct{}, maxInflight),
		bufs:     newSpare(func() *bytes.Buffer { return new(bytes.Buffer) }),
		zbufs:    newSpare(func() *bytes.Buffer { return new(bytes.Buffer) }),
		gz:       newGzipCache(),
	}
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.inflight <- struct{}{}:
		defer func() { <-h.inflight }()
	default:
		http.Error(w, "too many concurrent scrapes", http.StatusServiceUnavailable)
		return
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	text := format.FormatType() == expfmt.TypeTextPlain
	g := h.full
	if text {
		g = h.rest
	}
	mfs, err := g.Gather()
	if err != nil {
		// Gather returns what it could alongside the error: serve that,
		// as promhttp's ContinueOnError does, and say what went wrong.
		h.log.Error("gathering metrics", "err", err)
	}
	buf := h.bufs.get()
	buf.Reset()
	defer h.bufs.put(buf)
	enc := expfmt.NewEncoder(buf, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			h.log.Error("encoding metrics", "family", mf.GetName(), "err", err)
			http.Error(w, "encoding metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			http.Error(w, "encoding metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if text {
		buf.Write(h.direct(buf.AvailableBuffer()))
	}
	hdr := w.Header()
	hdr.Set("Content-Type", string(format))
	hdr.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Write(buf.Bytes())
		return
	}
	hdr.Set("Content-Encoding", "gzip")
	zbuf := h.zbufs.get()
	zbuf.Reset()
	defer h.zbufs.put(zbuf)
	h.gz.compress(zbuf, buf.Bytes())
	w.Write(zbuf.Bytes())
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip: listed
// without a q value or with one above 0.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.TrimSpace(k) == "q" {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}
