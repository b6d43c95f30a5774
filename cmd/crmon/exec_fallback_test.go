// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// refusingAgent is a real agent whose sessions are all taken: it answers
// 429 to the next.
func refusingAgent(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	if err := os.WriteFile(cfg, []byte("[cleanroom.monitoring.sessions]\nmax_sessions = 1\nmax_sessions_per_user = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "--config", cfg, "--ebpf", "disabled", "--collector.containers=false")
	url := "unix://" + a.sock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := session.Start(ctx, session.Options{AgentURL: url, StartRequest: session.StartRequest{Name: "the-only-slot"}}); err != nil {
		t.Fatalf("taking the agent's one session: %v\n%s", err, a.logs())
	}
	_, err := session.Start(ctx, session.Options{AgentURL: url, StartRequest: session.StartRequest{Name: "one-too-many"}})
	var apiErr *session.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second session: %v, want 429", err)
	}
	return url
}

// execRefused runs `crmon exec` (under prefix, e.g. setpriv) against an
// agent that refuses the session, until exec asked it: exec takes an agent
// that does not answer its health check within 150 ms for absent, which a
// busy host can make happen.
func execRefused(t *testing.T, prefix []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	url := refusingAgent(t)
	for try := 0; try < 3; try++ {
		cmd := append(slices.Clone(prefix), crmonBinary(t), "exec", "--agent-url", url)
		stdout, stderr, code = runArgv(t, append(cmd, args...)...)
		if strings.Contains(stderr, "did not start a session") {
			return stdout, stderr, code
		}
	}
	t.Fatalf("exec never asked the agent for a session\n%s", stderr)
	return
}

// withoutBPFCaps runs a command as root without the capabilities the
// probes need, as in a container without CAP_BPF or CAP_SYS_ADMIN.
func withoutBPFCaps(t *testing.T) []string {
	setpriv := testenv.RequireCommand(t, "setpriv")
	return []string{setpriv, "--bounding-set=-bpf,-sys_admin,-perfmon", "--inh-caps=-bpf,-sys_admin,-perfmon"}
}

// TestExecAgentRefusesLoadsProbes: when the agent answers 429, exec says
// so once and measures with the probes it loads itself.
func TestExecAgentRefusesLoadsProbes(t *testing.T) {
	requireRootRun(t)
	out := filepath.Join(t.TempDir(), "r.json")
	_, stderr, code := execRefused(t, nil, "--json", out, "--", "sh", "-c", "for i in 1 2 3 4 5; do sleep 0.01; done")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "did not start a session"); n != 1 {
		t.Errorf("%d warnings that the agent refused, want 1\n%s", n, stderr)
	}
	r := readReport(t, out)
	if !slices.Contains(r.Sources, "ebpf") || len(r.SourcesMissing) != 0 {
		t.Errorf("sources %v, missing %+v; want ebpf, none missing", r.Sources, r.SourcesMissing)
	}
	// Five sleeps: the shell and each sleep block at least once.
	if r.Totals.ContextSwitches < 5 || slices.Contains(r.Unavailable, "context_switches") {
		t.Errorf("context_switches = %d (unavailable %v), want the probes' count", r.Totals.ContextSwitches, r.Unavailable)
	}
}

// TestExecAgentRefusesNoProbes: when the agent refuses and the probes
// cannot load here either, the summary's first line and the report's
// sources_missing say so, and --ebpf required fails before CMD runs.
func TestExecAgentRefusesNoProbes(t *testing.T) {
	requireRootRun(t)
	noCaps := withoutBPFCaps(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	_, stderr, code := execRefused(t, noCaps, "--json", out, "--", "true")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	r := readReport(t, out)
	var missing *session.MissingSource
	for i := range r.SourcesMissing {
		if r.SourcesMissing[i].Source == "ebpf" {
			missing = &r.SourcesMissing[i]
		}
	}
	if slices.Contains(r.Sources, "ebpf") || missing == nil || !strings.Contains(missing.Reason, "429") || !strings.Contains(missing.Reason, "CAP_BPF") {
		t.Errorf("sources %v, missing %+v; want no ebpf, and why: the agent's 429 and the missing capability", r.Sources, r.SourcesMissing)
	}
	summary := stderr[strings.Index(stderr, "crmon exec: true"):]
	if first, _, _ := strings.Cut(summary, "\n"); !strings.Contains(first, "without eBPF") || !strings.Contains(first, "429") {
		t.Errorf("summary's first line %q does not say the run was measured without eBPF, and why", first)
	}

	marker := filepath.Join(dir, "ran")
	_, stderr, code = execRefused(t, noCaps, "--ebpf", "required", "--", "touch", marker)
	if code != exitCrmon {
		t.Errorf("--ebpf required without the probes: exit %d, want %d\n%s", code, exitCrmon, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("--ebpf required without the probes ran CMD")
	}
}

// TestExecWithHungDocker measures a run beside a Docker engine that
// accepts connections and never answers: the run is not held up by more
// than exec's two 1 s waits for the engine, and its report says that the
// containers could not be looked up.
func TestExecWithHungDocker(t *testing.T) {
	requireRootRun(t)
	out := filepath.Join(t.TempDir(), "r.json")
	crmonBinary(t) // built before the clock starts
	start := time.Now()
	_, stderr, code := run(t, "exec", "--no-agent", "--ebpf", "disabled", "--docker-host", dockertest.HungEngine(t), "--json", out, "--", "true")
	took := time.Since(start)
	t.Logf("exec with a hung engine took %v", took)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	// Two 1 s waits, plus the start of a process on a busy host.
	if took > 5*time.Second {
		t.Errorf("exec took %v with a hung engine", took)
	}
	r := readReport(t, out)
	if !slices.ContainsFunc(r.SourcesMissing, func(m session.MissingSource) bool { return m.Source == "docker" && m.Reason != "" }) {
		t.Errorf("sources_missing = %+v, want docker and why", r.SourcesMissing)
	}
	if !strings.Contains(stderr, "containers may be missing") {
		t.Errorf("the summary does not say containers may be missing:\n%s", stderr)
	}
}

// TestExecWithoutDocker: where no engine listens, no container can have
// been missed, and the report does not say one may have been.
func TestExecWithoutDocker(t *testing.T) {
	requireRootRun(t)
	out := filepath.Join(t.TempDir(), "r.json")
	_, stderr, code := run(t, "exec", "--no-agent", "--ebpf", "disabled", "--docker-host", "unix://"+filepath.Join(t.TempDir(), "none.sock"), "--json", out, "--", "true")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if r := readReport(t, out); slices.ContainsFunc(r.SourcesMissing, func(m session.MissingSource) bool { return m.Source == "docker" }) {
		t.Errorf("sources_missing = %+v without an engine at all", r.SourcesMissing)
	}
}
