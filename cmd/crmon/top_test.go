// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// tmuxSession runs argv in a detached tmux session of its own, 200×40,
// and returns a function that captures its pane; the session ends with the
// test.
func tmuxSession(t *testing.T, argv ...string) (capture func() string, keys func(...string)) {
	t.Helper()
	tmux := testenv.RequireCommand(t, "tmux")
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	name := "crmon-top"
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The shell line reports the exit code and keeps the pane open to be
	// read.
	line := strings.Join(argv, " ") + "; echo EXIT=$?; sleep 600"
	run("new-session", "-d", "-s", name, "-x", "200", "-y", "40", "env TERM=xterm-256color "+line)
	t.Cleanup(func() {
		_ = exec.Command(tmux, "-S", sock, "kill-server").Run()
	})
	return func() string { return run("capture-pane", "-p", "-t", name) },
		func(k ...string) { run(append([]string{"send-keys", "-t", name}, k...)...) }
}

// waitPane waits until the pane satisfies ok.
func waitPane(t *testing.T, capture func() string, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := capture()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s; the pane:\n%s", what, s)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rowNames are the container names in the pane's table, in order.
func rowNames(pane, prefix string) []string {
	var names []string
	for _, l := range strings.Split(pane, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names
}

// TestTop runs `crmon top` in tmux against a running agent with real
// containers: a row for each, the burner first when sorted by CPU, the
// name order after the key n, a filter, and q exits 0. --once prints the
// same table as plain text, from the TCP listener, the control socket, or
// probes of its own.
func TestTop(t *testing.T) {
	dockertest.Require(t)
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	prefix := "crmon-top-"
	name := func(role string) string { return prefix + role + "-" + tag }
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf("[cleanroom.monitoring]\ncollection_interval = \"1s\"\n\n[cleanroom.monitoring.containers]\ninclude = [\"crmon-top-*-%s\"]\n", tag)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "required")
	// "zz" sorts last by name, so that only the CPU order puts it first.
	dockertest.Run(t, []string{"--name", name("zz-burn"), "--cpus", "1"}, "sh", "-c", "yes >/dev/null")
	for _, r := range []string{"aa-idle", "mm-idle"} {
		dockertest.Run(t, []string{"--name", name(r)}, "sleep", "600")
	}
	all := []string{name("aa-idle"), name("mm-idle"), name("zz-burn")}

	capture, keys := tmuxSession(t, crmonBinary(t), "top", "--url", "http://"+p.addr, "--interval", "250ms")
	// Sorted by CPU once the burner's rate is known (it needs two
	// samples): the burner leads.
	pane := waitPane(t, capture, "the burner first", func(s string) bool {
		n := rowNames(s, prefix)
		return len(n) == 3 && n[0] == name("zz-burn") && strings.Contains(s, "sort: cpu")
	})
	for _, want := range []string{"CPU", "RUNQ WAIT", "MEMORY", "BLOCK WRITE", "I/O P99", "NET RX", "AGE", dockertest.Image, "of 2 cores"} {
		if !strings.Contains(pane, want) && !(want == "of 2 cores" && strings.Contains(pane, " cores")) {
			t.Errorf("the pane lacks %q:\n%s", want, pane)
		}
	}
	keys("n")
	waitPane(t, capture, "sorted by name", func(s string) bool {
		n := rowNames(s, prefix)
		return strings.Contains(s, "sort: name") && strings.Join(n, " ") == strings.Join(all, " ")
	})
	keys("/", "mm", "Enter")
	waitPane(t, capture, "filtered", func(s string) bool {
		n := rowNames(s, prefix)
		return len(n) == 1 && n[0] == name("mm-idle") && strings.Contains(s, "filter: mm")
	})
	keys("c")
	keys("q")
	waitPane(t, capture, "q exits 0", func(s string) bool { return strings.Contains(s, "EXIT=0") })

	// --once, not on a terminal: plain text, no escape codes.
	for _, args := range [][]string{
		{"--url", "http://" + p.addr},
		{"--control.socket", p.sock},
	} {
		out, stderr, code := run(t, append([]string{"top", "--once", "--interval", "250ms"}, args...)...)
		if code != 0 {
			t.Fatalf("top --once %v: exit %d: %s", args, code, stderr)
		}
		if strings.ContainsRune(out, 0x1b) {
			t.Errorf("top --once %v wrote escape codes: %q", args, out)
		}
		if n := rowNames(out, prefix); len(n) != 3 || n[0] != name("zz-burn") {
			t.Errorf("top --once %v: rows %v, want the three containers, the burner first:\n%s", args, n, out)
		}
	}
	// Without an agent, top loads the probes itself.
	out, stderr, code := run(t, "top", "--once", "--control.socket", "", "--config", cfg, "--ebpf", "required", "--interval", "500ms")
	if n := rowNames(out, prefix); code != 0 || len(n) != 3 || n[0] != name("zz-burn") || !strings.Contains(out, "RUNQ WAIT") || strings.Contains(out, " n/a ") {
		t.Errorf("top --once with its own probes: exit %d, rows %v, want the three, the burner first, every figure measured:\n%s%s", code, n, out, stderr)
	}
	out, stderr, code = run(t, "top", "--once", "--all", "--sort", "name", "--url", "http://"+p.addr)
	if code != 0 || !strings.Contains(out, name("zz-burn")) || !strings.Contains(out, "\n/") {
		t.Errorf("top --once --all: exit %d, want the containers' cgroups under their names and other cgroups by path:\n%s%s", code, out, stderr)
	}
	if _, stderr, code := run(t, "top", "--once", "--sort", "cpus"); code != 2 || !strings.Contains(stderr, "cpu") {
		t.Errorf("top --sort cpus: exit %d, want 2 naming the keys: %s", code, stderr)
	}
}
