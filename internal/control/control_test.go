// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package control

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestListen checks the socket's mode, owner and directory, that a live
// agent's socket is never taken over, that a dead one's is, and that the
// peer's credentials reach the handler.
func TestListen(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "run", "crmon")
	path := filepath.Join(dir, "crmon.sock")
	l, err := Listen(path, 65534)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Mode&0o777 != 0o660 || st.Uid != 0 || st.Gid != 65534 {
		t.Errorf("socket mode %o owner %d:%d, want a socket 660 0:65534", st.Mode, st.Uid, st.Gid)
	}
	if err := syscall.Stat(dir, &st); err != nil || st.Mode&0o777 != 0o755 || st.Uid != 0 {
		t.Errorf("directory mode %o owner %d (%v), want 755 root", st.Mode&0o777, st.Uid, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the socket alone", len(ents))
	}

	got := make(chan Peer, 1)
	srv := &http.Server{ConnContext: ConnContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PeerFrom(r.Context())
		got <- p
	})}
	go srv.Serve(l)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	p := <-got
	if p.PID != os.Getpid() || p.UID != uint32(os.Getuid()) {
		t.Errorf("peer %+v, want pid %d uid %d", p, os.Getpid(), os.Getuid())
	}
	// The connection's pidfd names this process.
	fd, err := p.OpenPidfd()
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	syscall.Close(fd)
	if !strings.Contains(string(info), fmt.Sprintf("Pid:\t%d\n", os.Getpid())) {
		t.Errorf("peer pidfd: fdinfo %q, want Pid %d", info, os.Getpid())
	}

	if _, err := Listen(path, 0); err == nil || !strings.Contains(err.Error(), "another agent is serving") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	srv.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	// A socket left by an agent that died is replaced.
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	l2, err := Listen(path, 0)
	if err != nil {
		t.Fatalf("Listen over a dead socket: %v", err)
	}
	l2.Close()

	// Anything else in its place is not removed.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
}
