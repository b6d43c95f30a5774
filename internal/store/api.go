// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/annotations"
)

// The API answers in the shapes of Prometheus' HTTP API
// (https://prometheus.io/docs/prometheus/latest/querying/api/), so that
// promtool, Grafana and client_golang's api/v1 client use crmon as they
// use a Prometheus server:
//
//	{"status":"success","data":…,"warnings":[…],"infos":[…]}
//	{"status":"error","errorType":"bad_data","error":"…"}
type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

// Prometheus' error types and the status codes it answers them with.
const (
	errBadData  = "bad_data"
	errExec     = "execution"
	errTimeout  = "timeout"
	errCanceled = "canceled"
	errInternal = "internal"
	errUnavail  = "unavailable"
)

var errorCodes = map[string]int{
	errBadData:  http.StatusBadRequest,
	errExec:     http.StatusUnprocessableEntity,
	errTimeout:  http.StatusServiceUnavailable,
	errCanceled: 499,
	errInternal: http.StatusInternalServerError,
	errUnavail:  http.StatusServiceUnavailable,
}

// The bounds Prometheus gives a missing start and end, and their text,
// which its clients send for "all time".
var (
	minTime          = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime          = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// maxBody bounds a POSTed form (a query and its parameters).
const maxBody = 1 << 20

// Responses waiting for their clients to read them are held in memory
// until written: they are bounded in total, and each has a deadline, so
// that clients that ask and do not read cannot pin the agent's memory
// (16 such clients of a 14 MB query_range held 700 MB of heap, for as long
// as they stayed connected). Each answer is built and encoded inside a
// query slot, so that at most the engine's concurrency of them are being
// encoded at once, and each is bounded in size.
const (
	// maxPendingBytes bounds the responses being written at once.
	maxPendingBytes = 256 << 20
	// maxAnswerBytes bounds one answer, a quarter of the room for
	// pending ones: a range query of about 2 million points (an hour of
	// 500 series at 1 s), more than a dashboard draws.
	maxAnswerBytes = maxPendingBytes / 4
	// responseWriteTimeout bounds writing one response.
	responseWriteTimeout = time.Minute
)

// API serves Prometheus' query API over a store.
type API struct {
	store   *Store
	engine  *Engine
	log     *slog.Logger
	version string

	// pending is the bytes of the responses encoded and not yet written,
	// up to maxPending; maxAnswer bounds one; writeTimeout bounds each
	// write.
	pending      atomic.Int64
	maxPending   int64
	maxAnswer    int64
	writeTimeout time.Duration
}

// NewAPI serves s through e. version is what /api/v1/status/buildinfo
// reports.
func NewAPI(s *Store, e *Engine, version string, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{store: s, engine: e, log: logger, version: version,
		maxPending: maxPendingBytes, maxAnswer: maxAnswerBytes, writeTimeout: responseWriteTimeout}
}

// handlerFunc builds an answer and hands it to answer, which encodes it;
// it returns what went wrong instead.
type handlerFunc func(r *http.Request, answer func(data any) error) error

// Handlers are the API's handlers by path, for the agent's listener.
func (a *API) Handlers() map[string]http.Handler {
	// slotted: the handler reads the store, and serve takes a query slot
	// for it; the queries take theirs in the engine, around evaluating
	// and encoding.
	h := func(f handlerFunc, slotted bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, f, slotted) })
	}
	simple := func(f func(*http.Request) (any, error)) handlerFunc {
		return func(r *http.Request, answer func(any) error) error {
			data, err := f(r)
			if err != nil {
				return err
			}
			return answer(data)
		}
	}
	return map[string]http.Handler{
		"/api/v1/query":            h(a.query, false),
		"/api/v1/query_range":      h(a.queryRange, false),
		"/api/v1/series":           h(simple(a.series), true),
		"/api/v1/labels":           h(simple(a.labelNames), true),
		"/api/v1/label/":           h(simple(a.labelValues), true),
		"/api/v1/status/tsdb":      h(simple(a.tsdbStatus), true),
		"/api/v1/status/buildinfo": h(simple(a.buildInfo), false),
		// crmon's own: the report `crmon exec` writes, for a past window.
		// It reads about as much as a query of every container series
		// over the window: it takes a query's slot.
		"/api/v1/report": h(simple(a.report), true),
		// Grafana asks for these; the store keeps neither metadata nor
		// exemplars.
		"/api/v1/metadata":        h(simple(func(*http.Request) (any, error) { return map[string]any{}, nil }), false),
		"/api/v1/query_exemplars": h(simple(func(*http.Request) (any, error) { return []any{}, nil }), false),
	}
}

// apiError is an error with Prometheus' errorType.
type apiError struct {
	typ string
	err error
}

func (e *apiError) Error() string { return e.err.Error() }

func badData(format string, args ...any) error {
	return &apiError{errBadData, fmt.Errorf(format, args...)}
}

// warned carries a result's warnings and infos.
type warned struct {
	data  any
	annos annotations.Annotations
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, f handlerFunc, slotted bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		a.fail(w, &apiError{errBadData, errors.New("method not allowed; use GET or POST")}, http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		a.fail(w, &apiError{errBadData, fmt.Errorf("parsing the form: %w", err)}, 0)
		return
	}
	var body []byte
	answer := func(data any) error {
		resp := response{Status: "success", Data: data}
		if wd, ok := data.(warned); ok {
			resp.Data = wd.data
			resp.Warnings, resp.Infos = wd.annos.AsStrings("", 10, 10)
		}
		b, err := a.encode(resp)
		body = b
		return err
	}
	err := func() error {
		if !slotted {
			return f(r, answer)
		}
		ctx, _, done, err := a.engine.acquire(r.Context())
		if err != nil {
			return err
		}
		defer done()
		return f(r.WithContext(ctx), answer)
	}()
	defer a.pending.Add(-int64(len(body)))
	if err != nil {
		a.fail(w, err, 0)
		return
	}
	a.send(w, http.StatusOK, body)
}

// encode encodes a successful answer, within its bound, and counts it as
// pending until it is sent (the caller gives it back). It runs inside the
// answer's query slot.
func (a *API) encode(resp response) ([]byte, error) {
	if d, ok := resp.Data.(queryData); ok {
		if n := answerSize(d.Result); n > a.maxAnswer {
			return nil, &apiError{errExec, fmt.Errorf("the answer would be about %.0f MiB, more than the %.0f MiB one may be; select fewer series or use a larger step", float64(n)/(1<<20), float64(a.maxAnswer)/(1<<20))}
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, &apiError{errInternal, fmt.Errorf("encoding the response: %w", err)}
	}
	size := int64(len(b))
	if size > a.maxAnswer {
		return nil, &apiError{errExec, fmt.Errorf("the answer is %.0f MiB, more than the %.0f MiB one may be; ask for less", float64(size)/(1<<20), float64(a.maxAnswer)/(1<<20))}
	}
	if n := a.pending.Add(size); n > a.maxPending && n > size {
		// Others' responses hold the room; one alone may take it all.
		a.pending.Add(-size)
		return nil, &apiError{errUnavail, fmt.Errorf("%.1f MiB of responses are waiting for their clients to read them; try again", float64(n-size)/(1<<20))}
	}
	return b, nil
}

// answerSize is about how many bytes a query's result takes in JSON, from
// its series and points, so that one too large is refused before it is
// encoded: a float point ([1733000000.123,"12.5"]) takes about 24, a
// series' labels about their length and quotes.
func answerSize(v parser.Value) int64 {
	metric := func(l labels.Labels) int64 {
		n := int64(16)
		l.Range(func(l labels.Label) { n += int64(len(l.Name) + len(l.Value) + 6) })
		return n
	}
	var n int64
	switch v := v.(type) {
	case promql.Matrix:
		for _, s := range v {
			n += metric(s.Metric) + 24*int64(len(s.Floats)) + 512*int64(len(s.Histograms))
		}
	case promql.Vector:
		for _, s := range v {
			n += metric(s.Metric) + 48
		}
	}
	return n
}

// fail answers err in Prometheus' error shape; code 0 is errorType's.
func (a *API) fail(w http.ResponseWriter, err error, code int) {
	typ := classify(err)
	if code == 0 {
		code = errorCodes[typ]
	}
	b, merr := json.Marshal(response{Status: "error", ErrorType: typ, Error: err.Error()})
	if merr != nil {
		a.log.Error("encoding an API error", "err", merr)
		return
	}
	a.send(w, code, b)
}

func classify(err error) string {
	var ae *apiError
	var br *BadRequest
	var eqc promql.ErrQueryCanceled
	var eqt promql.ErrQueryTimeout
	var es promql.ErrStorage
	switch {
	case errors.As(err, &ae):
		return ae.typ
	case errors.As(err, &br):
		return errBadData
	case errors.Is(err, ErrClosed), errors.Is(err, ErrBusy):
		return errUnavail
	case errors.As(err, &eqc), errors.Is(err, context.Canceled):
		return errCanceled
	case errors.As(err, &eqt), errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.As(err, &es):
		return errInternal
	}
	return errExec
}

// send writes an encoded response within the write deadline.
func (a *API) send(w http.ResponseWriter, code int, b []byte) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.writeTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// queryContext bounds a request by its timeout parameter, which may
// shorten the engine's but not lengthen it.
func queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx := r.Context()
	if s := r.FormValue("timeout"); s != "" {
		d, err := ParseDuration(s)
		if err != nil {
			return nil, nil, badData("invalid parameter \"timeout\": %w", err)
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, nil
	}
	return ctx, func() {}, nil
}

func (a *API) query(r *http.Request, answer func(any) error) error {
	t := time.Now()
	if s := r.FormValue("time"); s != "" {
		var err error
		if t, err = ParseTime(s); err != nil {
			return badData("invalid parameter \"time\": %w", err)
		}
	}
	if err := checkRegexes("query", r.FormValue("query")); err != nil {
		return err
	}
	ctx, cancel, err := queryContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	return a.engine.Instant(ctx, r.FormValue("query"), t, func(res *Result) error {
		return answer(warned{queryData{res.Value.Type(), res.Value}, res.Warnings})
	})
}

func (a *API) queryRange(r *http.Request, answer func(any) error) error {
	start, err := ParseTime(r.FormValue("start"))
	if err != nil {
		return badData("invalid parameter \"start\": %w", err)
	}
	end, err := ParseTime(r.FormValue("end"))
	if err != nil {
		return badData("invalid parameter \"end\": %w", err)
	}
	step, err := ParseDuration(r.FormValue("step"))
	if err != nil {
		return badData("invalid parameter \"step\": %w", err)
	}
	if step <= 0 {
		return badData("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	if err := checkRegexes("query", r.FormValue("query")); err != nil {
		return err
	}
	ctx, cancel, err := queryContext(r)
	if err != nil {
		return err
	}
	defer cancel()
	return a.engine.Range(ctx, r.FormValue("query"), start, end, step, func(res *Result) error {
		return answer(warned{queryData{res.Value.Type(), res.Value}, res.Warnings})
	})
}

// window is a request's start and end, all time by default.
func window(r *http.Request) (mint, maxt int64, err error) {
	start, end := minTime, maxTime
	if s := r.FormValue("start"); s != "" {
		if start, err = ParseTime(s); err != nil {
			return 0, 0, badData("invalid parameter \"start\": %w", err)
		}
	}
	if s := r.FormValue("end"); s != "" {
		if end, err = ParseTime(s); err != nil {
			return 0, 0, badData("invalid parameter \"end\": %w", err)
		}
	}
	if end.Before(start) {
		return 0, 0, badData("invalid parameter \"end\": end timestamp must not be before start time")
	}
	return start.UnixMilli(), end.UnixMilli(), nil
}

func matcherSets(r *http.Request) ([][]*labels.Matcher, error) {
	if err := checkMatchSets(r.Form["match[]"]); err != nil {
		return nil, err
	}
	var sets [][]*labels.Matcher
	for _, s := range r.Form["match[]"] {
		ms, err := promQL.ParseMetricSelector(s)
		if err != nil {
			return nil, badData("invalid parameter \"match[]\": %w", err)
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

func limit(r *http.Request) (int, error) {
	s := r.FormValue("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badData("invalid parameter \"limit\": %q is not a whole number of 0 or more", s)
	}
	return n, nil
}

func (a *API) querier(r *http.Request) (storage.Querier, int64, int64, error) {
	mint, maxt, err := window(r)
	if err != nil {
		return nil, 0, 0, err
	}
	q, err := a.store.Queryable().Querier(mint, maxt)
	return q, mint, maxt, err
}

func (a *API) series(r *http.Request) (any, error) {
	sets, err := matcherSets(r)
	if err != nil {
		return nil, err
	}
	if len(sets) == 0 {
		return nil, badData("no match[] parameter provided")
	}
	n, err := limit(r)
	if err != nil {
		return nil, err
	}
	q, mint, maxt, err := a.querier(r)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series"}
	var ss []storage.SeriesSet
	for _, ms := range sets {
		ss = append(ss, q.Select(r.Context(), len(sets) > 1, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
	out := []labels.Labels{}
	var annos annotations.Annotations
	for set.Next() {
		if n > 0 && len(out) >= n {
			annos.Add(errors.New("results truncated due to limit"))
			break
		}
		out = append(out, set.At().Labels())
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return warned{out, annos.Merge(set.Warnings())}, nil
}

func (a *API) labelNames(r *http.Request) (any, error) {
	return a.labels(r, "")
}

func (a *API) labelValues(r *http.Request) (any, error) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/label/"), "/values")
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, &apiError{errBadData, fmt.Errorf("unknown path %s; the label API is /api/v1/label/<name>/values", r.URL.Path)}
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return nil, badData("invalid label name: %q", name)
	}
	return a.labels(r, name)
}

// labels lists label names (name "") or the values of one, over the
// series every match[] selects, or all.
func (a *API) labels(r *http.Request, name string) (any, error) {
	sets, err := matcherSets(r)
	if err != nil {
		return nil, err
	}
	n, err := limit(r)
	if err != nil {
		return nil, err
	}
	q, _, _, err := a.querier(r)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var all []string
	var annos annotations.Annotations
	hints := &storage.LabelHints{Limit: n}
	for _, ms := range sets {
		var vs []string
		var w annotations.Annotations
		if name == "" {
			vs, w, err = q.LabelNames(r.Context(), hints, ms...)
		} else {
			vs, w, err = q.LabelValues(r.Context(), name, hints, ms...)
		}
		if err != nil {
			return nil, err
		}
		annos.Merge(w)
		all = append(all, vs...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if n > 0 && len(all) > n {
		all = all[:n]
		annos.Add(errors.New("results truncated due to limit"))
	}
	if all == nil {
		all = []string{}
	}
	return warned{all, annos}, nil
}

type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

type tsdbStatus struct {
	HeadStats                   headStats  `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
}

func (a *API) tsdbStatus(r *http.Request) (any, error) {
	n := 10
	if s := r.FormValue("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 10_000 {
			return nil, badData("invalid parameter \"limit\": %q: must be a whole number from 1 to 10000", s)
		}
		n = v
	}
	st, err := a.store.Stats(model.MetricNameLabel, n)
	if err != nil {
		return nil, err
	}
	conv := func(in []index.Stat) []tsdbStat {
		out := make([]tsdbStat, 0, len(in))
		for _, s := range in {
			out = append(out, tsdbStat{s.Name, s.Count})
		}
		return out
	}
	ps := st.IndexPostingStats
	chunks := a.store.headChunks()
	return tsdbStatus{
		HeadStats: headStats{
			NumSeries: st.NumSeries, NumLabelPairs: ps.NumLabelPairs, ChunkCount: chunks,
			MinTime: st.MinTime, MaxTime: st.MaxTime,
		},
		SeriesCountByMetricName:     conv(ps.CardinalityMetricsStats),
		LabelValueCountByLabelName:  conv(ps.CardinalityLabelStats),
		MemoryInBytesByLabelName:    conv(ps.LabelValueStats),
		SeriesCountByLabelValuePair: conv(ps.LabelValuePairsStats),
	}, nil
}

// report builds the report of the window from..to (required), for the
// containers whose names match container (repeatable globs; all without).
func (a *API) report(r *http.Request) (any, error) {
	from, err := ParseTime(r.FormValue("from"))
	if err != nil {
		return nil, badData("invalid parameter \"from\": %w", err)
	}
	to, err := ParseTime(r.FormValue("to"))
	if err != nil {
		return nil, badData("invalid parameter \"to\": %w", err)
	}
	if len(r.Form["container"]) > 100 {
		return nil, badData("at most 100 container parameters")
	}
	// serve holds a query slot, and r's context ends at its timeout.
	return a.store.Report(r.Context(), from, to, r.Form["container"], a.engine.Limits().MaxSamples/reportSampleCost)
}

func (a *API) buildInfo(*http.Request) (any, error) {
	return map[string]string{
		"version":   a.version,
		"revision":  "",
		"branch":    "",
		"buildUser": "",
		"buildDate": "",
		"goVersion": "",
	}, nil
}

// ParseTime reads a time as Prometheus' API does: Unix seconds (with a
// fraction) or RFC 3339.
func ParseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp; give Unix seconds or RFC 3339", s)
}

// ParseDuration reads a duration as Prometheus' API does: seconds (with a
// fraction) or a Prometheus duration ("15s", "1h30m", "1d").
func ParseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration: it overflows", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration; give seconds or e.g. \"15s\"", s)
}
