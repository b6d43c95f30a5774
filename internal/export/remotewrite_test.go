// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	writev2 "github.com/prometheus/client_golang/exp/api/remote/genproto/v2"
	"github.com/prometheus/prometheus/prompb"

	"github.com/crmon-dev/crmon/internal/config"
)

// rwStore is a remote-write 2.0 and 1.0 receiver's storage behind
// client_golang's write handler, with failures to answer on demand.
type rwStore struct {
	mu       sync.Mutex
	values   map[string]map[int64]float64
	types    []remote.WriteMessageType
	failures []int // statuses to answer, one per request, before storing
	auth     []string
}

func (s *rwStore) Store(r *http.Request, typ remote.WriteMessageType) (*remote.WriteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization")+" "+r.Header.Get("X-Scope-OrgID"))
	resp := remote.NewWriteResponse()
	if len(s.failures) > 0 {
		st := s.failures[0]
		s.failures = s.failures[1:]
		resp.SetStatusCode(st)
		if st == http.StatusTooManyRequests {
			resp.SetExtraHeader("Retry-After", "2")
		}
		return resp, errors.New("injected failure: out of \"cheese\"\n" + strings.Repeat("x", 4000))
	}
	s.types = append(s.types, typ)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	add := func(ls map[string]string, ts int64, v float64) {
		id := labelString(ls)
		if s.values[id] == nil {
			s.values[id] = map[int64]float64{}
		}
		s.values[id][ts] = v
		resp.Samples++
	}
	switch typ {
	case remote.WriteV2MessageType:
		var req writev2.Request
		if err := req.UnmarshalVT(body); err != nil {
			return nil, err
		}
		for _, ts := range req.Timeseries {
			ls := map[string]string{}
			for i := 0; i < len(ts.LabelsRefs); i += 2 {
				ls[req.Symbols[ts.LabelsRefs[i]]] = req.Symbols[ts.LabelsRefs[i+1]]
			}
			for _, smp := range ts.Samples {
				add(ls, smp.Timestamp, smp.Value)
			}
		}
	default:
		var req prompb.WriteRequest
		if err := req.Unmarshal(body); err != nil {
			return nil, err
		}
		for _, ts := range req.Timeseries {
			ls := map[string]string{}
			for _, l := range ts.Labels {
				ls[l.Name] = l.Value
			}
			for _, smp := range ts.Samples {
				add(ls, smp.Timestamp, smp.Value)
			}
		}
	}
	return resp, nil
}

// TestRemoteWrite2AndFailures sends remote write 2.0 to client_golang's
// receiver, which answers 503, 429 (Retry-After: 2) and a 400 before it
// stores: the 5xx and 429 are retried with backoff, the 400 is not (its
// batch counts as failed and the message is cut for the log), and what is
// stored matches what the agent served, with credentials and headers.
func TestRemoteWrite2AndFailures(t *testing.T) {
	store := &rwStore{values: map[string]map[int64]float64{}, failures: []int{503, 429, 400}}
	srv := httptest.NewServer(remote.NewWriteHandler(store, remote.MessageTypes{remote.WriteV2MessageType, remote.WriteV1MessageType}))
	defer srv.Close()

	a := newTestAgent(t)
	c := exporterConfig("rw2", config.ExporterPrometheus, srv.URL+"/api/v1/write")
	c.Credentials = config.Credentials{Token: "t0ken"}
	c.Headers = map[string]config.Secret{"X-Scope-OrgID": "ci"}
	var logs strings.Builder
	var logMu sync.Mutex
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "h", Logger: logTo(&logMu, &logs)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)

	// The first batch meets 503 and 429; the ticks after it go on.
	tickN(t, a, 3)
	waitFor(t, 10*time.Second, "the recorder to read 3 ticks", rec.String, func() bool { return rec.ticks() == 3 })
	first := uint64(rec.total())
	waitFor(t, 20*time.Second, "the first batch to be refused after two retries", e.counts, func() bool { return e.failed.Load() == first })
	if e.retried.Load() != 2*first {
		t.Errorf("retried %d samples, want the batch twice (%d)", e.retried.Load(), 2*first)
	}
	tickN(t, a, 5)
	waitFor(t, 10*time.Second, "the recorder to read 8 ticks", rec.String, func() bool { return rec.ticks() == 8 })
	want := uint64(rec.total()) - first
	waitFor(t, 10*time.Second, "the rest to be sent", e.counts, func() bool { return e.sent.Load() == want })

	store.mu.Lock()
	defer store.mu.Unlock()
	for _, typ := range store.types {
		if typ != remote.WriteV2MessageType {
			t.Errorf("a %s request to a 2.0 receiver", typ)
		}
	}
	for _, a := range store.auth {
		if a != "Bearer t0ken ci" {
			t.Errorf("Authorization and X-Scope-OrgID: %q", a)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	stored := 0
	for id, ws := range rec.values {
		for ms, v := range ws {
			if g, ok := store.values[id][ms]; ok {
				stored++
				if g != v {
					t.Errorf("%s at %d: %v, served %v", id, ms, g, v)
				}
			}
		}
	}
	if uint64(stored) != want {
		t.Errorf("%d of the served samples stored, want %d", stored, want)
	}
	logMu.Lock()
	defer logMu.Unlock()
	l := logs.String()
	for _, w := range []string{"HTTP 503", "HTTP 429", "in=2s", `the receiver refused the batch; not retrying`, `HTTP 400: server returned HTTP status 400 Bad Request: injected failure: out of \"cheese\" xxx`, "… (cut)"} {
		if !strings.Contains(l, w) {
			t.Errorf("the log lacks %q:\n%s", w, l)
		}
	}
	if strings.Contains(l, "t0ken") || strings.Contains(l, strings.Repeat("x", 600)) {
		t.Errorf("the log has the token or an uncut message:\n%s", l)
	}
}

// TestRemoteWriteAutoFallsBackOn415: a receiver that refuses the 2.0
// content type gets 1.0 from then on, and nothing is lost.
func TestRemoteWriteAutoFallsBackOn415(t *testing.T) {
	store := &rwStore{values: map[string]map[int64]float64{}}
	srv := httptest.NewServer(remote.NewWriteHandler(store, remote.MessageTypes{remote.WriteV1MessageType}))
	defer srv.Close()
	a := newTestAgent(t)
	set := mustStart(t, a, []config.Exporter{exporterConfig("rw", config.ExporterPrometheus, srv.URL)}, Options{Hostname: "h", Logger: testLogger(t)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	tickN(t, a, 4)
	waitFor(t, 10*time.Second, "the recorder to read 4 ticks", rec.String, func() bool { return rec.ticks() == 4 })
	want := uint64(rec.total())
	waitFor(t, 10*time.Second, "every sample to be sent", e.counts, func() bool { return e.sent.Load() == want })
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.types) == 0 || e.failed.Load() != 0 || e.retried.Load() != 0 {
		t.Errorf("stored %d requests; %s", len(store.types), e.counts())
	}
	for _, typ := range store.types {
		if typ != remote.WriteV1MessageType {
			t.Errorf("stored a %s request", typ)
		}
	}
}
