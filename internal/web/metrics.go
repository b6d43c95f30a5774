// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

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
//   - the body's buffer, and the gzipped body's, kept from one scrape to
//     the next at about the size the last one needed. Beside idle
//     containers, whose ticks allocate little, a buffer made for every
//     scrape doubled the garbage collector's cycles: 3 % of the agent's
//     CPU beside 150 containers in a profile (the allocation and the
//     collection work it was charged), 0.04-0.07 % of a core more beside
//     1 000, side by side, for the same RSS. A buffer that grew well past
//     its body is not kept: beside 1 000 containers the one kept had
//     grown to 9.2 MB for a 4.8 MB body (the containers' text was
//     appended past its capacity and copied in), live heap that the
//     collector's target (GOGC=50) grew by half again. The gzip writer's
//     tables, a fixed 0.5 MB, are kept too (gzipCache).
type metricsHandler struct {
	full, rest prometheus.Gatherer
	direct     func([]byte) []byte
	log        *slog.Logger
	inflight   chan struct{}
	gz         *gzipCache
	// bufs and zbufs are the body's and the gzipped body's, apart for
	// the text format (k 0) and the others (1), whose sizes differ.
	bufs, zbufs [2]spare
}

// spare keeps one buffer between scrapes; concurrent scrapes beyond it
// make their own, which are dropped after use.
type spare struct {
	c chan []byte
	// size is the length of the last buffer put back: a new one's
	// capacity is made from it.
	size atomic.Int64
}

func newSpare() spare { return spare{c: make(chan []byte, 1)} }

func (s *spare) get() []byte {
	select {
	case b := <-s.c:
		return b
	default:
		// An eighth more, for series that came since.
		n := s.size.Load()
		return make([]byte, 0, min(n+n/8+512, 64<<20))
	}
}

// put keeps b for the next scrape unless its capacity is well beyond
// what it held: then the next scrape makes one at about the right size.
func (s *spare) put(b []byte) {
	s.size.Store(int64(len(b)))
	if cap(b) > len(b)+len(b)/4+64<<10 {
		return
	}
	select {
	case s.c <- b[:0]:
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
		gz:       newGzipCache(),
		bufs:     [2]spare{newSpare(), newSpare()},
		zbufs:    [2]spare{newSpare(), newSpare()},
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
	k := 0
	if !text {
		k = 1
	}
	buf := bytes.NewBuffer(h.bufs[k].get())
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
	body := buf.Bytes()
	if text {
		body = h.direct(body)
	}
	defer func() { h.bufs[k].put(body) }()
	hdr := w.Header()
	hdr.Set("Content-Type", string(format))
	hdr.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Write(body)
		return
	}
	hdr.Set("Content-Encoding", "gzip")
	zbuf := bytes.NewBuffer(h.zbufs[k].get())
	h.gz.compress(zbuf, body)
	defer func() { h.zbufs[k].put(zbuf.Bytes()) }()
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
