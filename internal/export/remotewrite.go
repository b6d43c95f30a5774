// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

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

	lbuf []label
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

// seriesLabels are a point's labels with __name__ and the exporter's
// labels, sorted by name; the series' own labels win over the exporter's,
// as with Prometheus' external_labels.
func (rw *remoteWrite) seriesLabels(key string) []label {
	name, ls := splitKey(key, rw.lbuf)
	ls = mergeLabels(append(ls, label{"__name__", name}), rw.e.labels)
	rw.lbuf = ls
	return ls
}

// v1Request groups b's samples by series, oldest first.
func (rw *remoteWrite) v1Request(b batch) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	index := map[string]int{}
	for _, c := range b.chunks {
		ts := c.t.UnixMilli()
		for _, p := range c.pts[c.from:c.to] {
			i, ok := index[p.key]
			if !ok {
				i = len(req.Timeseries)
				index[p.key] = i
				ls := rw.seriesLabels(p.key)
				pl := make([]prompb.Label, len(ls))
				for j, l := range ls {
					pl[j] = prompb.Label{Name: l.name, Value: l.value}
				}
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: pl})
			}
			req.Timeseries[i].Samples = append(req.Timeseries[i].Samples, prompb.Sample{Value: p.v, Timestamp: ts})
		}
	}
	return req
}

// v2Request is v1Request's 2.0 form, with its symbol table.
func (rw *remoteWrite) v2Request(b batch) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	index := map[string]int{}
	var strs []string
	for _, c := range b.chunks {
		ts := c.t.UnixMilli()
		for _, p := range c.pts[c.from:c.to] {
			i, ok := index[p.key]
			if !ok {
				i = len(req.Timeseries)
				index[p.key] = i
				ls := rw.seriesLabels(p.key)
				strs = strs[:0]
				for _, l := range ls {
					strs = append(strs, l.name, l.value)
				}
				req.Timeseries = append(req.Timeseries, &writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(strs, nil)})
			}
			req.Timeseries[i].Samples = append(req.Timeseries[i].Samples, &writev2.Sample{Value: p.v, Timestamp: ts})
		}
	}
	req.Symbols = st.Symbols()
	return req
}
