// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

// TestRedirectsDoNotCarryCredentials: a receiver that answers with a
// redirect to another host gets no request there with the exporter's
// token, password or headers: exporters do not follow redirects, and say
// why the batch failed.
func TestRedirectsDoNotCarryCredentials(t *testing.T) {
	const token, header = "TOKEN-93bd", "HEADER-5a0e"
	// The other host: it records every request's credentials.
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization")+" X-Api-Key="+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	other.Start()
	t.Cleanup(other.Close)
	// Another loopback address: another host to net/http, which keeps
	// Authorization on a redirect to the same host only.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(receiver.Close)

	for _, typ := range []string{config.ExporterCustom, config.ExporterPrometheus, config.ExporterInfluxDB, config.ExporterElasticsearch} {
		for _, cred := range []string{"token", "basic"} {
			t.Run(typ+"/"+cred, func(t *testing.T) {
				mu.Lock()
				leaked = nil
				mu.Unlock()
				var lmu sync.Mutex
				var logs strings.Builder
				a := newTestAgent(t)
				c := exporterConfig("redirected", typ, receiver.URL+"/ingest")
				c.Timeout = config.Duration(2 * time.Second)
				c.MaxRetries = 1
				c.Headers = map[string]config.Secret{"X-Api-Key": header}
				if cred == "token" {
					c.Credentials.Token = token
				} else {
					c.Credentials.Username, c.Credentials.Password = "ci", token
				}
				set := mustStart(t, a, []config.Exporter{c}, Options{Logger: logTo(&lmu, &logs)})
				defer set.Close()
				e := set.exporters[0]
				tickN(t, a, 2)
				waitFor(t, 15*time.Second, "a batch sent or failed", e.counts, func() bool { return e.sent.Load()+e.failed.Load() > 0 })
				if e.sent.Load() > 0 {
					t.Errorf("a batch was delivered through the redirect: %s", e.counts())
				}
				mu.Lock()
				defer mu.Unlock()
				for _, l := range leaked {
					if strings.Contains(l, header) || strings.Contains(l, token) || strings.Contains(l, "Basic ") {
						t.Errorf("the other host got the exporter's credentials: %s", l)
					}
				}
				lmu.Lock()
				defer lmu.Unlock()
				if out := logs.String(); !strings.Contains(out, "do not follow redirects") {
					t.Errorf("the log does not say the receiver redirected:\n%s", out)
				}
			})
		}
	}
}
