// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/exp/api/remote"
	writev2 "github.com/prometheus/client_golang/exp/api/remote/genproto/v2"
	"github.com/prometheus/prometheus/prompb"

	"github.com/crmon-dev/crmon/internal/config"
)

// remoteWrite sends series with Prometheus remote write (snappy-compressed
// protobuf) through client_golang's remote API: 1.0 (prompb.WriteRequest),
// or 2.0 (io.prometheus.write.v2.Request) where the receiver takes it.
type remoteWrite struct {
	api *remote.API
	tr  *authTransport
	e   *Exporter
	// v2 is the protocol in use; auto starts with 2.0 and falls back to
	// 1.0 for good when the receiver shows it does not take 2.0.
	v2, auto bool
	warned   bool // the wrong-server warning was logged

	// The requests, reused from batch to batch; reqs numbers them.
	req1 prompb.WriteRequest
	req2 writev2.Request
	reqs uint64
	dict symbols
}

func newRemoteWrite(c config.Exporter, hc *http.Client, e *Exporter) (*remoteWrite, error) {
	api, err := remote.NewAPI(c.Endpoint,
		remote.WithAPIHTTPClient(hc),
		remote.WithAPIPath(""),
		// Each attempt's failure is deliver's to log, once.
		remote.WithAPILogger(slog.New(slog.DiscardHandler)),
		// Retries are the exporter's (deliver): the API makes one attempt
		// per send, see send.
		remote.WithAPIBackoff(remote.BackoffConfig{Min: minBackoff, Max: maxBackoff}),
	)
	if err != nil {
		return nil, err
	}
	rw := &remoteWrite{api: api, tr: hc.Transport.(*authTransport), e: e}
	switch c.RemoteWriteVersion {
	case config.RemoteWrite2:
		rw.v2 = true
	case config.RemoteWriteAuto, "":
		rw.v2, rw.auto = true, true
	}
	return rw, nil
}

func (rw *remoteWrite) wantsDocs() bool { return false }
func (rw *remoteWrite) close()          {}

func (rw *remoteWrite) send(ctx context.Context, b batch) (sent, error) {
	n, err := rw.write(ctx, b)
	if err == nil || !rw.auto || !rw.v2 {
		return sent{bytes: n}, err
	}
	last := rw.tr.lastResponse()
	if last.status/100 == 2 || last.status == http.StatusUnsupportedMediaType {
		// A 2.0 receiver confirms what it wrote; one that answers 2xx
		// without saying so, or refuses the content type, takes 1.0 only.
		rw.e.log.Info("the receiver does not take remote write 2.0; using 1.0", "status", last.status, "answer", err.Error())
		rw.v2 = false
		m, err := rw.write(ctx, b)
		return sent{bytes: n + m}, err
	}
	return sent{bytes: n}, err
}

// write makes one attempt. client_golang's API retries by itself; the
// retry callback ends the attempt instead, so that deliver, which retries
// every exporter type the same way, decides.
func (rw *remoteWrite) write(ctx context.Context, b batch) (int, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	retry := false
	onRetry := remote.WithWriteRetryCallback(func(error) { retry = true; cancel() })
	var err error
	if rw.v2 {
		_, err = rw.api.Write(actx, remote.WriteV2MessageType, rw.v2Request(b), onRetry)
	} else {
		_, err = rw.api.Write(actx, remote.WriteV1MessageType, rw.v1Request(b), onRetry)
	}
	last := rw.tr.lastResponse()
	n := int(last.sent)
	if err == nil {
		return n, nil
	}
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	rw.checkServer(last)
	switch {
	case last.err != nil:
		return n, &sendError{retryable: true, msg: errText(last.err, rw.e.cfg.Endpoint)}
	case last.status/100 == 2:
		// 2.0 sent, 2xx without the written-samples headers.
		return n, &sendError{msg: "the receiver answered remote write 2.0 without confirming what it wrote (X-Prometheus-Remote-Write-*-Written): it takes 1.0 only; set remote_write_version = \"1.0\""}
	case last.status/100 == 3:
		return n, redirected(last.status, last.location)
	case last.status != 0:
		se := classify(last.status, last.retryAfter, []byte(errText(err, rw.e.cfg.Endpoint)))
		se.retryable = se.retryable || retry
		if last.status == http.StatusNotFound {
			se.msg += " (is this the receiver's remote-write URL, e.g. http://prometheus:9090/api/v1/write, and does Prometheus run with --web.enable-remote-write-receiver?)"
		}
		return n, se
	}
	return n, &sendError{retryable: retry, msg: errText(err, rw.e.cfg.Endpoint)}
}

// checkServer logs, once, that the endpoint answers like another kind of
// server.
func (rw *remoteWrite) checkServer(last response) {
	if rw.warned || last.server == "" || last.server == config.ExporterPrometheus {
		return
	}
	rw.warned = true
	rw.e.log.Error(fmt.Sprintf("the endpoint answers like %s, not a Prometheus remote-write receiver; check exporter_type and endpoint", last.server), "endpoint", redact(rw.e.cfg.Endpoint))
}

// v1Labels are s's labels with __name__, sorted by name, as 1.0 carries
// them; built once per series.
func v1Labels(s *series) []prompb.Label {
	if s.rw1 == nil {
		ls := mergeLabels(append(slices.Clone(s.labels), label{"__name__", s.name}), nil)
		s.rw1 = make([]prompb.Label, len(ls))
		for j, l := range ls {
			s.rw1[j] = prompb.Label{Name: l.name, Value: l.value}
		}
	}
	return s.rw1
}

// v1Request groups b's samples by series, oldest first. The request and
// its slices are the sender's, reused from one batch to the next: at host
// + 50 containers, building a fresh request a batch was half the
// exporter's cost.
func (rw *remoteWrite) v1Request(b batch) *prompb.WriteRequest {
	rw.reqs++
	req := &rw.req1
	req.Timeseries = req.Timeseries[:0]
	for _, c := range b.chunks {
		ts := c.t.UnixMilli()
		for _, p := range c.pts[c.from:c.to] {
			s := p.s
			if s.stamp != rw.reqs {
				s.stamp, s.slot = rw.reqs, len(req.Timeseries)
				if len(req.Timeseries) < cap(req.Timeseries) {
					req.Timeseries = req.Timeseries[:s.slot+1]
				} else {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{})
				}
				t := &req.Timeseries[s.slot]
				t.Labels, t.Samples = v1Labels(s), t.Samples[:0]
			}
			t := &req.Timeseries[s.slot]
			t.Samples = append(t.Samples, prompb.Sample{Value: p.v, Timestamp: ts})
		}
	}
	return req
}

// v2Request is v1Request's 2.0 form, with its symbol table. Every label
// string has a number in the sender's dictionary, given once per series;
// a request's symbol table is built from those numbers (refs), without
// hashing a string per series and request, which had been a third of the
// exporter's cost.
func (rw *remoteWrite) v2Request(b batch) *writev2.Request {
	rw.reqs++
	d := &rw.dict
	d.startRequest()
	req := &rw.req2
	req.Timeseries = req.Timeseries[:0]
	for _, c := range b.chunks {
		ts := c.t.UnixMilli()
		for _, p := range c.pts[c.from:c.to] {
			s := p.s
			if s.stamp != rw.reqs {
				s.stamp, s.slot = rw.reqs, len(req.Timeseries)
				if len(req.Timeseries) < cap(req.Timeseries) {
					req.Timeseries = req.Timeseries[:s.slot+1]
				} else {
					req.Timeseries = append(req.Timeseries, nil)
				}
				if req.Timeseries[s.slot] == nil {
					req.Timeseries[s.slot] = &writev2.TimeSeries{}
				}
				t := req.Timeseries[s.slot]
				t.LabelsRefs = t.LabelsRefs[:0]
				for _, g := range d.numbers(s, v1Labels(s)) {
					t.LabelsRefs = append(t.LabelsRefs, d.ref(g))
				}
				t.Samples = t.Samples[:0]
			}
			t := req.Timeseries[s.slot]
			if n := len(t.Samples); n < cap(t.Samples) {
				t.Samples = t.Samples[:n+1]
				if t.Samples[n] == nil {
					t.Samples[n] = &writev2.Sample{}
				}
				t.Samples[n].Value, t.Samples[n].Timestamp = p.v, ts
			} else {
				t.Samples = append(t.Samples, &writev2.Sample{Value: p.v, Timestamp: ts})
			}
		}
	}
	req.Symbols = d.syms
	return req
}

// symbols numbers the label strings of remote write 2.0's series: each
// string has a number in the dictionary (given once per series, kept in
// series.syms), and each request a table of the strings it uses, built
// through refs, indexed by those numbers.
type symbols struct {
	dict map[string]uint32
	// gen changes when the dictionary starts again; series numbered in
	// another generation are numbered again.
	gen uint64
	// refs[n] is the request's reference to string n when used[n] is
	// the request's number.
	refs []uint32
	used []uint64
	req  uint64
	// syms is the request's symbol table; "" is its first symbol, as
	// 2.0 requires.
	syms []string
	strs []string // the dictionary's strings by number
}

// maxSymbols bounds the dictionary: strings of series that are gone
// (exited containers) stay in it until it starts again.
const maxSymbols = 1 << 18

func (d *symbols) startRequest() {
	d.req++
	d.syms = append(d.syms[:0], "")
	if len(d.dict) > maxSymbols {
		d.dict, d.strs, d.refs, d.used = nil, nil, nil, nil
		d.gen++
	}
}

// numbers are the dictionary's numbers of ls' names and values, in order.
func (d *symbols) numbers(s *series, ls []prompb.Label) []uint32 {
	if s.syms != nil && s.symGen == d.gen {
		return s.syms
	}
	if d.dict == nil {
		d.dict = map[string]uint32{}
	}
	s.syms, s.symGen = s.syms[:0], d.gen
	for _, l := range ls {
		s.syms = append(s.syms, d.number(l.Name), d.number(l.Value))
	}
	return s.syms
}

func (d *symbols) number(str string) uint32 {
	n, ok := d.dict[str]
	if !ok {
		n = uint32(len(d.strs))
		d.dict[str] = n
		d.strs = append(d.strs, str)
		d.refs = append(d.refs, 0)
		d.used = append(d.used, 0)
	}
	return n
}

// ref is the request's reference to string n, added to its table on
// first use.
func (d *symbols) ref(n uint32) uint32 {
	if d.used[n] != d.req {
		s := d.strs[n]
		if s == "" {
			d.refs[n] = 0
		} else {
			d.refs[n] = uint32(len(d.syms))
			d.syms = append(d.syms, s)
		}
		d.used[n] = d.req
	}
	return d.refs[n]
}
