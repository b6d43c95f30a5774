// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

// TestSendErrorsHideEndpointSecrets: an endpoint that carries an API key
// in its query, or a password in its user info, is not written to the
// log when a send fails (net/http's errors quote the request's URL).
func TestSendErrorsHideEndpointSecrets(t *testing.T) {
	// A port nothing listens on: every send fails to connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, typ := range []string{config.ExporterCustom, config.ExporterPrometheus, config.ExporterInfluxDB, config.ExporterElasticsearch} {
		t.Run(typ, func(t *testing.T) {
			var mu sync.Mutex
			var logs strings.Builder
			a := newTestAgent(t)
			c := exporterConfig("leaky", typ, "http://user:PASSWORD-7f3a@"+addr+"/ingest?api_key=KEY-5e1c&tenant=ci")
			c.Timeout = config.Duration(time.Second)
			set := mustStart(t, a, []config.Exporter{c}, Options{Logger: logTo(&mu, &logs)})
			defer set.Close()
			e := set.exporters[0]
			tickN(t, a, 2)
			waitFor(t, 10*time.Second, "a failed send", e.counts, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return strings.Contains(logs.String(), "send failed")
			})
			mu.Lock()
			defer mu.Unlock()
			out := logs.String()
			for _, secret := range []string{"KEY-5e1c", "PASSWORD-7f3a", "api_key"} {
				if strings.Contains(out, secret) {
					t.Errorf("the log holds %q:\n%s", secret, out)
				}
			}
			if !strings.Contains(out, addr) {
				t.Errorf("the log should still name the receiver %s:\n%s", addr, out)
			}
		})
	}
}

// TestStartErrorsHideEndpointSecrets: an endpoint the exporter cannot use
// is named in the error without its password or query (url.Parse quotes
// the URL it refuses).
func TestStartErrorsHideEndpointSecrets(t *testing.T) {
	for _, typ := range []string{config.ExporterPrometheus, config.ExporterInfluxDB, config.ExporterElasticsearch} {
		c := exporterConfig("leaky", typ, "http://user:PASSWORD-7f3a@host:port/write?api_key=KEY-5e1c")
		_, err := newExporter(c, Options{Logger: testLogger(t)})
		if err == nil {
			t.Errorf("%s: an endpoint with a bad port was accepted", typ)
			continue
		}
		t.Logf("%s: %v", typ, err)
		if strings.Contains(err.Error(), "PASSWORD-7f3a") || strings.Contains(err.Error(), "KEY-5e1c") || !strings.Contains(err.Error(), `exporter "leaky"`) {
			t.Errorf("%s: %v", typ, err)
		}
	}
}
