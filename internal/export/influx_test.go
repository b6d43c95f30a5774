// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/klauspost/compress/gzip"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

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
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "influx-host", Logger: testLogger(t)})
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
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "h", Logger: logTo(&logMu, &logs)})
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

// TestInfluxEncodeMatchesLibrary: the lines written from each series'
// rendered prefix are those the library's encoder writes sample by
// sample, escaping included, and its decoder reads them back; values the
// line protocol cannot carry are left out and counted.
func TestInfluxEncodeMatchesLibrary(t *testing.T) {
	in := newFamInterner([]label{{"instance", "ci 1"}, {"job", "crmon"}})
	mk := func(name string, ls ...string) *dto.MetricFamily {
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(0)}}
		for i := 0; i < len(ls); i += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(ls[i]), Value: proto.String(ls[i+1])})
		}
		return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{m}}
	}
	fams := []*dto.MetricFamily{
		mk("node_load1"),
		mk("container_memory_rss", "id", "/docker/a b", "name", "x,y=z", "image", ""),
		mk("node_filesystem_avail_bytes", "mountpoint", `C:\ "q"`, "device", "é"),
	}
	pts := in.families(fams)
	vals := []float64{1.5, math.NaN(), 1e-7}
	for i := range pts {
		pts[i].v = vals[i]
	}
	when := time.Unix(1765000000, 123456789)
	b := batch{chunks: []chunk{{t: when, pts: pts, from: 0, to: len(pts)}}, hi: uint64(len(pts))}
	for prec, p := range influxPrecisions {
		e := &Exporter{cfg: config.Exporter{Precision: prec}, log: testLogger(t)}
		ix := &influx{e: e, prec: p.p}
		got, skipped := ix.encode(b)
		if skipped != 1 {
			t.Errorf("%s: %d skipped, want 1 (NaN)", prec, skipped)
		}
		var enc lineprotocol.Encoder
		enc.SetPrecision(p.p)
		for i, pt := range pts {
			if i == 1 {
				continue
			}
			enc.StartLine(pt.s.name)
			for _, l := range pt.s.labels {
				if l.value != "" {
					enc.AddTag(l.name, l.value)
				}
			}
			enc.AddField("value", lineprotocol.MustNewValue(pt.v))
			enc.EndLine(when)
		}
		if err := enc.Err(); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(enc.Bytes()) {
			t.Errorf("%s:\n%s\nthe library writes:\n%s", prec, got, enc.Bytes())
		}
		dec := lineprotocol.NewDecoderWithBytes(got)
		n := 0
		for dec.Next() {
			if _, err := dec.Measurement(); err != nil {
				t.Fatal(err)
			}
			for {
				k, _, err := dec.NextTag()
				if err != nil {
					t.Fatal(err)
				}
				if k == nil {
					break
				}
			}
			_, v, err := dec.NextField()
			if err != nil || v.FloatV() != vals[map[int]int{0: 0, 1: 2}[n]] {
				t.Errorf("%s: line %d: %v %v", prec, n, v, err)
			}
			if _, err := dec.Time(p.p, time.Time{}); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 2 {
			t.Errorf("%s: %d lines decoded, want 2", prec, n)
		}
	}
}

// TestInfluxDB2ThroughDebians1x: Debian's InfluxDB is 1.6, which answers
// /api/v2/write with 404 (the 2.x compatibility endpoints came with 1.8),
// and no 2.x server is installable here. The stand-in is strict about
// what differs in 2.x: the path, org, bucket and precision as 2.x spells
// them, "Authorization: Token", a gzip body; it answers a refusal as 2.x
// does (JSON code and message); and it hands the body, unchanged, to the
// real 1.6 server's /write, so that what a 2.x server would parse (the
// line protocol is the same) is parsed and stored by InfluxDB itself, and
// read back through /query.
func TestInfluxDB2ThroughDebians1x(t *testing.T) {
	addr := testenv.InfluxDB(t, "crmon")
	v1prec := map[string]string{"ns": "n", "us": "u", "ms": "ms", "s": "s"}
	var refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		refuse := func(status int, code, msg string) {
			refused.Add(1)
			t.Errorf("stand-in refused a request: %s", msg)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
		}
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/api/v2/write":
			refuse(http.StatusNotFound, "not found", r.Method+" "+r.URL.Path)
			return
		case q.Get("org") != "ci" || q.Get("bucket") != "crmon" || v1prec[q.Get("precision")] == "":
			refuse(http.StatusBadRequest, "invalid", "org, bucket or precision: "+r.URL.RawQuery)
			return
		case r.Header.Get("Authorization") != "Token influx-t0ken":
			refuse(http.StatusUnauthorized, "unauthorized", "Authorization: "+r.Header.Get("Authorization"))
			return
		case r.Header.Get("Content-Encoding") != "gzip":
			refuse(http.StatusBadRequest, "invalid", "the body is not gzip")
			return
		}
		fwd, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
			"http://"+addr+"/write?db="+url.QueryEscape(q.Get("bucket"))+"&precision="+v1prec[q.Get("precision")], r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		fwd.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(fwd)
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("InfluxDB refused the body: %s %s", resp.Status, msg)
		}
		w.Header().Set("X-Influxdb-Version", "v2.7.11")
		w.WriteHeader(resp.StatusCode)
		w.Write(msg)
	}))
	defer srv.Close()
	a := newTestAgent(t)
	c := exporterConfig("influx2", config.ExporterInfluxDB, srv.URL)
	c.Org, c.Bucket, c.Precision = "ci", "crmon", "ns"
	c.Credentials.Token = "influx-t0ken"
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "influx2-host", Logger: testLogger(t)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	tickN(t, a, 10)
	waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 10 })
	want := uint64(rec.total())
	waitFor(t, 20*time.Second, "every sample to be sent", e.counts, func() bool { return e.sent.Load() == want })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := compareSamples(t, rec.values, influxSamples(t, addr, "crmon", "influx2-host")); uint64(n) != want || refused.Load() != 0 {
		t.Errorf("%d samples read back, want %d; %d requests refused", n, want, refused.Load())
	}
}
