// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// listenSocket serves h on a unix socket at path, made by this process.
func listenSocket(t *testing.T, path string, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestCheckSocket checks that only a socket no other user can have made
// or swapped is taken for the agent's.
func TestCheckSocket(t *testing.T) {
	// The checks run as anyone; giving files away needs root.
	testenv.RequireRoot(t)
	base := t.TempDir()
	mk := func(name string, dirUID int, dirMode os.FileMode, sockUID int) string {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "crmon.sock")
		listenSocket(t, p, http.NotFoundHandler())
		if err := os.Chown(p, sockUID, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, dirUID, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, dirMode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		dirUID  int
		dirMode os.FileMode
		sockUID int
		want    string
	}{
		{"root", 0, 0o755, 0, ""},
		{"sticky", 0, 0o777 | os.ModeSticky, 0, ""},
		{"user socket", 0, 0o755, 65534, "owned by uid 65534"},
		{"user dir", 65534, 0o755, 0, "directory " + base + "/user dir is owned by uid 65534"},
		{"open dir", 0, 0o777, 0, "writable by others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mk(tc.name, tc.dirUID, tc.dirMode, tc.sockUID)
			err := CheckSocket(p)
			if tc.want == "" && err != nil {
				t.Errorf("CheckSocket = %v, want nil", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CheckSocket = %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if err := CheckSocket(filepath.Join(base, "root")); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("CheckSocket(a directory) = %v", err)
	}
}

// TestForgedSocketNotUsed checks that a client never sends a request to a
// socket that fails CheckSocket.
func TestForgedSocketNotUsed(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "crmon.sock")
	var asked atomic.Int32
	listenSocket(t, p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"name":"forged"}`))
	}))
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if HealthyClient(ctx, nil, "unix://"+p, time.Second) {
		t.Error("HealthyClient = true for a user's socket")
	}
	if _, err := Start(ctx, Options{AgentURL: "unix://" + p, StartRequest: StartRequest{Name: "x"}}); err == nil || !strings.Contains(err.Error(), "not root") {
		t.Errorf("Start on a user's socket: %v, want refused", err)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the forged agent was asked %d times", n)
	}
}

// TestLeaseRenewed checks that a Session renews its lease while open and
// stops renewing once stopped or closed.
func TestLeaseRenewed(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "crmon.sock")
	var renewals atomic.Int32
	listenSocket(t, p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/sessions":
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(Info{Name: "it", LeaseSeconds: 0.3})
		case strings.HasSuffix(r.URL.Path, "/renew"):
			renewals.Add(1)
			_ = json.NewEncoder(w).Encode(Info{Name: "it", LeaseSeconds: 0.3})
		case strings.HasSuffix(r.URL.Path, "/stop"):
			_ = json.NewEncoder(w).Encode(Report{Name: "it"})
		}
	}))
	// The socket is this process'; it must be root's.
	testenv.RequireRoot(t)
	s, err := Start(context.Background(), Options{AgentURL: "unix://" + p, StartRequest: StartRequest{Name: "it"}})
	if err != nil {
		t.Fatal(err)
	}
	// Every 100 ms: at least 3 in a second even on a busy machine.
	time.Sleep(time.Second)
	if n := renewals.Load(); n < 3 {
		t.Errorf("%d renewals in 1 s of a 0.3 s lease", n)
	}
	if _, err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := renewals.Load()
	time.Sleep(300 * time.Millisecond)
	if m := renewals.Load(); m != n {
		t.Errorf("%d renewals after Stop", m-n)
	}
}
