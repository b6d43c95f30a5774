// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// requireCgroups stops a test that needs root and real cgroups: always
// under -short (make test-unit), and outside CI when not root.
func requireCgroups(t testing.TB) {
	t.Helper()
	testenv.RequireLong(t, "root and cgroups")
	testenv.RequireRoot(t)
}

func newTestCgroup(t *testing.T) *Cgroup {
	t.Helper()
	requireCgroups(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano())
	cg, err := NewCgroup(h, testParent, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cg.Kill()
		_ = cg.WaitEmpty(context.Background(), nil)
		if err := cg.Remove(); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})
	return cg
}

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	} {
		t.Run(tc.script, func(t *testing.T) {
			cg := newTestCgroup(t)
			res, err := Run(context.Background(), cg, Options{Args: []string{"sh", "-c", tc.script}})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.want {
				t.Errorf("exit code %d, want %d", res.ExitCode, tc.want)
			}
		})
	}
}

func TestRunNotFound(t *testing.T) {
	cg := newTestCgroup(t)
	if _, err := Run(context.Background(), cg, Options{Args: []string{"/nonexistent/cmd"}}); err == nil {
		t.Error("no error for a missing command")
	}
}

// TestRunInCgroup checks that CMD runs in every cgroup of the run, from its
// first instruction on: /proc/self/cgroup as CMD itself reads it.
func TestRunInCgroup(t *testing.T) {
	cg := newTestCgroup(t)
	var out bytes.Buffer
	res, err := Run(context.Background(), cg, Options{Args: []string{"cat", "/proc/self/cgroup"}, Stdout: &out})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run: %v, exit %d", err, res.ExitCode)
	}
	got := out.String()
	if cg.V2Dir != "" && !strings.Contains(got, "0::"+cg.Path+"\n") {
		t.Errorf("not in the cgroup2 cgroup %s:\n%s", cg.Path, got)
	}
	for ctrl := range cg.V1Dirs {
		found := false
		for _, line := range strings.Split(got, "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && strings.Contains(","+parts[1]+",", ","+ctrl+",") && parts[2] == cg.Path {
				found = true
			}
		}
		if !found {
			t.Errorf("not in the v1 %s cgroup %s:\n%s", ctrl, cg.Path, got)
		}
	}
}

// TestRunStragglers checks what a run does with the processes CMD leaves
// behind: it names them once (pid and command line) with what it does
// about them, kills them on request or at the end of MaxWait, and says
// which in the result. The stragglers sleep 30 s; a run that waited for
// them would take that long.
func TestRunStragglers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		wantKilled string
		wantNotice string
	}{
		{"max-wait", Options{MaxWait: 200 * time.Millisecond}, KilledAfterMaxWait, "at most 200ms (--max-wait), then killing them"},
		{"kill-stragglers", Options{KillStragglers: true}, KilledByRequest, "killing them (--kill-stragglers)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := newTestCgroup(t)
			var notice bytes.Buffer
			opts := tc.opts
			opts.Args = []string{"sh", "-c", "sleep 30 >/dev/null 2>&1 </dev/null & sleep 31 >/dev/null 2>&1 </dev/null & exit 0"}
			opts.Notice = &notice
			res, err := Run(context.Background(), cg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Stragglers || res.Killed != tc.wantKilled || len(res.Left) != 2 {
				t.Fatalf("stragglers %v killed %q left %+v, want 2 killed %q", res.Stragglers, res.Killed, res.Left, tc.wantKilled)
			}
			if d := res.Ended.Sub(res.Exited); d > 20*time.Second {
				t.Errorf("run waited %v for stragglers it should have killed", d)
			}
			n := notice.String()
			for _, p := range res.Left {
				// Right after CMD's exit a child may not have reached
				// execve yet: it is then still sh (or, mid-execve, only
				// its comm is readable).
				if (!strings.Contains(p.Command, "sleep") && !strings.Contains(p.Command, "sh")) || !strings.Contains(n, fmt.Sprintf("pid %d  %s\n", p.PID, p.Command)) {
					t.Errorf("process %+v not listed in the notice:\n%s", p, n)
				}
			}
			if !strings.Contains(n, "sh exited 0; still running in its cgroup:") || !strings.Contains(n, tc.wantNotice) || strings.Count(n, "still running") != 1 {
				t.Errorf("notice:\n%s", n)
			}
		})
	}
}

// TestRunWaitsForStragglers checks that a run ends with the last process of
// its cgroup, not with CMD.
func TestRunWaitsForStragglers(t *testing.T) {
	cg := newTestCgroup(t)
	res, err := Run(context.Background(), cg, Options{Args: []string{"sh", "-c", "sleep 0.4 >/dev/null 2>&1 </dev/null & exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || !res.Stragglers || res.Killed != "" {
		t.Errorf("exit %d stragglers %v killed %q, want 3 true \"\"", res.ExitCode, res.Stragglers, res.Killed)
	}
	if d := res.Ended.Sub(res.Started); d < 350*time.Millisecond {
		t.Errorf("run ended after %v, before its straggler", d)
	}
	if pop, _ := cg.Populated(); pop {
		t.Error("cgroup still populated")
	}
}

func TestRunKillsStragglers(t *testing.T) {
	cg := newTestCgroup(t)
	res, err := Run(context.Background(), cg, Options{
		Args:           []string{"sh", "-c", "sleep 30 >/dev/null 2>&1 </dev/null &"},
		KillStragglers: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Ended.Sub(res.Started); d > 5*time.Second {
		t.Errorf("run took %v: straggler not killed", d)
	}
}

func TestRemoveCleansUp(t *testing.T) {
	requireCgroups(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	cg, err := NewCgroup(h, testParent, fmt.Sprintf("rm-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cg, Options{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if err := cg.Remove(); err != nil {
		t.Fatal(err)
	}
	dirs := []string{cg.V2Dir}
	for _, d := range cg.V1Dirs {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists", d)
		}
		_ = os.Remove(filepath.Dir(d))
	}
}

// TestRemoveNestedCgroups: CMD makes cgroups below the run's and leaves a
// process in one; the straggler is killed and Remove removes them all.
func TestRemoveNestedCgroups(t *testing.T) {
	requireCgroups(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	cg, err := NewCgroup(h, testParent, fmt.Sprintf("rm-nested-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if cg.V2Dir == "" {
		testenv.Unavailable(t, "no cgroup2 hierarchy")
	}
	inner := filepath.Join(cg.V2Dir, "scope", "inner")
	script := fmt.Sprintf(`mkdir -p %[1]s && sh -c 'echo $$ > %[1]s/cgroup.procs && exec sleep 30' >/dev/null 2>&1 </dev/null &
while ! grep -q . %[1]s/cgroup.procs; do :; done`, inner)
	if _, err := Run(context.Background(), cg, Options{Args: []string{"sh", "-c", script}, KillStragglers: true}); err != nil {
		t.Fatal(err)
	}
	if err := cg.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]string{cg.V2Dir}, slices.Collect(maps.Values(cg.V1Dirs))...) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists", d)
		}
		_ = os.Remove(filepath.Dir(d))
	}
}

func TestRunCountsProcesses(t *testing.T) {
	cg := newTestCgroup(t)
	// sh, 3 forks for /bin/true, and a subshell that forks sleep and
	// execs its last command: 6 processes.
	res, err := Run(context.Background(), cg, Options{
		Args:           []string{"sh", "-c", "for i in 1 2 3; do /bin/true; done; (sleep 0.01; /bin/true); exit 0"},
		CountProcesses: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Counted {
		testenv.Unavailable(t, "fork events unavailable")
	}
	if res.ProcessesStarted != 6 {
		t.Errorf("processes started = %d, want 6", res.ProcessesStarted)
	}
}

func TestNestedParent(t *testing.T) {
	for _, tc := range []struct{ own, parent, want string }{
		{"/", "crmon", "crmon"},
		{"/user.slice/session-1.scope", "crmon", "crmon"},
		{"/crmon/exec-12-ab", "crmon", "/crmon/exec-12-ab"},
		{"/crmon/exec-12-ab/exec-13-cd", "/crmon/", "/crmon/exec-12-ab/exec-13-cd"},
		{"/crmon/other", "crmon", "crmon"},
	} {
		if got := nestedParent(tc.own, tc.parent); got != tc.want {
			t.Errorf("nestedParent(%q, %q) = %q, want %q", tc.own, tc.parent, got, tc.want)
		}
	}
}

// TestRunCancelKillsStragglers checks that cancelling ctx after CMD exited,
// while the run waits for what CMD left behind, kills the stragglers instead
// of waiting for them.
func TestRunCancelKillsStragglers(t *testing.T) {
	cg := newTestCgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cg, Options{Args: []string{"sh", "-c", "sleep 30 >/dev/null 2>&1 </dev/null & exit 0"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %v after its ctx was cancelled: straggler not killed", d)
	}
	if !res.Stragglers {
		t.Error("Stragglers = false, want true")
	}
	if pop, _ := cg.Populated(); pop {
		t.Error("cgroup still populated")
	}
}

// TestRunReapsOnJoinFailure checks that a CMD that started but could not
// join its v1 cgroups is killed and reaped, not left a zombie child of
// crmon.
func TestRunReapsOnJoinFailure(t *testing.T) {
	cg := newTestCgroup(t)
	bad := *cg
	bad.V1Dirs = map[string]string{"memory": filepath.Join(t.TempDir(), "missing")}
	if _, err := Run(context.Background(), &bad, Options{Args: []string{"sleep", "30"}}); err == nil {
		t.Fatal("no error joining a missing cgroup")
	}
	if kids := children(t); len(kids) > 0 {
		t.Errorf("children left behind: %v", kids)
	}
}

// children lists this process's child processes, zombies included.
func children(t *testing.T) []string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		kids = append(kids, strings.Fields(string(b))...)
	}
	return kids
}

// TestForkCounterOtherPIDNamespace checks that fork counting reports itself
// unavailable in a PID namespace of its own, where the kernel sends no fork
// events, instead of an exact-looking count of 1.
func TestForkCounterOtherPIDNamespace(t *testing.T) {
	if os.Getenv("CRMON_TEST_PIDNS") == "1" {
		if _, err := NewForkCounter(); err == nil {
			fmt.Println("fork counter available")
			os.Exit(1)
		}
		os.Exit(0)
	}
	requireCgroups(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.Unavailable(t, "no unshare: %v", err)
	}
	cmd := exec.Command(unshare, "--pid", "--fork", os.Args[0], "-test.run=^TestForkCounterOtherPIDNamespace$")
	cmd.Env = append(os.Environ(), "CRMON_TEST_PIDNS=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("in a new PID namespace: %v\n%s", err, out)
	}
}
