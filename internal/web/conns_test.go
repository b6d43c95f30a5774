// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestConnectionsAreBounded: connections beyond MaxConnections wait in
// the kernel's backlog, costing the agent nothing, and are served once
// others close.
func TestConnectionsAreBounded(t *testing.T) {
	const max = 8
	_, s := serve(t, Options{MaxConnections: max})
	var idle []net.Conn
	for range max {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		defer c.Close()
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(c)
	// Waiting a second shows the request is not served; how long it
	// waits is not what is tested.
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatalf("connection %d was served while %d others were open", max+1, max)
	}
	for _, ic := range idle {
		ic.Close()
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("connection %d not served after the others closed: %v", max+1, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: HTTP %d", resp.StatusCode)
	}
}
