// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserRunsScript loads a page from a local server whose script
// writes into the document, so a pass means Chromium started, fetched over
// loopback and ran JavaScript; the screenshot is a real PNG.
func TestBrowserRunsScript(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>t</title><p id=out></p><script>document.getElementById("out").textContent = String(6*7)</script>`)
	}))
	defer srv.Close()
	bctx := New(t)
	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	out, err := chromedp.Run(ctx, chromedp.Text("#out"))
	if err != nil {
		t.Fatal(err)
	}
	if out != "42" {
		t.Fatalf("script wrote %q, want 42", out)
	}
	b, err := os.ReadFile(Screenshot(t, bctx, "page.png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || string(b[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(b))
	}
}
