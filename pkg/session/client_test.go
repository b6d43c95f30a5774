// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// basicAuth adds credentials to every request, as a client configured for
// an agent behind basic auth does.
type basicAuth struct {
	user, pass string
	next       http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(r)
}

// TestHealthyClient checks that an agent served with TLS and basic auth is
// found healthy, and a session started on it, with the same client.
func TestHealthyClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"name":"it"}`))
	})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()
	plain := srv.Client()
	client := &http.Client{Transport: basicAuth{"ci", "secret", plain.Transport}}
	ctx := context.Background()

	if Healthy(ctx, srv.URL, time.Second) {
		t.Error("Healthy with a plain client = true for an agent with TLS and basic auth")
	}
	if HealthyClient(ctx, plain, srv.URL, time.Second) {
		t.Error("HealthyClient without credentials = true")
	}
	if !HealthyClient(ctx, client, srv.URL+"/", time.Second) {
		t.Fatal("HealthyClient with the agent's client = false")
	}
	s, err := Start(ctx, Options{AgentURL: srv.URL, HTTPClient: client, StartRequest: StartRequest{Name: "it"}})
	if err != nil {
		t.Fatalf("Start with the same client: %v", err)
	}
	if s.Name != "it" {
		t.Errorf("Start: name %q, want %q", s.Name, "it")
	}
}
