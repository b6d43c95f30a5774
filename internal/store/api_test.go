// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// apiServer serves the query API over a store holding one hour of two
// containers' CPU counters: container cN's counter grows by N per second.
func apiServer(t *testing.T) (url string, start time.Time) {
	t.Helper()
	st := openStore(t, Options{})
	start = time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var b strings.Builder
	for i := range 360 { // every 10 s for an hour
		b.Reset()
		b.WriteString("# TYPE container_cpu_usage_seconds_total counter\n")
		for _, n := range []int{1, 3} {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total{id=\"/docker/%d\",name=\"c%d\"} %d\n", n, n, 10*i*n)
		}
		if err := st.appendText([]byte(b.String()), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	for p, h := range NewAPI(st, NewEngine(st.Queryable(), Limits{}, nil), "test", nil).Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, start
}

func promtool(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.RequireCommand(t, "promtool")
	out, err := exec.Command(bin, append([]string{"query"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool query %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestPromtool queries the API with promtool, Prometheus' own client.
func TestPromtool(t *testing.T) {
	url, start := apiServer(t)
	at := start.Add(30 * time.Minute)

	var vec []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	out := promtool(t, "instant", "-o", "json", "--time", strconv.FormatInt(at.Unix(), 10), url, `rate(container_cpu_usage_seconds_total[1m])`)
	if err := json.Unmarshal(out, &vec); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(vec) != 2 {
		t.Fatalf("instant: %s", out)
	}
	for _, s := range vec {
		n, _ := strconv.Atoi(strings.TrimPrefix(s.Metric["name"], "c"))
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		if math.Abs(v-float64(n)) > 1e-9 || s.Value[0].(float64) != float64(at.Unix()) {
			t.Errorf("instant: %v = %v at %v, want %d at %d", s.Metric, v, s.Value[0], n, at.Unix())
		}
	}

	var mat []struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	out = promtool(t, "range", "-o", "json", "--start", at.Format(time.RFC3339), "--end", at.Add(10*time.Minute).Format(time.RFC3339), "--step", "15s", url, `rate(container_cpu_usage_seconds_total{name="c3"}[1m])`)
	if err := json.Unmarshal(out, &mat); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(mat) != 1 || len(mat[0].Values) != 41 {
		t.Fatalf("range: want 1 series of 41 points:\n%s", out)
	}
	for _, p := range mat[0].Values {
		if v, _ := strconv.ParseFloat(p[1].(string), 64); math.Abs(v-3) > 1e-9 {
			t.Errorf("range: %v, want 3", p)
		}
	}

	out = promtool(t, "series", "--match", `container_cpu_usage_seconds_total{name=~"c.*"}`, url)
	for _, want := range []string{`name="c1"`, `name="c3"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("series: no %s in\n%s", want, out)
		}
	}
	out = promtool(t, "labels", url, "name")
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"c1", "c3"}) {
		t.Errorf("label values of name: %q", got)
	}
}

// TestAPIErrors checks Prometheus' error shape and status codes.
func TestAPIErrors(t *testing.T) {
	url, _ := apiServer(t)
	cases := []struct {
		path     string
		code     int
		typ, msg string
	}{
		{"/api/v1/query?query=rate(", 400, "bad_data", "parse error"},
		{"/api/v1/query?query=up&time=yesterday", 400, "bad_data", `invalid parameter "time"`},
		{"/api/v1/query_range?query=up&start=0&end=1&step=0", 400, "bad_data", "zero or negative"},
		{"/api/v1/query_range?query=up&start=0&end=100000&step=1", 400, "bad_data", "maximum resolution"},
		{"/api/v1/series", 400, "bad_data", "no match[]"},
		{"/api/v1/label/%FF/values", 400, "bad_data", "invalid label name"},
	}
	for _, c := range cases {
		resp, err := http.Get(url + c.path)
		if err != nil {
			t.Fatal(err)
		}
		var r response
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.code || r.Status != "error" || r.ErrorType != c.typ || !strings.Contains(r.Error, c.msg) {
			t.Errorf("%s: %d %+v (%v), want %d %s %q", c.path, resp.StatusCode, r, err, c.code, c.typ, c.msg)
		}
	}
	var status struct {
		Status string     `json:"status"`
		Data   tsdbStatus `json:"data"`
	}
	testenv.GetJSON(t, url+"/api/v1/status/tsdb", &status)
	if status.Data.HeadStats.NumSeries != 2 || len(status.Data.SeriesCountByMetricName) != 1 || status.Data.SeriesCountByMetricName[0].Value != 2 {
		t.Errorf("status/tsdb: %+v", status)
	}
}

// TestQueryBounds checks the engine's bounds: a query over more samples
// than MaxSamples fails with Prometheus' execution error, one that runs
// longer than Timeout with its timeout error, and queries beyond
// Concurrency wait their turn for at most the timeout.
func TestQueryBounds(t *testing.T) {
	st := openStore(t, Options{})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	synthetic(t, st, start, 10*time.Second, 360, 50)
	end := start.Add(time.Hour)

	small := NewEngine(st.Queryable(), Limits{MaxSamples: 100}, nil)
	none := func(*Result) error { return nil }
	err := small.Range(context.Background(), `container_cpu_usage_seconds_total`, start, end, 15*time.Second, none)
	if classify(err) != errExec || !strings.Contains(fmt.Sprint(err), "too many samples") {
		t.Errorf("over max samples: %v (%s), want an execution error", err, classify(err))
	}

	slow := NewEngine(st.Queryable(), Limits{Timeout: time.Nanosecond}, nil)
	err = slow.Range(context.Background(), `sum(rate(container_cpu_usage_seconds_total[5m]))`, start, end, time.Second, none)
	if typ := classify(err); typ != errTimeout && typ != errUnavail {
		t.Errorf("past the timeout: %v (%s), want a timeout", err, typ)
	}

	one := NewEngine(st.Queryable(), Limits{Concurrency: 1, Timeout: 200 * time.Millisecond}, nil)
	sem := one.cur.Load().sem
	sem <- struct{}{} // a query holds the only slot
	t0 := time.Now()
	err = one.Instant(context.Background(), `vector(1)`, end, none)
	if !errors.Is(err, ErrBusy) || classify(err) != errUnavail || time.Since(t0) < 200*time.Millisecond {
		t.Errorf("with the slot taken: %v after %v, want ErrBusy after the timeout", err, time.Since(t0))
	}
	<-sem
	if err := one.Instant(context.Background(), `vector(1)`, end, none); err != nil {
		t.Errorf("with the slot free: %v", err)
	}
}

// TestAnswersAreBuiltInsideTheSlot checks that a query's answer is used
// (encoded, for the API) while the query still holds its slot, so that no
// more answers than the concurrency are built at once, and that an answer
// larger than the bound is refused before it is encoded.
func TestAnswersAreBuiltInsideTheSlot(t *testing.T) {
	st := openStore(t, Options{})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	synthetic(t, st, start, 10*time.Second, 360, 50)
	end := start.Add(time.Hour)

	one := NewEngine(st.Queryable(), Limits{Concurrency: 1, Timeout: 300 * time.Millisecond}, nil)
	var inner error
	err := one.Range(context.Background(), `container_cpu_usage_seconds_total`, start, end, time.Minute, func(r *Result) error {
		if m, ok := r.Value.(promql.Matrix); !ok || len(m) != 50 {
			return fmt.Errorf("%v, want 50 series", r.Value.Type())
		}
		// The only slot is this query's until use returns.
		inner = one.Instant(context.Background(), `vector(1)`, end, func(*Result) error { return nil })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inner, ErrBusy) {
		t.Errorf("a query while another's answer was being used: %v, want ErrBusy", inner)
	}

	api := NewAPI(st, NewEngine(st.Queryable(), Limits{}, nil), "test", nil)
	mux := http.NewServeMux()
	for p, h := range api.Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(q string) (int, response, int) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/v1/query_range?" + url.Values{
			"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"10"},
		}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var r response
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return resp.StatusCode, r, len(b)
	}
	code, r, size := get(`container_cpu_usage_seconds_total`)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %+v", code, r)
	}
	// 50 series of 361 points: about 24 bytes a point, as answerSize
	// reckons.
	if est := 50 * 361 * 24; size < est/2 || size > 2*est {
		t.Errorf("an answer of 18 050 points took %d bytes; answerSize reckons %d", size, est)
	}
	api.maxAnswer = int64(size) / 2
	code, r, _ = get(`container_cpu_usage_seconds_total`)
	if code != http.StatusUnprocessableEntity || r.ErrorType != errExec || !strings.Contains(r.Error, "larger step") {
		t.Errorf("an answer over the bound: HTTP %d %+v, want 422 execution", code, r)
	}
	if code, r, _ = get(`container_cpu_usage_seconds_total{name="c1"}`); code != http.StatusOK {
		t.Errorf("a small answer: HTTP %d %+v", code, r)
	}
	if n := api.pending.Load(); n != 0 {
		t.Errorf("%d bytes still counted as pending after every answer was read", n)
	}
}
