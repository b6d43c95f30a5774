// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// promMatrix is /api/v1/query's answer to a range selector.
type promMatrix struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// promSamples reads back every raw sample Prometheus holds for job="crmon"
// and instance=host.
func promSamples(t *testing.T, addr, host string) map[string]map[int64]float64 {
	t.Helper()
	q := url.Values{"query": {fmt.Sprintf(`{job="crmon",instance=%q}[1h]`, host)}}
	var m promMatrix
	testenv.GetJSON(t, "http://"+addr+"/api/v1/query?"+q.Encode(), &m)
	got := map[string]map[int64]float64{}
	for _, r := range m.Data.Result {
		id := labelString(r.Metric)
		got[id] = map[int64]float64{}
		var last int64
		for _, v := range r.Values {
			ms := int64(v[0].(float64)*1000 + 0.5)
			if ms <= last {
				t.Errorf("%s: timestamps out of order: %d after %d", id, ms, last)
			}
			last = ms
			f, err := strconv.ParseFloat(v[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			got[id][ms] = f
		}
	}
	return got
}

// compareSamples reports every sample served but missing or different in
// got, and returns how many matched.
func compareSamples(t *testing.T, want, got map[string]map[int64]float64) int {
	t.Helper()
	n, bad := 0, 0
	for id, ws := range want {
		for ms, v := range ws {
			g, ok := got[id][ms]
			switch {
			case !ok:
				bad++
				if bad <= 10 {
					t.Errorf("missing: %s at %d (= %v)", id, ms, v)
				}
			case g != v:
				bad++
				if bad <= 10 {
					t.Errorf("%s at %d: got %v, served %v", id, ms, g, v)
				}
			default:
				n++
			}
		}
	}
	if bad > 10 {
		t.Errorf("… %d samples missing or different in all", bad)
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("the receiver has a series crmon did not serve: %s", id)
		}
	}
	return n
}

// TestRemoteWriteToPrometheus sends through Debian's Prometheus receiver,
// once per remote write version setting, and reads every sample back
// through its query API: each series crmon served, at each tick's
// timestamp, with the exporter's labels.
func TestRemoteWriteToPrometheus(t *testing.T) {
	for _, version := range config.RemoteWriteVersions {
		t.Run(version, func(t *testing.T) {
			prom := testenv.StartPrometheus(t)
			a := newTestAgent(t)
			c := exporterConfig("rw", config.ExporterPrometheus, prom.WriteURL())
			c.RemoteWriteVersion = version
			c.Labels = map[string]string{"cluster": "ci-eu"}
			set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "test-host", Logger: testLogger(t)})
			defer set.Close()
			e := set.exporters[0]
			rec := recordServed(t, a, e.labels)
			tickN(t, a, 20)
			waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 20 })
			want := uint64(rec.total())
			if version == config.RemoteWrite2 {
				// Prometheus 2.42 takes 1.0 only: a 2.0 request is
				// written as nothing, which the API refuses to call a
				// success, so nothing is delivered and all is failed.
				waitFor(t, 20*time.Second, "the 2.0 batches to fail", e.counts, func() bool { return e.failed.Load() == want })
				if e.sent.Load() != 0 {
					t.Errorf("sent %d samples in 2.0 to a 1.0 receiver", e.sent.Load())
				}
				return
			}
			waitFor(t, 20*time.Second, "every sample to be sent", e.counts, func() bool { return e.sent.Load() == want })
			rec.mu.Lock()
			defer rec.mu.Unlock()
			got := promSamples(t, prom.Addr, "test-host")
			if n := compareSamples(t, rec.values, got); uint64(n) != want {
				t.Errorf("%d samples read back, want %d", n, want)
			}
			if e.failed.Load() != 0 || e.bytes.Load() == 0 || e.lastSuccess.Load() == 0 {
				t.Errorf("failed %d, bytes %d, last success %d", e.failed.Load(), e.bytes.Load(), e.lastSuccess.Load())
			}
		})
	}
}

// TestRemoteWriteOutage stops the receiver for 60 s while the agent ticks
// every second: every sample produced meanwhile arrives once it is back,
// in timestamp order per series (promSamples checks), and the ticks stay
// on schedule throughout.
func TestRemoteWriteOutage(t *testing.T) {
	prom := testenv.StartPrometheus(t)
	a := newTestAgent(t)
	c := exporterConfig("rw", config.ExporterPrometheus, prom.WriteURL())
	c.RemoteWriteVersion = config.RemoteWrite1
	c.FlushInterval = config.Duration(time.Second)
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "outage-host", Logger: testLogger(t)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()

	time.Sleep(5 * time.Second)
	prom.Stop()
	down := time.Now()
	time.Sleep(60 * time.Second)
	queued := e.q.len()
	prom.Start()
	t.Logf("receiver down for %v; %d samples queued; %s", time.Since(down).Round(time.Millisecond), queued, e.counts())
	if queued == 0 || e.retried.Load() == 0 {
		t.Errorf("nothing queued or retried during the outage: %s", e.counts())
	}
	time.Sleep(3 * time.Second)
	cancel()
	<-ran
	<-rec.done
	want := uint64(rec.total())
	// Retries back off up to 30 s, with jitter.
	waitFor(t, 45*time.Second, "every sample to be sent after the outage", e.counts, func() bool { return e.sent.Load() == want })
	got := promSamples(t, prom.Addr, "outage-host")
	if n := compareSamples(t, rec.values, got); uint64(n) != want {
		t.Errorf("%d samples read back, want %d", n, want)
	}
	if d := e.q.droppedTotal() + e.superseded.Load(); d != 0 || e.failed.Load() != 0 {
		t.Errorf("lost samples: %s", e.counts())
	}

	// Ticks on schedule: one per second, none skipped. The first tick is
	// Run's own, at once; the others fall on whole seconds, so the first
	// gap may be anything up to a second.
	var times []int64
	for ms := range rec.values[seriesID("test_step"+sep+"kind"+sep+"plain", e.labels)] {
		times = append(times, ms)
	}
	slices.Sort(times)
	if len(times) > 1 && times[1]-times[0] > 1500 {
		t.Errorf("ticks 0 and 1 are %d ms apart, more than the interval", times[1]-times[0])
	}
	for i := 2; i < len(times); i++ {
		if gap := times[i] - times[i-1]; gap < 500 || gap > 1500 {
			t.Errorf("ticks %d and %d are %d ms apart, not about 1 s", i-1, i, gap)
		}
	}
	t.Logf("%d ticks over %v", len(times), time.Duration(times[len(times)-1]-times[0])*time.Millisecond)
}
