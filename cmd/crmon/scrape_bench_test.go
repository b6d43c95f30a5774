// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/host"
	"github.com/crmon-dev/crmon/internal/web"
)

// BenchmarkScrape times one /metrics request against the agent's full
// collector set on this host, as it runs: `crmon run` defaults, whatever
// containers and cgroups the host has (start 50 idle containers first to
// reproduce the README's figure), probes on when running as root. Each
// scrape follows a tick (not timed).
//
//	go test -run '^$' -bench Scrape -benchtime 200x ./cmd/crmon
func BenchmarkScrape(b *testing.B) {
	app := newApp()
	cmd := runCommand()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range cmd.Flags {
		if err := f.Apply(fs); err != nil {
			b.Fatal(err)
		}
	}
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	c := cli.NewContext(app, fs, nil)
	logger := slog.New(slog.DiscardHandler)
	cfg, err := loadConfig(c)
	if err != nil {
		b.Fatal(err)
	}
	src, err := newSources(c, cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	a := agent.New(src.Collectors(), time.Second, logger)
	a.Tick(context.Background())
	time.Sleep(time.Second)
	a.Tick(context.Background())
	srv := httptest.NewServer(web.New(a, []prometheus.Collector{collectors.NewGoCollector(), host.NewSelfCollector("crmon")}, web.Options{Logger: logger}).Handler())
	defer srv.Close()
	for _, gz := range []bool{false, true} {
		name := "identity"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			var n int64
			for b.Loop() {
				// A tick between two scrapes, as at any interval
				// shorter than the scrape's: what the scrape can keep
				// from the last one is what a tick left unchanged.
				b.StopTimer()
				a.Tick(context.Background())
				b.StartTimer()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
				// Set either way: the transport would otherwise ask for
				// gzip itself and decompress on the client's time.
				if gz {
					req.Header.Set("Accept-Encoding", "gzip")
				} else {
					req.Header.Set("Accept-Encoding", "identity")
				}
				resp, err := srv.Client().Transport.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(n), "bytes/scrape")
		})
	}
}
