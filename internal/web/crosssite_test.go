// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmon-dev/crmon/internal/testenv/browser"
)

// TestCrossSiteRequestsRefused: what a page of another site asks through
// its visitor's browser is refused, by what the browser says of it; the
// agent's own page, a link to it and clients that are not browsers are
// served, and every answer says nosniff.
func TestCrossSiteRequestsRefused(t *testing.T) {
	var hits atomic.Int64
	probe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	base, s := serve(t, Options{ReadOnly: map[string]http.Handler{"/api/v1/query": probe}})
	host := s.Addr()
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		code               int
	}{
		{"Prometheus", "GET", "/metrics", nil, http.StatusOK},
		{"curl", "POST", "/api/v1/query", nil, http.StatusOK},
		{"the page's own fetch", "GET", "/api/v1/snapshot", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, http.StatusOK},
		{"a bookmark", "GET", "/", map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, http.StatusOK},
		{"a link from elsewhere", "GET", "/", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, http.StatusOK},
		{"another site's fetch", "GET", "/api/v1/snapshot", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, http.StatusForbidden},
		{"another site's image", "GET", "/api/v1/query", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, http.StatusForbidden},
		{"another port's stream", "GET", "/api/v1/live/events", map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}, http.StatusForbidden},
		{"another site's form", "POST", "/api/v1/query", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, http.StatusForbidden},
		{"an older browser's POST", "POST", "/api/v1/query", map[string]string{"Origin": "http://attacker.example"}, http.StatusForbidden},
		{"an older browser, same origin", "POST", "/api/v1/query", map[string]string{"Origin": "http://" + host}, http.StatusOK},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %s %s: HTTP %d, want %d", tc.name, tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: %s %s: X-Content-Type-Options %q, want nosniff", tc.name, tc.method, tc.path, got)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("the query handler ran %d times, want 2 (curl's, and the same origin's)", n)
	}
}

// TestCrossSitePageInBrowser: in Chromium, a page of another site that
// fetches from the agent, loads its query API as an image and posts a
// form to it reaches no handler, while the agent's own live page loads
// and streams.
func TestCrossSitePageInBrowser(t *testing.T) {
	bctx := browser.New(t)
	var hits atomic.Int64
	probe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	base, _ := serve(t, Options{ReadOnly: map[string]http.Handler{"/api/v1/query": probe}})
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><body>
<img src="%[1]s/api/v1/query?query=up">
<form id=f method=POST action="%[1]s/api/v1/query" target=sink><input name=query value=up></form>
<iframe name=sink></iframe>
<script>
fetch("%[1]s/api/v1/query?query=up", {mode: "no-cors"}).catch(() => {});
new EventSource("%[1]s/api/v1/live/events");
document.getElementById("f").submit();
</script></body>`, base)
	}))
	t.Cleanup(attacker.Close)
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	// Another site: a name, where the agent is an address.
	if err := chromedp.Do(ctx, chromedp.Navigate(strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the image, the fetch, the stream and the form
	if n := hits.Load(); n != 0 {
		t.Errorf("another site's page reached the query handler %d times", n)
	}
	// The agent's own page still works.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`window.crmonStats && window.crmonStats.initBytes > 0`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(`#status`))
	if err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, bctx, "own-page.png")
	if status != "live" {
		t.Errorf("the agent's own page: status %q, want live", status)
	}
}
