// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// burner is a shell loop that burns about 0.6 s of CPU without forking.
const burner = `i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done`

// noAgent keeps exec from finding an agent another test runs.
var noAgent = "--agent-url=unix:///nonexistent/crmon.sock"

// requireRootRun stops a test that runs crmon exec or an agent: always
// under -short (make test-unit), and outside CI when not root.
func requireRootRun(t *testing.T) {
	t.Helper()
	testenv.RequireLong(t, "root, cgroups and the probes")
	testenv.RequireRoot(t)
}

func readReport(t *testing.T, p string) *session.Report {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r session.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &r
}

func TestExecExitCodes(t *testing.T) {
	requireRootRun(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"exec", "-q", noAgent, "--", "sh", "-c", "exit 7"}, 7},
		{[]string{"exec", "-q", noAgent, "--", "sh", "-c", "exit 0"}, 0},
		{[]string{"exec", "-q", noAgent, "--", "sh", "-c", "kill -KILL $$"}, 137},
		{[]string{"exec", "-q", noAgent, "--", "/nonexistent/command"}, 127},
		{[]string{"exec", "-q", noAgent, "--limit", "cpu=1", "--", "true"}, 2},
		{[]string{"exec", "-q", noAgent}, 2},
	} {
		t.Run(strings.Join(tc.args[3:], " "), func(t *testing.T) {
			_, stderr, code := run(t, tc.args...)
			if code != tc.want {
				t.Errorf("exit %d, want %d\n%s", code, tc.want, stderr)
			}
		})
	}
}

func TestExecUnknownLimitListsValidOnes(t *testing.T) {
	requireRootRun(t)
	_, stderr, code := run(t, "exec", noAgent, "--limit", "cpu_secs=1", "--", "true")
	if code != 2 || !strings.Contains(stderr, "valid limits are max_cpu_usage_percent") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestExecLimitExceeded is the check: --limit cpu_seconds=0.2 on a
// 0.6 s burner exits 3 and the JUnit file has a <failure>; the reports are
// all written.
func TestExecLimitExceeded(t *testing.T) {
	requireRootRun(t)
	dir := t.TempDir()
	j, x, h := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.html")
	_, stderr, code := run(t, "exec", noAgent, "--json", j, "--junit", x, "--html", h,
		"--limit", "cpu_seconds=0.2", "--limit", "peak_memory_bytes=1GiB", "--", "sh", "-c", burner)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "limit cpu_seconds (run)") || !strings.Contains(stderr, "EXCEEDED") {
		t.Errorf("summary does not show the exceeded limit:\n%s", stderr)
	}
	r := readReport(t, j)
	if r.ExitCode == nil || *r.ExitCode != 0 || r.Totals.CPUSeconds < 0.2 || len(r.Limits) != 2 || r.Limits[0].OK || !r.Limits[1].OK {
		t.Errorf("report: exit %v cpu %v limits %+v", r.ExitCode, r.Totals.CPUSeconds, r.Limits)
	}
	b, _ := os.ReadFile(x)
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	// The run's own case, then one per limit.
	if err := xml.Unmarshal(b, &doc); err != nil || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 3 || doc.Suites[0].Cases[1].Failure == nil {
		t.Errorf("JUnit: %v\n%s", err, b)
	}
	html, _ := os.ReadFile(h)
	if !strings.Contains(string(html), "<svg") {
		t.Error("HTML holds no <svg>")
	}
}

func TestExecLimitsFile(t *testing.T) {
	requireRootRun(t)
	f := filepath.Join(t.TempDir(), "limits.toml")
	if err := os.WriteFile(f, []byte("[cleanroom.resource_limits]\ncpu_seconds = \"10s\"\npeak_memory_bytes = \"1GiB\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "exec", noAgent, "--limits", f, "--", "true")
	if code != 0 || !strings.Contains(stderr, "limit cpu_seconds (run)") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
	// A failing command keeps its own code even over a limit.
	_, _, code = run(t, "exec", "-q", noAgent, "--limit", "cpu_seconds=0", "--", "sh", "-c", burner+"; exit 5")
	if code != 5 {
		t.Errorf("exit %d, want 5", code)
	}
}

// A limits file is read as the config is: a regular file only, and its
// problems at their lines; CMD does not run.
func TestExecLimitsFileChecked(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "limits.toml")
	if err := os.WriteFile(bad, []byte("[cleanroom.resource_limits]\nnet_tx_bytes = 1.5e300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	for _, c := range []struct{ file, want string }{
		{"/dev/zero", "open /dev/zero: is a character device, not a regular file"},
		{fifo, "open " + fifo + ": is a named pipe (FIFO), not a regular file"},
		{dir, "open " + dir + ": is a directory, not a regular file"},
		{bad, bad + ":2: net_tx_bytes = 1.5e300: value 1.5e+300 is out of range; byte limits are from 0 to 9223372036854775808 (8 EiB)"},
	} {
		_, stderr, code := run(t, "exec", noAgent, "--limits", c.file, "--", "touch", marker)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("--limits %s: exit %d, want 2 and %q:\n%s", c.file, code, c.want, stderr)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("--limits %s: CMD ran", c.file)
		}
	}
}

// TestExecPassesThrough checks stdin, stdout and signals.
func TestExecPassesThrough(t *testing.T) {
	requireRootRun(t)
	cmd := exec.Command(crmonBinary(t), "exec", "-q", noAgent, "--", "sh", "-c", "read x; echo got $x; echo err >&2")
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "got hello\n" {
		t.Errorf("stdout %q, err %v", out, err)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(crmonBinary(t), "exec", "-q", noAgent, "--", "sh", "-c",
				fmt.Sprintf(`trap 'exit %d' %d; echo ready; while :; do sleep 0.05; done`, 40+int(sig), int(sig)))
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 6)
			if _, err := stdout.Read(buf); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("crmon exec did not end after the signal")
			}
			if got := cmd.ProcessState.ExitCode(); got != 40+int(sig) {
				t.Errorf("exit %d, want %d: the trap did not run", got, 40+int(sig))
			}
		})
	}
}

// TestExecWithAgent measures through a running agent's session API.
func TestExecWithAgent(t *testing.T) {
	requireRootRun(t)
	a := startAgent(t)
	j := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(crmonBinary(t), "exec", "-q", "--json", j, "--", "sh", "-c", burner)
	cmd.Env = append(os.Environ(), "CRMON_AGENT_URL=unix://"+a.sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, a.logs())
	}
	r := readReport(t, j)
	if r.Totals.CPUSeconds < 0.1 || r.Name != "exec" || !strings.Contains(r.Cgroup, "/exec-") {
		t.Errorf("report through the agent: %+v", r)
	}
	if !strings.Contains(a.logs(), "session started") {
		t.Errorf("the agent did not run the session:\n%s", a.logs())
	}
	// The agent counts the run's processes too: the shell is one row,
	// with all of the run's CPU.
	if len(r.Processes) != 1 || r.Processes[0].Command != "sh -c (script)" || math.Abs(r.Processes[0].CPUSeconds-r.Totals.CPUSeconds) > 0.01*r.Totals.CPUSeconds {
		t.Errorf("processes through the agent: %+v (run cpu %v)", r.Processes, r.Totals.CPUSeconds)
	}
}

// TestExecWithAgentPrecision checks block and network attribution through
// the agent's probes: O_DIRECT writes of a known size and bytes sent to a
// listener of this test.
func TestExecWithAgentPrecision(t *testing.T) {
	requireRootRun(t)
	bash := testenv.RequireCommand(t, "bash")
	a := startAgent(t)
	dir, err := os.MkdirTemp("/var/tmp", "crmon-exec-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const write, send = 16 << 20, 4 << 20
	var (
		r        *session.Report
		received int64
		tcp      testenv.TCPSent
	)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testenv.UntilBlockCounted(t, write, func(int) (float64, uint64) {
		ln, got := countingListener(t, "127.0.0.1:0")
		// The sender is this test binary (workload), which reports what
		// its TCP stack counted.
		sendVars, sentTCP := sendEnv(t, ln.Addr().String(), send)
		script := fmt.Sprintf(`dd if=/dev/zero of=%s/f bs=1M count=%d oflag=direct status=none && rm %s/f && echo go | %q`,
			dir, write>>20, dir, self)
		j := filepath.Join(t.TempDir(), "r.json")
		cmd := exec.Command(crmonBinary(t), "exec", "-q", "--json", j, "--", bash, "-c", script)
		cmd.Env = append(append(os.Environ(), "CRMON_AGENT_URL=unix://"+a.sock, "CRMON_TEST_WORKLOAD=1"), sendVars...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		received = <-got
		tcp = sentTCP()
		r = readReport(t, j)
		if !slices.Contains(r.Sources, "ebpf") {
			testenv.Unavailable(t, "the agent runs without probes: %v", r.Unavailable)
		}
		return float64(r.Totals.BlockWriteBytes), r.BlockLostCompletions
	})
	if w := float64(r.Totals.BlockWriteBytes)/write - 1; w < 0 || w > 0.01 {
		t.Errorf("block_write_bytes = %d, want %d (+0..1%%)", r.Totals.BlockWriteBytes, write)
	}
	// At least the payload the listener got; at most what the sender's TCP
	// stack put out, retransmissions and headers included.
	if tx := r.Totals.NetTxBytes; received != send || tx < uint64(received) || tx > tcp.MaxIPBytes() {
		t.Errorf("net_tx_bytes = %d, listener got %d of %d: want %d to %d (the sender's %+v)", tx, received, send, received, tcp.MaxIPBytes(), tcp)
	} else {
		t.Logf("net_tx_bytes = %d, listener got %d (the sender's %+v)", tx, received, tcp)
	}
}

// TestSessionCommands drives a session with the CLI around a container.
func TestSessionCommands(t *testing.T) {
	requireRootRun(t)
	dockertest.Require(t)
	a := startAgent(t)
	url := "--agent-url=unix://" + a.sock
	if _, stderr, code := run(t, "session", "start", url, "--containers", "crmon.test=session", "s1"); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := run(t, "session", "start", url, "s2"); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, stderr)
	}
	// A table for people: no Go slices.
	out, _, _ := run(t, "session", "list", url)
	if !regexp.MustCompile(`(?m)^s1 +\S+ +- +labelled crmon.test=session$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^s2 +\S+ +- +all$`).MatchString(out) || strings.Contains(out, "[") {
		t.Errorf("list:\n%s", out)
	}
	if _, stderr, code := run(t, "session", "stop", "-q", url, "s2"); code != 0 {
		t.Errorf("stop s2: exit %d\n%s", code, stderr)
	}
	name := fmt.Sprintf("crmon-session-%d", os.Getpid())
	dockertest.Docker(t, "run", "--rm", "--network", "none", "--name", name, "--label", "crmon.test=session", dockertest.Image, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	j := filepath.Join(t.TempDir(), "s.json")
	_, stderr, code := run(t, "session", "stop", url, "--json", j, "--name", "integration", "--limit", "container:crmon-session-*:cpu_seconds=0.001", "s1")
	if code != 3 {
		t.Errorf("stop: exit %d, want 3 (container over its limit)\n%s", code, stderr)
	}
	r := readReport(t, j)
	if len(r.Containers) != 1 || r.Containers[0].Name != name || r.Containers[0].CPUSeconds < 0.05 {
		t.Errorf("containers: %+v", r.Containers)
	}
	// No cgroup: the session saw only its containers, and no exit.
	if r.ExitCode != nil || r.TotalsOf != session.TotalsContainers || r.Name != "integration" {
		t.Errorf("report exit %v totals_of %q name %q, want none, containers, integration", r.ExitCode, r.TotalsOf, r.Name)
	}
	raw, _ := os.ReadFile(j)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	// The container's own exit code is its; the session saw none.
	if _, ok := top["exit_code"]; ok {
		t.Error("the JSON report has an exit_code nobody saw")
	}
	for _, want := range []string{"crmon session integration: only the 1 container created during the session", "\n  containers  "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "exit 0") || strings.Contains(stderr, "\n  run ") {
		t.Errorf("summary claims an exit or a run it did not see:\n%s", stderr)
	}
}

// TestExecContainers is the check: a container started during the
// run is reported with its CPU time, and a 200 ms one is reported at all.
// The container times its own work with busybox time, the ground truth.
func TestExecContainers(t *testing.T) {
	requireRootRun(t)
	dockertest.Require(t)
	dir := t.TempDir()
	j, timing := filepath.Join(dir, "c.json"), filepath.Join(dir, "time.txt")
	name := fmt.Sprintf("crmon-exec-%d", os.Getpid())
	short := name + "-short"
	// The work, timed by busybox; then the container's cgroup's own CPU
	// total so far, which also holds what the runtime did in it before
	// the work (runc's init: 30-60 ms here).
	work := "busybox time sh -c '" + strings.ReplaceAll(burner, "400000", "300000") + "'\n" +
		"if [ -r /sys/fs/cgroup/cpu.stat ]; then awk '$1 == \"usage_usec\" { print \"cgroup\", $2 / 1e6 }' /sys/fs/cgroup/cpu.stat\n" +
		"else awk '{ print \"cgroup\", $1 / 1e9 }' /sys/fs/cgroup/cpuacct/cpuacct.usage; fi >&2\n"
	if err := os.WriteFile(filepath.Join(dir, "work.sh"), []byte(work), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "exec", noAgent, "--json", j, "--", "sh", "-c",
		"docker run --rm --name "+short+" "+dockertest.Image+" sleep 0.2 && "+
			"docker run --rm --name "+name+" -v "+dir+":/w:ro "+dockertest.Image+" sh /w/work.sh 2>"+timing)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	r := readReport(t, j)
	found := map[string]session.ContainerReport{}
	for _, c := range r.Containers {
		found[c.Name] = c
	}
	if _, ok := found[short]; !ok {
		t.Errorf("200 ms container %s not reported: %+v", short, r.Containers)
	}
	c, ok := found[name]
	if !ok {
		t.Fatalf("container %s not reported: %+v", name, r.Containers)
	}
	if c.Image != dockertest.Image || len(c.ID) != 64 {
		t.Errorf("container identity: %+v", c)
	}
	want, cg := containerTimes(t, timing)
	if cg < want {
		t.Fatalf("the container's cgroup says %v s before its end, less than its work's %v s: not its own cgroup", cg, want)
	}
	// busybox time has 10 ms steps; after the cgroup's reading come awk's
	// and sh's exit.
	if got := c.CPUSeconds; got < want-0.03 || got < cg-0.01 || got > cg+0.03+0.03*cg {
		t.Errorf("container cpu_seconds = %v, its own time says %v, its cgroup %v before its end", got, want, cg)
	} else {
		t.Logf("container cpu_seconds = %v, its own time says %v, its cgroup %v before its end", got, want, cg)
	}
	// The docker CLI is the run's; the container's work is not.
	if r.Totals.CPUSeconds > want/2 {
		t.Errorf("run cpu_seconds = %v includes the container's", r.Totals.CPUSeconds)
	}
}

// containerTimes reads the container's stderr at p: busybox time's user+sys
// seconds ("real\t0m 0.50s\nuser\t0m 0.49s\nsys\t0m 0.00s") and the
// "cgroup SECONDS" line that follows them.
func containerTimes(t *testing.T, p string) (work, cgroup float64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cgroup = -1
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "cgroup "); ok {
			if cgroup, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
				t.Fatalf("cgroup line %q: %v", line, err)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || (f[0] != "user" && f[0] != "sys") {
			continue
		}
		var m int
		var s float64
		if _, err := fmt.Sscanf(f[1]+" "+f[2], "%dm %fs", &m, &s); err != nil {
			t.Fatalf("busybox time: %q: %v", line, err)
		}
		work += float64(m)*60 + s
	}
	if cgroup < 0 {
		t.Fatalf("no cgroup line in %q", b)
	}
	return work, cgroup
}
