// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnreadResponsesAreBounded: clients that ask and do not read hold
// their responses in the agent's memory only up to a total, beyond which
// others are answered 503, and only until the write deadline.
func TestUnreadResponsesAreBounded(t *testing.T) {
	st := openStore(t, Options{})
	start := time.Now().Add(-5 * time.Hour).Truncate(time.Minute)
	var b strings.Builder
	for i := range 2880 { // 100 series every 5 s for four hours: a response of about 8 MB
		b.Reset()
		b.WriteString("# TYPE container_cpu_usage_seconds_total counter\n")
		for n := range 100 {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total{id=\"/docker/%d\",name=\"c%d\"} %d\n", n, n, i*n)
		}
		if err := st.appendText([]byte(b.String()), start.Add(time.Duration(i)*5*time.Second).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	api := NewAPI(st, NewEngine(st.Queryable(), Limits{}, nil), "test", nil)
	// The unread response must still be pending when the second one has
	// been evaluated and encoded, which on a loaded machine took seconds:
	// a write deadline long enough for that, short enough to wait for.
	const writeTimeout = 8 * time.Second
	api.maxPending, api.writeTimeout = 10<<20, writeTimeout
	mux := http.NewServeMux()
	for p, h := range api.Handlers() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	path := "/api/v1/query_range?" + url.Values{
		"query": {"container_cpu_usage_seconds_total"},
		"start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(start.Add(4 * time.Hour).Unix())}, "step": {"5"},
	}.Encode()

	// A client that asks and does not read, with the smallest receive
	// buffer, so that the response stays in the agent.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	deadline := time.Now().Add(10 * time.Second)
	for api.pending.Load() < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the unread response is not pending: %d bytes", api.pending.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	get := func() (int, response) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	if code, r := get(); code != http.StatusServiceUnavailable || r.ErrorType != errUnavail || !strings.Contains(r.Error, "waiting for their clients") {
		t.Errorf("with a response of the same size unread: HTTP %d %s %q, want 503 unavailable", code, r.ErrorType, r.Error)
	}
	// The unread one ends at its write deadline; then there is room.
	deadline = time.Now().Add(writeTimeout + 10*time.Second)
	for api.pending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the unread response still pending after its write deadline: %d bytes", api.pending.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, r := get(); code != http.StatusOK {
		t.Errorf("after the write deadline: HTTP %d %s %q, want 200", code, r.ErrorType, r.Error)
	}
}
