// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// as sends a request to m as peer, the way the control socket hands it
// over, and returns the status and body.
func as(m http.Handler, peer control.Peer, method, path, body string) (int, string) {
	r := httptest.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	r = r.WithContext(control.WithPeer(r.Context(), peer))
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

var (
	root = control.Peer{UID: 0, GID: 0}
	user = control.Peer{UID: 65534, GID: 65534}
	// other is a second non-root user.
	other = control.Peer{UID: 65533, GID: 65533}
)

// TestStartRequestChecked checks that what a start request says is either
// taken as said or refused with the allowed values: nothing is dropped,
// clamped or widened silently.
func TestStartRequestChecked(t *testing.T) {
	m := sessions.NewManager(sessions.ManagerOptions{Hierarchy: &cgroups.Hierarchy{Unified: t.TempDir()}})
	defer m.Close()
	for _, tc := range []struct {
		name string
		peer control.Peer
		body string
		code int
		msg  string
	}{
		{"trailing object", root, `{"name":"x2"}{"name":"x3"}`, 400, "trailing data"},
		{"trailing garbage", root, `{"name":"x2"} x`, 400, "trailing data"},
		{"negative interval", root, `{"name":"a","sample_interval_seconds":-5}`, 400, "0.05 to 3600"},
		{"huge interval", root, `{"name":"a","sample_interval_seconds":1e308}`, 400, "0.05 to 3600"},
		{"tiny interval", root, `{"name":"a","sample_interval_seconds":1e-9}`, 400, "0.05 to 3600"},
		{"lease too long", root, `{"name":"a","lease_seconds":1e9}`, 400, "1 to 86400"},
		{"lease and client", root, `{"name":"a","lease_seconds":5,"end_with_client":true}`, 400, "not both"},
		{"whole host as a user", user, `{"name":"a","cgroup":"/"}`, 403, "only root"},
		{"whole host as new", root, `{"name":"a","cgroup":"/","new_cgroup":true}`, 400, "new_cgroup"},
		{"new without cgroup", root, `{"name":"a","new_cgroup":true}`, 400, "needs a cgroup"},
		{"long name", root, `{"name":"` + strings.Repeat("n", 129) + `"}`, 400, "1-128"},
		{"name charset", root, `{"name":"a b"}`, 400, "1-128"},
		{"name dots", root, `{"name":".."}`, 400, "1-128"},
		{"too many selectors", root, `{"name":"a","containers":[` + strings.Repeat(`"l",`, 32) + `"l"]}`, 400, "at most 32"},
		{"big body", root, `{"name":"a","containers":["` + strings.Repeat("x", 70<<10) + `"]}`, 400, "more than 65536 bytes"},
		{"unknown field", root, `{"name":"a","cgroups":"/x"}`, 400, "unknown field"},
		{"end with client, no pid", root, `{"name":"a","end_with_client":true}`, 400, "cannot see the client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := as(m, tc.peer, "POST", "/api/v1/sessions", tc.body)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Errorf("POST %.80s: HTTP %d %s, want %d and %q", tc.body, code, body, tc.code, tc.msg)
			}
		})
	}
	if code, body := as(m, root, "GET", "/api/v1/sessions", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("sessions after refused starts: %d %s", code, body)
	}
	// Without peer credentials (not the control socket) nothing is served.
	r := httptest.NewRequest("GET", "http://localhost/api/v1/sessions", nil)
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("request without peer credentials: HTTP %d, want 403", w.Code)
	}
}

// TestSessionOwnership checks that a user sees, renews and stops only
// their own sessions, root every one, and that each user has a quota of
// their own while root may use every slot.
func TestSessionOwnership(t *testing.T) {
	m := sessions.NewManager(sessions.ManagerOptions{Hierarchy: &cgroups.Hierarchy{Unified: t.TempDir()}, MaxSessions: 5, MaxPerUser: 2})
	defer m.Close()
	start := func(p control.Peer, name string) (int, string) {
		return as(m, p, "POST", "/api/v1/sessions", `{"name":"`+name+`"}`)
	}
	if code, body := start(root, "root-run"); code != 201 {
		t.Fatalf("root start: %d %s", code, body)
	}
	for _, n := range []string{"u1", "u2"} {
		if code, body := start(user, n); code != 201 {
			t.Fatalf("user start %s: %d %s", n, code, body)
		}
	}
	if code, body := start(user, "u3"); code != http.StatusTooManyRequests || !strings.Contains(body, "max_sessions_per_user") {
		t.Errorf("user's third session: %d %s, want 429 naming max_sessions_per_user", code, body)
	}
	// Another user's quota is their own.
	if code, body := start(other, "o1"); code != 201 {
		t.Errorf("other user's first session: %d %s", code, body)
	}
	// Root is bound by the global limit only.
	if code, body := start(root, "root-2"); code != 201 {
		t.Errorf("root's second session: %d %s", code, body)
	}
	if code, _ := start(root, "root-3"); code != http.StatusTooManyRequests {
		t.Errorf("beyond max_sessions: %d, want 429", code)
	}

	var list []session.Info
	_, body := as(m, user, "GET", "/api/v1/sessions", "")
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.OwnerUID != user.UID {
			t.Errorf("user's list shows %s of uid %d", in.Name, in.OwnerUID)
		}
	}
	if len(list) != 2 {
		t.Errorf("user's list: %+v, want u1 and u2", list)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/sessions/root-run"},
		{"POST", "/api/v1/sessions/root-run/renew"},
		{"POST", "/api/v1/sessions/root-run/stop"},
		{"DELETE", "/api/v1/sessions/root-run"},
		{"DELETE", "/api/v1/sessions/o1"},
	} {
		if code, body := as(m, user, tc.method, tc.path, ""); code != http.StatusForbidden {
			t.Errorf("user %s %s: %d %s, want 403", tc.method, tc.path, code, body)
		}
	}
	if code, _ := as(m, root, "GET", "/api/v1/sessions/root-run", ""); code != 200 {
		t.Errorf("root-run gone after the user's attempts: %d", code)
	}
	if code, body := as(m, user, "DELETE", "/api/v1/sessions/u1", ""); code != http.StatusNoContent {
		t.Errorf("user deletes own session: %d %s", code, body)
	}
	if code, body := as(m, root, "POST", "/api/v1/sessions/u2/stop", ""); code != 200 {
		t.Errorf("root stops the user's session: %d %s", code, body)
	}
	_, body = as(m, root, "GET", "/api/v1/sessions", "")
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("root's list: %+v, want root-run, root-2 and o1", list)
	}
}

// TestLeaseExpires checks that a session whose lease is not renewed is
// ended within the lease and the sweep, and one renewed in time is not.
func TestLeaseExpires(t *testing.T) {
	m := sessions.NewManager(sessions.ManagerOptions{Hierarchy: &cgroups.Hierarchy{Unified: t.TempDir()}, AbandonedAfter: time.Second})
	defer m.Close()
	for _, n := range []string{"left", "kept"} {
		if code, body := as(m, user, "POST", "/api/v1/sessions", `{"name":"`+n+`"}`); code != 201 {
			t.Fatalf("start %s: %d %s", n, code, body)
		}
	}
	// The lease is 1 s and the sweep runs every 250 ms: "left" must be
	// gone within 1.25 s of its start; a busy machine gets ten times that.
	deadline := time.Now().Add(12 * time.Second)
	for {
		if code, body := as(m, user, "POST", "/api/v1/sessions/kept/renew", ""); code != 200 {
			t.Fatalf("renewing kept: %d %s", code, body)
		}
		code, _ := as(m, user, "GET", "/api/v1/sessions/left", "")
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a session whose lease ran out is still listed after 12 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := as(m, user, "GET", "/api/v1/sessions/kept", ""); code != 200 {
		t.Errorf("a renewed session was ended: %d %s", code, body)
	}
}

// TestOwnerProcessExits checks that a session tied to its client process
// ends when that process dies by SIGKILL, and that what runs on in the
// cgroup made for it is killed and the cgroup removed in every hierarchy.
func TestOwnerProcessExits(t *testing.T) {
	srv, h := newServerWith(t, sessions.ManagerOptions{AbandonedAfter: 30 * time.Second})
	cg, err := runner.NewCgroup(h, testenv.CgroupParent, fmt.Sprintf("owner-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cg.Kill(); _ = cg.Remove() }()
	// The orphan: a process in the session's cgroup that outlives the
	// client.
	orphan := exec.Command("sleep", "300")
	orphan.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true}
	fd, err := os.Open(cg.V2Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	orphan.SysProcAttr.CgroupFD = int(fd.Fd())
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	orphanDone := make(chan struct{})
	go func() { orphan.Wait(); close(orphanDone) }()
	defer orphan.Process.Kill()
	for ctrl, dir := range cg.V1Dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(orphan.Process.Pid)), 0); err != nil {
			t.Fatalf("joining %s: %v", ctrl, err)
		}
	}
	// The client: a process of its own, so that it can die.
	client := exec.Command("sleep", "300")
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Process.Kill()
	info, err := srv.m.Start(control.Peer{PID: client.Process.Pid}, session.StartRequest{
		Name: "owned", Cgroup: cg.Path, NewCgroup: true, V1Cgroup: len(cg.V1Dirs) > 0, EndWithClient: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.OwnerPID != client.Process.Pid || info.LeaseSeconds != 0 {
		t.Errorf("info = %+v, want owner_pid %d and no lease", info, client.Process.Pid)
	}
	time.Sleep(1500 * time.Millisecond)
	if list, _ := session.List(context.Background(), srv.URL, nil); len(list) != 1 {
		t.Fatalf("a session whose client lives was ended: %+v", list)
	}
	client.Process.Kill()
	client.Wait()
	// Ended at the next sweep, within a second; 30 s is the bound.
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := session.List(context.Background(), srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still listed 30 s after its client died: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-orphanDone:
	case <-time.After(5 * time.Second):
		t.Error("the orphan in the session's cgroup still runs")
	}
	for _, d := range append([]string{cg.V2Dir}, mapDirs(cg.V1Dirs)...) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still there: %v", d, err)
		}
	}
}

func mapDirs(m map[string]string) []string {
	var out []string
	for _, d := range m {
		out = append(out, d)
	}
	return out
}
