// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// influxSamples reads back every sample InfluxDB holds in db for
// instance=host, as series id → ms → value.
func influxSamples(t *testing.T, addr, db, host string) map[string]map[int64]float64 {
	t.Helper()
	q := url.Values{"db": {db}, "epoch": {"ms"}, "q": {`SELECT "value" FROM /.*/ WHERE "instance" = '` + host + `' GROUP BY *`}}
	var r struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Name   string            `json:"name"`
				Tags   map[string]string `json:"tags"`
				Values [][2]json.Number  `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	testenv.GetJSON(t, "http://"+addr+"/query?"+q.Encode(), &r)
	got := map[string]map[int64]float64{}
	for _, res := range r.Results {
		if res.Error != "" {
			t.Fatal(res.Error)
		}
		for _, s := range res.Series {
			m := map[string]string{"__name__": s.Name}
			for k, v := range s.Tags {
				if v != "" {
					m[k] = v
				}
			}
			id := labelString(m)
			got[id] = map[int64]float64{}
			for _, v := range s.Values {
				ms, _ := v[0].Int64()
				f, err := v[1].Float64()
				if err != nil {
					t.Fatal(err)
				}
				got[id][ms] = f
			}
		}
	}
	return got
}

// TestInfluxDB1 writes to Debian's InfluxDB 1.x and reads every sample
// back through /query: each series crmon served, as a measurement with
// its labels and the exporter's as tags, at each tick's time.
func TestInfluxDB1(t *testing.T) {
	addr := testenv.InfluxDB(t, "crmon")
	a := newTestAgent(t)
	c := exporterConfig("influx", config.ExporterInfluxDB, "http://"+addr)
	c.Database, c.Precision = "crmon", "ms"
	c.Labels = map[string]string{"cluster": "ci-eu"}
	set, err := Start(a, []config.Exporter{c}, Options{Hostname: "influx-host", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	tickN(t, a, 20)
	waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 20 })
	want := uint64(rec.total())
	waitFor(t, 20*time.Second, "every sample to be sent", e.counts, func() bool { return e.sent.Load() == want })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := influxSamples(t, addr, "crmon", "influx-host")
	if n := compareSamples(t, rec.values, got); uint64(n) != want {
		t.Errorf("%d samples read back, want %d", n, want)
	}
	if e.failed.Load() != 0 || e.bytes.Load() == 0 {
		t.Errorf("%s, %d bytes", e.counts(), e.bytes.Load())
	}
}

// TestInfluxDB2Request checks what a 2.x server receives: the
// /api/v2/write path with org, bucket and precision, the token as
// "Authorization: Token", a gzip body of valid lines; and that an
// endpoint that does not answer like InfluxDB is named in the log.
func TestInfluxDB2Request(t *testing.T) {
	var mu sync.Mutex
	var reqs []*http.Request
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Errorf("body is not gzip: %v", err)
			return
		}
		b, _ := io.ReadAll(zr)
		mu.Lock()
		reqs, bodies = append(reqs, r), append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	a := newTestAgent(t)
	c := exporterConfig("influx2", config.ExporterInfluxDB, srv.URL+"/")
	c.Org, c.Bucket, c.Precision = "ci", "crmon", "s"
	c.Credentials.Token = "influx-t0ken"
	var logs strings.Builder
	var logMu sync.Mutex
	set, err := Start(a, []config.Exporter{c}, Options{Hostname: "h", Logger: logTo(&logMu, &logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	e := set.exporters[0]
	tickN(t, a, 1)
	waitFor(t, 10*time.Second, "a request", e.counts, func() bool { return e.sent.Load() > 0 })
	mu.Lock()
	defer mu.Unlock()
	r := reqs[0]
	if r.URL.Path != "/api/v2/write" || r.URL.Query().Get("org") != "ci" || r.URL.Query().Get("bucket") != "crmon" || r.URL.Query().Get("precision") != "s" {
		t.Errorf("request to %s", r.URL)
	}
	if got := r.Header.Get("Authorization"); got != "Token influx-t0ken" {
		t.Errorf("Authorization: %q", got)
	}
	if !strings.Contains(bodies[0], `test_step,instance=h,job=crmon,kind=plain value=1 `) {
		t.Errorf("no test_step line in:\n%s", bodies[0])
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "the endpoint answers like another kind of server, not InfluxDB") || !strings.Contains(logs.String(), "exporter=influx2") {
		t.Errorf("no wrong-server line naming the exporter:\n%s", logs.String())
	}
}
