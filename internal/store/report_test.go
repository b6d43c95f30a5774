// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/crmon-dev/crmon/pkg/session"
)

func TestCounterIncrease(t *testing.T) {
	ss := []sample{{0, 5}, {10, 7}, {20, 12}, {30, 2}, {40, 4}}
	for _, c := range []struct {
		name     string
		from, to int64
		born     bool
		want     float64
	}{
		{"from a sample before the window", 5, 20, false, 7},
		{"across a reset", 5, 40, false, 7 + 2 + 2},
		{"begins inside, store recorded before: from 0", -10, 10, true, 7},
		{"begins inside, store began with it: from its first value", -10, 10, false, 2},
		{"nothing inside", 41, 50, false, 0},
	} {
		if got := counterIncrease(ss, c.from, c.to, c.born); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if pts := cumulative(ss, c.from, c.to, c.born); len(pts) > 0 && pts[len(pts)-1].v != c.want {
			t.Errorf("%s: cumulative ends at %v, want %v", c.name, pts[len(pts)-1].v, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	b := func(le string, n float64) labeledSamples {
		return labeledSamples{labels.FromStrings("le", le), []sample{{0, 0}, {10, n}}}
	}
	// 100 observations: 50 at or below 0.1, 90 at or below 1, 100 below +Inf.
	bs := []labeledSamples{b("0.1", 50), b("1.0", 90), b("+Inf", 100)}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.1}, {0.7, 0.1 + 0.9*0.5}, {0.99, 1}} {
		if got := quantile(c.q, bs, 0, 10, false); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestReportBoundsSamples: a report whose window holds more samples than
// it may read is refused (HTTP 422, as a query that would load too many),
// instead of growing the agent's heap with the window; within the bound,
// the same report is served.
func TestReportBoundsSamples(t *testing.T) {
	st := openStore(t, Options{})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var b strings.Builder
	for i := range 360 { // every 10 s for an hour: 720 samples of two containers, 1440 of the host's CPU
		b.Reset()
		b.WriteString("# TYPE container_cpu_usage_seconds_total counter\n")
		for _, n := range []int{1, 3} {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total{id=\"/docker/%d\",name=\"c%d\"} %d\n", n, n, 10*i*n)
		}
		b.WriteString("# TYPE node_cpu_seconds_total counter\n")
		for _, cpu := range []string{"0", "1"} {
			fmt.Fprintf(&b, "node_cpu_seconds_total{cpu=%q,mode=\"idle\"} %d\n", cpu, 5*i)
			fmt.Fprintf(&b, "node_cpu_seconds_total{cpu=%q,mode=\"user\"} %d\n", cpu, 5*i)
		}
		if err := st.appendText([]byte(b.String()), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	window := fmt.Sprintf("/api/v1/report?from=%d&to=%d", start.Unix(), start.Add(time.Hour).Unix())
	for _, c := range []struct {
		maxSamples int
		code       int
	}{
		{reportSampleCost * 500, http.StatusUnprocessableEntity},
		{reportSampleCost * 1000, http.StatusUnprocessableEntity}, // the host's samples count too
		{reportSampleCost * 3000, http.StatusOK},
	} {
		mux := http.NewServeMux()
		for p, h := range NewAPI(st, NewEngine(st.Queryable(), Limits{MaxSamples: c.maxSamples}, nil), "test", nil).Handlers() {
			mux.Handle(p, h)
		}
		srv := httptest.NewServer(mux)
		resp, err := http.Get(srv.URL + window)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			response
			Data *session.Report `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		srv.Close()
		if err != nil || resp.StatusCode != c.code {
			t.Errorf("MaxSamples %d: HTTP %d (%v) %+v, want %d", c.maxSamples, resp.StatusCode, err, r.response, c.code)
			continue
		}
		if c.code != http.StatusOK {
			if r.ErrorType != errExec || !strings.Contains(r.Error, "shorter window") {
				t.Errorf("MaxSamples %d: %+v, want an execution error that says to shorten the window", c.maxSamples, r.response)
			}
			continue
		}
		if r.Data == nil || len(r.Data.Containers) != 2 || r.Data.Host.CPUUsagePercent != 50 {
			t.Errorf("MaxSamples %d: %+v, want the report of both containers and the host's CPU at 50 %%", c.maxSamples, r.Data)
		}
	}
}
