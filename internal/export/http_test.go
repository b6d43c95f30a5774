// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestCompressBody checks the transport's gzip of a request body: the
// same bytes once decompressed, and a body over the bound refused.
func TestCompressBody(t *testing.T) {
	tr := &authTransport{gzip: true}
	body := strings.Repeat(`{"index":{"_id":"0123"}}`+"\n"+`{"metrics":{"a":1}}`+"\n", 5000)
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/_bulk", bytes.NewBufferString(body))
	if err := tr.compress(r); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	for _, get := range []func() (io.ReadCloser, error){func() (io.ReadCloser, error) { return r.Body, nil }, r.GetBody} {
		rc, _ := get()
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || string(got) != body {
			t.Fatalf("decompressed %d bytes (%v), want the %d sent", len(got), err, len(body))
		}
	}
	if n, _ := r.GetBody(); n == nil || r.ContentLength <= 0 || r.ContentLength >= int64(len(body)) {
		t.Errorf("ContentLength %d for a body of %d", r.ContentLength, len(body))
	}

	lw := &limitWriter{w: io.Discard, n: 10}
	if _, err := lw.Write(make([]byte, 10)); err != nil {
		t.Errorf("10 bytes of 10: %v", err)
	}
	if _, err := lw.Write(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "request body over") {
		t.Errorf("one byte over: %v, want an error", err)
	}
}
