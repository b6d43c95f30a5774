// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/internal/web"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// stuckCollector is a collector whose Collect and Close do not return
// until the test ends: one that waits on work that never finishes (a read
// of a hung mount, say). A scrape through it never ends on its own.
type stuckCollector struct {
	inCollect chan struct{}
	release   chan struct{}
}

func (s *stuckCollector) Name() string                            { return "stuck" }
func (s *stuckCollector) Update(context.Context, time.Time) error { return nil }
func (s *stuckCollector) Describe(chan<- *prometheus.Desc)        {}
func (s *stuckCollector) Fill(*metrics.ResourceMetrics)           {}
func (s *stuckCollector) Close() error                            { <-s.release; return nil }
func (s *stuckCollector) Collect(chan<- prometheus.Metric) {
	select {
	case s.inCollect <- struct{}{}:
	default:
	}
	<-s.release
}

var _ collect.Collector = (*stuckCollector)(nil)

// TestShutdownIsBounded stops a server with a scrape in flight that never
// ends, over sources whose Close never returns: shutdown cuts the scrape's
// connection and returns within its budget instead of waiting for either.
func TestShutdownIsBounded(t *testing.T) {
	stuck := &stuckCollector{inCollect: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(stuck.release)
	logger := slog.New(slog.DiscardHandler)
	a := agent.New([]collect.Collector{stuck}, time.Second, logger)
	srv := web.New(a, nil, web.Options{ListenAddress: "127.0.0.1:0", Logger: logger})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	scraped := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/metrics", nil)
		// The protobuf format gathers through the collectors' Collect.
		req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		scraped <- err
	}()
	select {
	case <-stuck.inCollect:
	case <-time.After(10 * time.Second):
		t.Fatal("the scrape did not reach the collector")
	}

	ran := make(chan error)
	close(ran) // no collection running
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- shutdown(srv, &sources{collectors: []collect.Collector{stuck}}, ran, logger) }()
	select {
	case <-done:
		t.Logf("shutdown returned after %v (budget %v)", time.Since(start), shutdownBudget)
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown still waiting 5s later, for the scrape or the collectors")
	}
	select {
	case err := <-scraped:
		if err == nil {
			t.Error("the scrape in flight completed; want its connection cut")
		}
	case <-time.After(5 * time.Second):
		t.Error("the scrape in flight was not cut")
	}
}

// TestRunStopsWithScrapesInFlight sends SIGTERM to an agent with its probes
// and containers collector on while scrapes are in flight: clients that
// sent half a request, clients that read /metrics a byte at a time, and a
// client that scrapes in a loop. The agent stops within a second, as the
// README promises, and has closed the connections it was still reading.
func TestRunStopsWithScrapesInFlight(t *testing.T) {
	testenv.RequireLong(t, "root and the probes")
	testenv.RequireRoot(t)
	p := startAgent(t, "--collection-interval", "1s")

	dial := func(req string) net.Conn {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if tc, ok := c.(*net.TCPConn); ok {
			// A window of a few bytes keeps the response in flight.
			_ = tc.SetReadBuffer(1)
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return c
	}
	var halfSent []net.Conn
	for range 4 {
		// The headers never end: the server waits for the rest.
		halfSent = append(halfSent, dial("GET /metrics HTTP/1.1\r\nHost: "+p.addr+"\r\n"))
	}
	for range 4 {
		c := dial("GET /metrics HTTP/1.1\r\nHost: " + p.addr + "\r\nAccept-Encoding: identity\r\n\r\n")
		go func() {
			b := make([]byte, 1)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	stopScraping := make(chan struct{})
	defer close(stopScraping)
	go func() {
		for {
			select {
			case <-stopScraping:
				return
			default:
			}
			resp, err := http.Get("http://" + p.addr + "/metrics")
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		d := time.Since(start)
		if err != nil {
			t.Errorf("crmon run after SIGTERM: %v\n%s", err, p.logs())
		}
		if d > time.Second {
			t.Errorf("SIGTERM took %v to stop the agent with scrapes in flight, want < 1s\n%s", d, p.logs())
		}
		t.Logf("stopped %v after SIGTERM", d.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("crmon run still running 10s after SIGTERM\n%s", p.logs())
	}
	// The connections whose requests never ended are closed: a read
	// ends at once. (The slow readers' responses may still be in the
	// kernel's buffers, on their way out.)
	for i, c := range halfSent {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("connection %d is still open after the agent stopped", i)
		}
	}
}
