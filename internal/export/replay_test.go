// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// sendTwice sends the same batch of a few ticks twice through c's sender,
// as a restart does with the batch it was sending when it was killed,
// and returns the second attempt's error.
func sendTwice(t *testing.T, c config.Exporter, host string) (ticks, series int, again error) {
	t.Helper()
	e, err := newExporter(c, Options{Hostname: host, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.s.close()
	openTestQueue(t, e)
	a := newTestAgent(t)
	in := newInterner(e.labels)
	const n = 5
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i := range n {
		src, err := a.Points(a.Tick(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		tk := &tick{t: t0.Add(time.Duration(i) * time.Second), pts: e.points(in, src)}
		series = len(tk.pts)
		e.q.push(tk, time.Now())
	}
	b := e.q.peek(n*series, false)
	send := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := e.s.send(ctx, b)
		return err
	}
	if err := send(); err != nil {
		t.Fatalf("sending the batch: %v", err)
	}
	return n, series, send()
}

// TestReplayStoredOnce: a batch sent twice, as a restart sends again the
// batch it was sending when it was killed, is stored once. Debian's
// Prometheus 2.42 refuses the whole second request with 400 "out of
// order sample" (each series' earlier samples are older than its last),
// which the exporter takes, for that batch only, as "already delivered";
// InfluxDB takes it, a point with the same measurement, tags and time
// overwriting itself.
func TestReplayStoredOnce(t *testing.T) {
	t.Run("Prometheus", func(t *testing.T) {
		prom := testenv.StartPrometheus(t)
		c := exporterConfig("rw", config.ExporterPrometheus, prom.WriteURL())
		c.RemoteWriteVersion = config.RemoteWrite1
		ticks, series, again := sendTwice(t, c, "twice-host")
		var se *sendError
		if !errors.As(again, &se) || se.status != http.StatusBadRequest || !strings.Contains(se.msg, "out of order sample") {
			t.Errorf("the same batch again: %v; want Prometheus 2.42's 400 out of order sample", again)
		}
		got := promSamples(t, prom.Addr, "twice-host")
		if len(got) != series {
			t.Fatalf("%d series in Prometheus, sent %d", len(got), series)
		}
		for id, v := range got {
			if len(v) != ticks {
				t.Errorf("%s: %d samples, want %d", id, len(v), ticks)
			}
		}
	})
	t.Run("InfluxDB", func(t *testing.T) {
		addr := testenv.InfluxDB(t, "crmon")
		c := exporterConfig("influx", config.ExporterInfluxDB, "http://"+addr)
		c.Database, c.Precision = "crmon", "ms"
		ticks, series, again := sendTwice(t, c, "twice-host")
		if again != nil {
			t.Errorf("the same batch again: %v", again)
		}
		q := url.Values{"db": {"crmon"}, "q": {`SELECT count("value") FROM /.*/ WHERE "instance" = 'twice-host' GROUP BY *`}}
		var r struct {
			Results []struct {
				Error  string `json:"error"`
				Series []struct {
					Name   string            `json:"name"`
					Tags   map[string]string `json:"tags"`
					Values [][2]any          `json:"values"`
				} `json:"series"`
			} `json:"results"`
		}
		testenv.GetJSON(t, "http://"+addr+"/query?"+q.Encode(), &r)
		n := 0
		for _, res := range r.Results {
			if res.Error != "" {
				t.Fatal(res.Error)
			}
			for _, s := range res.Series {
				n++
				if got, _ := s.Values[0][1].(float64); got != float64(ticks) {
					t.Errorf("%s %v: %v points, want %d", s.Name, s.Tags, got, ticks)
				}
			}
		}
		// NaN (a histogram without observations) is not sent to InfluxDB.
		if n == 0 || n > series {
			t.Errorf("%d series in InfluxDB, sent %d", n, series)
		}
	})
}
