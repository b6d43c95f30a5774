// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// BenchmarkExecOverhead measures what `crmon exec -- true` costs over
// `true`: with an agent running, and loading the probes itself. It reports
// medians (the machine is shared; means chase outliers) of wall time and
// of crmon's own CPU time (user+system, which the load around does not
// inflate).
//
//	go test -run '^$' -bench ExecOverhead -benchtime 40x ./cmd/crmon
func BenchmarkExecOverhead(b *testing.B) {
	testenv.RequireRoot(b)
	bin, err := binary()
	if err != nil {
		b.Fatal(err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	a := startAgentB(b, bin)
	for _, bc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"true", []string{truePath}, nil},
		{"agent", []string{bin, "exec", "-q", "--", truePath}, []string{"CRMON_AGENT_URL=unix://" + a}},
		{"probes", []string{bin, "exec", "-q", "--no-agent", "--", truePath}, nil},
		{"cgroupfs", []string{bin, "exec", "-q", "--no-agent", "--ebpf", "disabled", "--", truePath}, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var wall, cpu []time.Duration
			for range b.N {
				cmd := exec.Command(bc.args[0], bc.args[1:]...)
				cmd.Env = append(os.Environ(), bc.env...)
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", bc.args, err, out)
				}
				wall = append(wall, time.Since(t0))
				cpu = append(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
			b.ReportMetric(float64(median(wall))/1e6, "median-ms")
			b.ReportMetric(float64(median(cpu))/1e6, "cpu-median-ms")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// startAgentB runs `crmon run` for a benchmark and returns its control
// socket.
func startAgentB(b *testing.B, bin string) string {
	sock := filepath.Join(b.TempDir(), "crmon.sock")
	cmd := exec.Command(bin, "run", "--web.listen-address", "127.0.0.1:0", "--control.socket", sock)
	cmd.Env = storeEnv(b, nil)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case <-addr:
		return sock
	case <-time.After(30 * time.Second):
		b.Fatal("crmon run did not serve within 30s")
	}
	return ""
}
