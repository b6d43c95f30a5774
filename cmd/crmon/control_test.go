// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// nobody is the unprivileged user the tests act as.
const nobody = 65534

// sharedDir makes a root-owned directory, mode 0755, that nobody can
// traverse (a test's TempDir is 0700), with a copy of the crmon binary.
func sharedDir(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "crmon-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(crmonBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "crmon")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// asNobody runs bin ARGS as uid and gid 65534 with no other groups and
// returns stdout, stderr and the exit code.
func asNobody(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	setpriv := testenv.RequireCommand(t, "setpriv")
	return runArgv(t, append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
}

// TestControlSocketAsUser drives the agent's control socket as an
// unprivileged user beside root's session: the user may use the socket
// (its group), sees and stops only their own sessions, and has a quota of
// their own.
func TestControlSocketAsUser(t *testing.T) {
	requireRootRun(t)
	dir, bin := sharedDir(t)
	sock := filepath.Join(dir, "run", "crmon.sock")
	cfg := filepath.Join(dir, "crmon.toml")
	if err := os.WriteFile(cfg, []byte("[cleanroom.monitoring.sessions]\nmax_sessions_per_user = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "--config", cfg, "--ebpf", "disabled", "--collector.containers=false",
		"--control.socket", sock, "--control.socket-group", strconv.Itoa(nobody))
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || st.Uid != 0 || st.Gid != nobody {
		t.Errorf("socket mode %o owner %d:%d, want 660 0:%d", st.Mode&0o777, st.Uid, st.Gid, nobody)
	}
	if err := syscall.Stat(filepath.Dir(sock), &st); err != nil || st.Mode&0o777 != 0o755 || st.Uid != 0 {
		t.Errorf("socket directory mode %o owner %d: %v, want 755 root", st.Mode&0o777, st.Uid, err)
	}
	url := "--agent-url=unix://" + sock
	if _, stderr, code := run(t, "session", "start", url, "root-run"); code != 0 {
		t.Fatalf("root: session start: exit %d\n%s\n%s", code, stderr, a.logs())
	}

	out, stderr, code := asNobody(t, bin, "session", "list", url, "--json")
	if code != 0 {
		t.Fatalf("nobody: session list: exit %d\n%s", code, stderr)
	}
	if strings.Contains(out, "root-run") {
		t.Errorf("nobody's list shows root's session:\n%s", out)
	}
	for _, args := range [][]string{
		{"session", "stop", url, "-q", "root-run"},
		{"session", "stop", url, "-q", "--json", "-", "root-run"},
	} {
		out, stderr, code := asNobody(t, bin, args...)
		if code == 0 || !strings.Contains(stderr, "belongs to another user") || !strings.Contains(stderr, "HTTP 403") {
			t.Errorf("nobody: %s: exit %d, want refused with 403\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
	// The API itself, as the user: root's session can be neither read nor
	// deleted.
	curl := testenv.RequireCommand(t, "curl")
	for _, m := range []string{"GET", "DELETE"} {
		out, stderr, code := asNobody(t, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", sock, "-X", m, "http://localhost/api/v1/sessions/root-run")
		if code != 0 || out != "403" {
			t.Errorf("nobody: %s root's session: %q (curl exit %d %s), want 403", m, out, code, stderr)
		}
	}
	if out, stderr, code := asNobody(t, bin, "session", "start", url, "--lease", "1m", "u1"); code != 0 {
		t.Fatalf("nobody: session start u1: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := asNobody(t, bin, "session", "start", url, "u2"); code != 0 {
		t.Fatalf("nobody: session start u2: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := asNobody(t, bin, "session", "start", url, "u3"); code == 0 || !strings.Contains(stderr, "HTTP 429") {
		t.Errorf("nobody: third session: exit %d, want 429 (max_sessions_per_user = 2)\n%s", code, stderr)
	}
	if _, stderr, code := run(t, "session", "start", url, "root-2"); code != 0 {
		t.Errorf("root beyond the user's quota: exit %d\n%s", code, stderr)
	}

	infos, err := session.List(t.Context(), "unix://"+sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]uint32{}
	for _, in := range infos {
		owners[in.Name] = in.OwnerUID
	}
	if want := map[string]uint32{"root-run": 0, "root-2": 0, "u1": nobody, "u2": nobody}; fmt.Sprint(owners) != fmt.Sprint(want) {
		t.Errorf("root's list: %v, want %v", owners, want)
	}
	if _, stderr, code := asNobody(t, bin, "session", "stop", url, "-q", "u1"); code != 0 {
		t.Errorf("nobody stops own session: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := run(t, "session", "stop", url, "-q", "u2"); code != 0 {
		t.Errorf("root stops nobody's session: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := run(t, "session", "stop", url, "-q", "root-run"); code != 0 {
		t.Errorf("root-run was not running to the end: exit %d\n%s", code, stderr)
	}
}

// forgedAgent serves the session API and /healthz on ln as an impostor
// would, counting what it is asked.
func forgedAgent(t *testing.T, ln net.Listener) *atomic.Int32 {
	t.Helper()
	var asked atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		switch {
		case r.URL.Path == "/healthz":
			_, _ = w.Write([]byte("ok\n"))
		case strings.HasSuffix(r.URL.Path, "/stop"):
			_ = json.NewEncoder(w).Encode(session.Report{Name: "forged", Sources: []string{"forged"}})
		default:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(session.Info{Name: "forged"})
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &asked
}

// TestExecForgedAgent checks that crmon exec uses no agent it cannot trust:
// not one on a TCP port, where any local user may listen while no agent
// runs, and not a unix socket a user made.
func TestExecForgedAgent(t *testing.T) {
	requireRootRun(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp := forgedAgent(t, ln)

	// A socket made by a user, in a directory of theirs.
	dir, _ := sharedDir(t)
	udir := filepath.Join(dir, "user")
	if err := os.Mkdir(udir, 0o755); err != nil {
		t.Fatal(err)
	}
	usock := filepath.Join(udir, "crmon.sock")
	uln, err := net.Listen("unix", usock)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{usock, udir} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	unix := forgedAgent(t, uln)

	j := filepath.Join(t.TempDir(), "r.json")
	// The old default address, as a user's environment may still say.
	cmd := exec.Command(crmonBinary(t), "exec", "-q", "--json", j, "--", "true")
	cmd.Env = append(os.Environ(), "CRMON_AGENT_URL=http://"+ln.Addr().String())
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "control socket") {
		t.Errorf("exec with an agent on TCP: %v, want exit 2 naming the control socket\n%s", err, out)
	}

	_, stderr, code := run(t, "exec", "-q", "--agent-url=unix://"+usock, "--json", j, "--", "true")
	if code != 0 {
		t.Fatalf("exec beside a user's socket: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "not using the agent") || !strings.Contains(stderr, "not root") {
		t.Errorf("exec did not say why it ignored the user's socket:\n%s", stderr)
	}
	r := readReport(t, j)
	if strings.Contains(strings.Join(r.Sources, ","), "forged") || r.Name == "forged" {
		t.Errorf("the report came from the forged agent: %+v", r)
	}

	// On the agent's well-known port, when it is free to take.
	if wk, err := net.Listen("tcp", "127.0.0.1:9717"); err == nil {
		known := forgedAgent(t, wk)
		cmd := exec.Command(crmonBinary(t), "exec", "-q", "--agent-url=unix:///nonexistent/crmon.sock", "--json", j, "--", "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("exec with a forged agent on 9717: %v\n%s", err, out)
		}
		if n := known.Load(); n != 0 {
			t.Errorf("the forged agent on 127.0.0.1:9717 was asked %d times", n)
		}
	} else {
		t.Logf("127.0.0.1:9717 is taken (%v); checked the forged agent on %s only", err, ln.Addr())
	}
	if n, m := tcp.Load(), unix.Load(); n != 0 || m != 0 {
		t.Errorf("forged agents asked: TCP %d times, user's socket %d times", n, m)
	}
}

// TestExecKilledSessionEnds kills `crmon exec` with SIGKILL in the middle
// of a run through the agent: within the bound the agent ends the session,
// kills the orphan left in the run's cgroup and removes the cgroup in
// every hierarchy.
func TestExecKilledSessionEnds(t *testing.T) {
	requireRootRun(t)
	a := startAgent(t, "--ebpf", "disabled", "--collector.containers=false")
	pidFile := filepath.Join(t.TempDir(), "orphan.pid")
	cmd := exec.Command(crmonBinary(t), "exec", "-q", "--", "sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	cmd.Env = append(os.Environ(), "CRMON_AGENT_URL=unix://"+a.sock)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var orphan int
	for deadline := time.Now().Add(30 * time.Second); orphan == 0; {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			orphan, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		} else if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the run did not start within 30 s\n%s", stderr.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Cleanup(func() { syscall.Kill(orphan, syscall.SIGKILL) })
	infos, err := session.List(t.Context(), "unix://"+a.sock, nil)
	if err != nil || len(infos) != 1 || infos[0].OwnerPID != cmd.Process.Pid {
		t.Fatalf("sessions during the run: %+v, %v; want one owned by pid %d\n%s", infos, err, cmd.Process.Pid, a.logs())
	}
	cgPath := infos[0].Cgroup
	own, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", orphan))
	if err != nil || !strings.Contains(string(own), cgPath) {
		t.Fatalf("the orphan is not in the run's cgroup %s: %s %v", cgPath, own, err)
	}
	var dirs []string
	for _, l := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		// hierarchy-ID:controllers:path
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[2] == cgPath {
			ctrl := f[1]
			switch {
			case ctrl == "":
				dirs = append(dirs, filepath.Join(unifiedRoot(t), cgPath))
			case !strings.HasPrefix(ctrl, "name="):
				dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ctrl, cgPath))
			}
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no cgroup directory of the run found in %s", own)
	}

	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	// abandoned_after is 30 s; a run tied to its process ends at the next
	// sweep, within a second.
	for {
		infos, err := session.List(t.Context(), "unix://"+a.sock, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) == 0 {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("session still listed 30 s after exec was killed: %+v\n%s", infos, a.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("session ended %v after exec was killed", time.Since(killed).Round(time.Millisecond))
	for deadline := killed.Add(30 * time.Second); syscall.Kill(orphan, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", orphan)); strings.Contains(string(b), ") Z ") {
			break // killed, waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			t.Errorf("the orphan %d still runs", orphan)
			break
		}
	}
	// The session leaves the list first; its cgroups go right after.
	for _, d := range dirs {
		for {
			_, err := os.Stat(d)
			if os.IsNotExist(err) {
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Errorf("cgroup %s still exists 30 s after exec was killed (%v)", d, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for !strings.Contains(a.logs(), "session abandoned") {
		if time.Since(killed) > 30*time.Second {
			t.Errorf("the agent did not log the abandoned session:\n%s", a.logs())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unifiedRoot is where cgroup2 is mounted: /sys/fs/cgroup on a unified
// host, /sys/fs/cgroup/unified on a hybrid one.
func unifiedRoot(t *testing.T) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == 0x63677270 {
		return "/sys/fs/cgroup"
	}
	return "/sys/fs/cgroup/unified"
}
