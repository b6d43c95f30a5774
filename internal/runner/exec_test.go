// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// listener counts the bytes it receives.
type listener struct {
	ln   net.Listener
	got  atomic.Int64
	done chan struct{}
}

func newListener(t *testing.T) *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			l.got.Add(n)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-l.done })
	return l
}

// workloadCmd runs this test binary as the workload.
func workloadCmd(t *testing.T, env map[string]string) ([]string, []string, string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result.json")
	e := append(os.Environ(), "CRMON_WORKLOAD=1", "CRMON_WORKLOAD_RESULT="+result)
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	return []string{self}, e, result
}

func readResult(t *testing.T, p string) workloadResult {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r workloadResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// directDir is a directory on a block device (O_DIRECT needs one; /tmp
// may be tmpfs).
func directDir(t *testing.T) string {
	d, err := os.MkdirTemp("/var/tmp", "crmon-direct-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func within(t *testing.T, what string, got, want, lo, hi float64) {
	t.Helper()
	rel := (got - want) / want
	if rel < lo || rel > hi {
		t.Errorf("%s = %v, want %v (%+.2f%%, allowed %+.1f%%..%+.1f%%)", what, got, want, 100*rel, 100*lo, 100*hi)
	} else {
		t.Logf("%s = %v, want %v (%+.3f%%)", what, got, want, 100*rel)
	}
}

func hierarchy(t *testing.T) *cgroups.Hierarchy {
	testenv.RequireRoot(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	return h
}

// TestExecCgroupfs measures a workload of known size from the cgroup files
// alone (no probes): CPU and block writes must be exact.
func TestExecCgroupfs(t *testing.T) {
	h := hierarchy(t)
	const cpu, write = 0.5, 8 << 20
	args, env, result := workloadCmd(t, map[string]string{
		"CRMON_WORKLOAD_CPU":   fmt.Sprint(cpu),
		"CRMON_WORKLOAD_WRITE": fmt.Sprint(write),
		"CRMON_WORKLOAD_DIR":   directDir(t),
	})
	rep, res, err := Exec(context.Background(), ExecOptions{
		Options:   Options{Args: args, Env: env, Stdout: os.Stdout, Stderr: os.Stderr},
		Hierarchy: h,
		Parent:    "crmon-test",
		Tracker:   sessions.TrackerOptions{Hierarchy: h},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("workload exit %d", res.ExitCode)
	}
	w := readResult(t, result)
	within(t, "cpu_seconds", rep.Totals.CPUSeconds, w.CPUSeconds, -0.01, 0.01)
	within(t, "block_write_bytes", float64(rep.Totals.BlockWriteBytes), write, 0, 0.02)
	if rep.Totals.PeakMemoryBytes == 0 {
		t.Error("peak_memory_bytes = 0")
	}
	if len(rep.Series.Run) < 2 {
		t.Errorf("%d samples, want at least 2 over %.2fs", len(rep.Series.Run), rep.DurationSeconds)
	}
	var _ = session.SchemaVersion
}
