// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// wide is a collector of n series with long label values: a /metrics of
// some n*300 bytes, more than the kernel buffers of a connection hold.
type wide struct {
	desc *prometheus.Desc
	n    int
}

func (wide) Name() string                            { return "wide" }
func (wide) Update(context.Context, time.Time) error { return nil }
func (wide) Fill(*metrics.ResourceMetrics)           {}
func (w wide) Describe(ch chan<- *prometheus.Desc)   { ch <- w.desc }
func (w wide) Collect(ch chan<- prometheus.Metric) {
	pad := strings.Repeat("x", 256)
	for i := range w.n {
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(i), fmt.Sprintf("%s-%d", pad, i))
	}
}

// stalled opens a connection that asks for path and never reads, with
// the smallest receive buffer, so that the answer stays in the agent.
func stalled(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path)
	return conn
}

// TestSlowReadersAreCutOff: clients that ask and do not read hold the
// agent's handlers only until the listener's write deadline. Before, ten
// of them took every /metrics slot for as long as they stayed connected,
// and Prometheus' scrapes were answered 503; a handler with no deadline
// of its own (the snapshot's) stayed blocked in Write for good.
func TestSlowReadersAreCutOff(t *testing.T) {
	testenv.RequireLong(t, "ten 9 MB scrapes")
	a := agent.New([]collect.Collector{
		wide{prometheus.NewDesc("test_wide", "Many long series.", []string{"k"}, nil), 30_000},
	}, time.Second, slog.New(slog.DiscardHandler))
	a.Tick(context.Background())
	// A handler without a write deadline of its own, like the snapshot,
	// with an answer larger than the connection's buffers.
	returned := make(chan error, 16)
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		var err error
		for range 16 {
			if _, err = w.Write(chunk); err != nil {
				break
			}
		}
		returned <- err
	})
	// Long enough for ten stalled scrapes to be gathered and held at
	// once on a busy machine; the test waits for that, not for a time.
	const deadline = 20 * time.Second
	s := New(a, nil, Options{ListenAddress: "127.0.0.1:0", ReadOnly: map[string]http.Handler{"/big": big}, WriteTimeout: deadline})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	base := "http://" + s.Addr()

	stalled(t, s.Addr(), "/big")
	select {
	case err := <-returned:
		if err == nil {
			t.Fatal("the unread answer was written whole: make it larger than the connection's buffers")
		}
	case <-time.After(deadline + time.Minute):
		t.Errorf("a handler writing to a client that does not read is still blocked a minute after the write deadline")
	}

	scrape := func() int {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Log(err)
			return 0
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Log(err)
			return 0
		}
		return resp.StatusCode
	}
	// Every slot taken by a client that does not read.
	slots := cap(s.metrics.inflight)
	for range slots {
		stalled(t, s.Addr(), "/metrics")
	}
	held := time.Now()
	for len(s.metrics.inflight) < slots {
		if time.Since(held) > deadline/2 {
			t.Fatalf("after %v, %d of the %d stalled scrapes hold a slot", deadline/2, len(s.metrics.inflight), slots)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := scrape(); code != http.StatusServiceUnavailable {
		t.Errorf("with every slot held: HTTP %d, want 503", code)
	}
	// They end at the write deadline; then Prometheus is answered again.
	for scrape() != http.StatusOK {
		if time.Since(held) > deadline+time.Minute {
			t.Fatalf("scrapes still refused %v after %d clients that do not read took every slot", time.Since(held).Round(time.Second), slots)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
