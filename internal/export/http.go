// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/version"
)

// maxResponseBytes bounds what crmon reads of a receiver's answer: a
// status, a few headers and an error message or a bulk response.
const maxResponseBytes = 1 << 20

// maxMessageBytes bounds the server message crmon logs.
const maxMessageBytes = 512

// newHTTPClient is the exporter's own client: its own connections, so a
// slow receiver ties up no other exporter's, a deadline per request, and
// credentials and headers added to every request.
func newHTTPClient(c config.Exporter) *http.Client {
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: c.Timeout.Std(), KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:    c.Timeout.Std(),
		ResponseHeaderTimeout:  c.Timeout.Std(),
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Timeout:   c.Timeout.Std(),
		Transport: &authTransport{base: tr, cfg: c},
		// authTransport adds the credentials and headers to every request
		// it carries, a redirected one too: following a redirect would
		// hand them to whatever host the receiver names. A 3xx is an
		// answer, reported by redirected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// authTransport adds the exporter's headers and credentials to each
// request, bounds the response body, and remembers the last response's
// status and identifying headers for the sender that cannot see them.
type authTransport struct {
	base http.RoundTripper
	cfg  config.Exporter
	// tokenScheme is the Authorization scheme of a token: "Bearer", or
	// "Token" for InfluxDB.
	tokenScheme string
	// gzip compresses request bodies that are not compressed yet (the
	// _bulk requests go-elasticsearch makes).
	gzip bool
	gz   *gzip.Writer
	zbuf bytes.Buffer

	mu   sync.Mutex
	last response
	// total is every request body's bytes.
	total int64
}

// sentTotal is every request body's bytes so far.
func (t *authTransport) sentTotal() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// response is what the transport remembers of the last answer.
type response struct {
	status     int
	retryAfter time.Duration
	server     string // what the answer looks like: "InfluxDB", "Elasticsearch", ""
	err        error  // a network error
	sent       int64  // the request body's bytes
	location   string // a redirect's Location
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.cfg.Headers {
		r.Header.Set(k, v.Reveal())
	}
	cr := t.cfg.Credentials
	switch {
	case cr.Token != "":
		scheme := t.tokenScheme
		if scheme == "" {
			scheme = "Bearer"
		}
		r.Header.Set("Authorization", scheme+" "+cr.Token.Reveal())
	case cr.Username != "":
		r.SetBasicAuth(cr.Username, cr.Password.Reveal())
	}
	if t.gzip && r.Body != nil && r.Body != http.NoBody && r.Header.Get("Content-Encoding") == "" {
		if err := t.compress(r); err != nil {
			return nil, err
		}
	}
	resp, err := t.base.RoundTrip(r)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += max(r.ContentLength, 0)
	if err != nil {
		t.last = response{err: err, sent: max(r.ContentLength, 0)}
		return nil, err
	}
	t.last = response{status: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After")), server: serverKind(resp.Header), sent: max(r.ContentLength, 0),
		location: resp.Header.Get("Location")}
	resp.Body = limitBody(resp.Body)
	return resp, nil
}

// compress replaces r's body with its gzip, at the fastest level of
// klauspost/compress: for Elasticsearch's _bulk bodies at host + 50
// containers, go-elasticsearch's own compression (compress/gzip, even at
// BestSpeed) was a quarter of the exporter's CPU, and this a third of
// that for 6 % more bytes. One request is in flight per exporter, so the
// buffer is reused.
func (t *authTransport) compress(r *http.Request) error {
	if r.ContentLength > maxRequestBytes {
		r.Body.Close()
		return fmt.Errorf("a request body over %d bytes", maxRequestBytes)
	}
	if t.gz == nil {
		t.gz, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed)
	}
	t.zbuf.Reset()
	t.gz.Reset(&t.zbuf)
	// Compressed as it is read, without a copy of the body first: the
	// body (the indexer's bytes.Buffer) writes itself into the gzip
	// writer in one piece, where an io.LimitReader in between cost a
	// 32 KiB buffer and a copy of the body a request.
	_, err := io.Copy(&limitWriter{w: t.gz, n: maxRequestBytes}, r.Body)
	r.Body.Close()
	if err != nil {
		return err
	}
	if err := t.gz.Close(); err != nil {
		return err
	}
	z := t.zbuf.Bytes()
	r.Body = io.NopCloser(bytes.NewReader(z))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(z)), nil }
	r.ContentLength = int64(len(z))
	r.Header.Set("Content-Encoding", "gzip")
	return nil
}

// limitWriter writes to w at most n bytes, and fails beyond.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("a request body over %d bytes", maxRequestBytes)
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// maxRequestBytes bounds a request body the transport compresses: a
// _bulk request is at most about 1 MiB (the indexer's FlushBytes).
const maxRequestBytes = 64 << 20

// lastResponse is what the last round trip answered.
func (t *authTransport) lastResponse() response {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// serverKind recognises a server by the headers it always sends.
func serverKind(h http.Header) string {
	switch {
	case h.Get("X-Influxdb-Version") != "":
		return config.ExporterInfluxDB
	case h.Get("X-Elastic-Product") != "":
		return config.ExporterElasticsearch
	}
	return ""
}

// retryAfter parses Retry-After: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// limitedBody reads at most maxResponseBytes of a response.
type limitedBody struct {
	io.Reader
	io.Closer
}

func limitBody(b io.ReadCloser) io.ReadCloser {
	return limitedBody{io.LimitReader(b, maxResponseBytes), b}
}

// message is a server's answer cut to what a log line may carry: valid
// UTF-8, one line, at most maxMessageBytes.
func message(b []byte) string {
	s := strings.ToValidUTF8(string(b), "�")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessageBytes {
		cut := maxMessageBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "… (cut)"
	}
	return s
}

// classify turns an HTTP status into a sendError: 5xx and 429 are worth a
// retry, other 4xx are not.
func classify(status int, after time.Duration, body []byte) *sendError {
	return &sendError{
		retryable: status >= 500 || status == http.StatusTooManyRequests,
		after:     after,
		status:    status,
		msg:       message(body),
	}
}

// redirected is the error of a 3xx answer, which is not followed: it
// names where the receiver points (without credentials or query), so that
// the endpoint can be set to it.
func redirected(status int, location string) *sendError {
	where := "elsewhere"
	if location != "" {
		where = "to " + message([]byte(redact(location)))
	}
	return &sendError{status: status, msg: "the receiver redirects " + where +
		"; exporters do not follow redirects, which would take the credentials and headers along: set endpoint to the final URL"}
}

// snapshotJSON is the sample as /api/v1/snapshot serves it.
func snapshotJSON(s *agent.Sample) ([]byte, error) { return json.Marshal(s.Metrics) }

// redact is u without credentials or query, for logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// errText is err's message without the credentials or query of a URL it
// names: net/http's errors quote the request's URL, with its query, where
// a receiver's API key may be (https://…/ingest?api_key=…).
func errText(err error, endpoint string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact(ue.URL)
	}
	s := err.Error()
	if endpoint != "" {
		s = strings.ReplaceAll(s, endpoint, redact(endpoint))
	}
	return s
}

// poster makes one POST per attempt for the exporters that speak plain
// HTTP (InfluxDB, Custom), gzip-compressed where the receiver takes it.
type poster struct {
	hc  *http.Client
	tr  *authTransport
	e   *Exporter
	gz  *gzip.Writer
	buf bytes.Buffer
	// expect is the kind of server the exporter talks to, for the
	// wrong-server log line; "" checks nothing.
	expect string
	warned bool
}

func newPoster(hc *http.Client, e *Exporter, expect string) *poster {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return &poster{hc: hc, tr: hc.Transport.(*authTransport), e: e, gz: gz, expect: expect}
}

// post sends body to u, gzipped when compress is set, and returns the
// bytes sent. A 2xx is success; anything else is a classified sendError
// with the server's message.
func (p *poster) post(ctx context.Context, u, contentType string, body []byte, compress bool, hdr http.Header) (int, error) {
	payload := body
	if compress {
		p.buf.Reset()
		p.gz.Reset(&p.buf)
		p.gz.Write(body)
		if err := p.gz.Close(); err != nil {
			return 0, err
		}
		payload = p.buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return 0, &sendError{msg: errText(err, u)}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "crmon/"+version.Get().Version)
	if compress {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return len(payload), &sendError{retryable: true, msg: errText(err, u)}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	p.checkServer(resp)
	switch resp.StatusCode / 100 {
	case 2:
		return len(payload), nil
	case 3:
		return len(payload), redirected(resp.StatusCode, resp.Header.Get("Location"))
	}
	return len(payload), classify(resp.StatusCode, retryAfter(resp.Header.Get("Retry-After")), answer)
}

// checkServer logs, once, that the endpoint does not answer like the
// server the exporter's type expects.
func (p *poster) checkServer(resp *http.Response) {
	if p.warned || p.expect == "" {
		return
	}
	got := serverKind(resp.Header)
	if got == p.expect {
		return
	}
	p.warned = true
	like := "another kind of server"
	if got != "" {
		like = got
	}
	p.e.log.Error(fmt.Sprintf("the endpoint answers like %s, not %s, which sends X-Influxdb-Version with every answer; check exporter_type and endpoint", like, p.expect),
		"endpoint", redact(p.e.cfg.Endpoint), "status", resp.StatusCode)
}

// readAll reads what limitBody lets through.
func readAll(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}

func isNaNOrInf(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
