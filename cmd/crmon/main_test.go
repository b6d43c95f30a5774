// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// binary builds crmon once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "crmon-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "crmon")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func crmonBinary(t *testing.T) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// agentProc is a running `crmon run`.
type agentProc struct {
	cmd  *exec.Cmd
	addr string
	// sock is the agent's control socket, in a directory of the test's.
	sock   string
	stderr *strings.Builder
	mu     *sync.Mutex
	done   chan error
}

var servingRE = regexp.MustCompile(`crmon is serving https?://([^/\s]+)/metrics`)

// lostCompletionAfter is the block-request timeout of the agents that
// lostCompletionConfig configures: short, so that a test that finds its
// block count short learns within seconds whether the probes lost a
// completion (no real request is in flight for this long here).
const lostCompletionAfter = 2 * time.Second

// lostCompletionConfig writes a config file that sets lost_completion_after
// to lostCompletionAfter, for an agent whose block counts a test checks.
func lostCompletionConfig(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf("[cleanroom.monitoring.ebpf]\nlost_completion_after = %q\n", lostCompletionAfter.String())
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// startAgent runs `crmon run ARGS` on a free loopback port, with a control
// socket of its own unless ARGS name one, and waits until it serves.
func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "crmon.sock")
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--control.socket") && !strings.HasPrefix(a, "--control.socket-")
	}) {
		args = append([]string{"--control.socket", sock}, args...)
	}
	args = append([]string{"run", "--web.listen-address", "127.0.0.1:0"}, args...)
	cmd := exec.Command(crmonBinary(t), args...)
	cmd.Env = storeEnv(t, args)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, sock: sock, stderr: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.addr = <-addrc:
	case err := <-p.done:
		t.Fatalf("crmon run exited before serving: %v\n%s", err, p.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("crmon run did not serve within 30s\n%s", p.logs())
	}
	return p
}

// storeEnv gives an agent run with args a store of its own, in a
// temporary directory (CRMON_STORE_PATH), unless the test sets one in the
// environment or in the config file: tests leave nothing in
// /var/lib/crmon, and two agents never share a store.
func storeEnv(tb testing.TB, args []string) []string {
	env := os.Environ()
	if os.Getenv("CRMON_STORE_PATH") != "" {
		return env
	}
	for i, a := range args {
		f, ok := strings.CutPrefix(a, "--config=")
		if !ok && (a == "--config" || a == "-c") && i+1 < len(args) {
			f, ok = args[i+1], true
		}
		if b, err := os.ReadFile(f); ok && err == nil && strings.Contains(string(b), "[cleanroom.monitoring.store]") {
			return env
		}
	}
	return append(env, "CRMON_STORE_PATH="+tb.TempDir())
}

func (p *agentProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *agentProc) get(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	return string(body)
}

// run executes crmon with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runArgv(t, append([]string{crmonBinary(t)}, args...)...)
}

// runArgv runs argv and returns its stdout, stderr and exit code.
func runArgv(t *testing.T, argv ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}
