// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// Page serves the live page at "/" and its script and style under
// "/ui/", from the binary: many CI hosts have no route to a CDN. Any other
// path is not found.
func Page() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is part of the build
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/", "/ui/app.js", "/ui/app.css":
		default:
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Everything the page loads is its own: no inline script or
		// style, no other origin.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		if r.URL.Path == "/" {
			r2.URL.Path = "/index.html"
		} else {
			r2.URL.Path = r.URL.Path[len("/ui"):]
		}
		if r2.URL.Path == "/index.html" {
			// FileServer redirects /index.html to /; serve it directly.
			b, err := fs.ReadFile(sub, "index.html")
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(b)
			return
		}
		files.ServeHTTP(w, r2)
	})
}

// Routes are the hub's API handlers by path, read-only, for the agent's
// listeners.
func (h *Hub) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"/api/v1/live/events":    http.HandlerFunc(h.ServeEvents),
		"/api/v1/live/container": http.HandlerFunc(h.ServeHistory),
	}
}
