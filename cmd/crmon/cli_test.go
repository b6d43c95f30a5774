// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// ran is what the CMD of these tests prints when it runs.
const ran = "CMD-RAN"

// TestUsageErrors: a bad command line exits 2 with one line per problem,
// named once by the command it came from, with what was wrong and what is
// allowed, and nothing on stdout: no help dump, and CMD does not run.
func TestUsageErrors(t *testing.T) {
	cmd := []string{"--", "sh", "-c", "echo " + ran}
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"frobnicate"}, []string{`crmon: unknown command "frobnicate"`, "crmon --help"}},
		{[]string{"snapshott"}, []string{`did you mean "snapshot"?`}},
		{[]string{"help", "frobnicate"}, []string{`crmon: unknown command "frobnicate"`}},
		{[]string{"session", "frob"}, []string{`crmon session: unknown command "frob"`, "crmon session --help"}},
		{[]string{"session", "help", "frob"}, []string{`crmon session: unknown command "frob"`}},
		{[]string{"run", "--jsn"}, []string{"crmon run: ", "--jsn", "crmon run --help"}},
		{append([]string{"exec", "-jsn", "r.json"}, cmd...), []string{"crmon exec: ", "--jsn", "did you mean --json?", "crmon exec --help"}},
		{append([]string{"exec", "--qiet"}, cmd...), []string{"did you mean --quiet?"}},
		{[]string{"snapshot", "--window"}, []string{"crmon snapshot: ", "--window"}},
		{[]string{"--log.level=trace", "version"}, []string{"--log.level=trace", "want debug, info, warn or error"}},
		{[]string{"--log.format=xml", "version"}, []string{"--log.format=xml", "want logfmt or json"}},
		{[]string{"snapshot", "--window", "0"}, []string{"crmon snapshot: --window=0s: want a duration from 100ms to 1h"}},
		{[]string{"snapshot", "--ebpf", "sometimes"}, []string{"--ebpf=sometimes: want auto, required or disabled"}},
		{[]string{"run", "--collector.processes.scan-interval=-1s"}, []string{"--collector.processes.scan-interval=-1s: want a duration from 0s to 1h"}},
		{[]string{"run", "--max-procs=-1"}, []string{"--max-procs=-1: want a number from 0 to 1024"}},
		{append([]string{"exec", "--ebpf", "sometimes"}, cmd...), []string{"crmon exec: --ebpf=sometimes: want auto, required or disabled"}},
		{append([]string{"exec", "--unmeasured", "ignore"}, cmd...), []string{"crmon exec: --unmeasured=ignore: want error or skip"}},
		{append([]string{"exec", "--max-wait", "-1s"}, cmd...), []string{"crmon exec: --max-wait=-1s: want a duration from 0s to 24h"}},
		{append([]string{"exec", "--sample-interval", "1ns"}, cmd...), []string{"crmon exec: --sample-interval=1ns: want a duration from 50ms to 1h"}},
		{[]string{"session", "start", "--sample-interval", "0", "x"}, []string{"crmon session start: --sample-interval=0s"}},
		{[]string{"session", "start", "--lease", "48h", "x"}, []string{"crmon session start: --lease=48h: want a duration from 1s to 24h"}},
		{[]string{"session", "list", "--agent-url", "http://127.0.0.1:9717"}, []string{`crmon session list: --agent-url "http://127.0.0.1:9717": want the agent's control socket`}},
		{append([]string{"exec", "--limit", "cpu_seconds=abc"}, cmd...), []string{`crmon exec: --limit cpu_seconds=abc: bad duration "abc"`}},
		{append([]string{"exec", "--limit", "cpu=1"}, cmd...), []string{`crmon exec: --limit cpu=1: unknown limit "cpu"`}},
		{append([]string{"exec", "--cgroup-parent", "../../etc"}, cmd...), []string{"crmon exec: --cgroup-parent", `without ".."`}},
		{append([]string{"exec", "--json", "-", "--junit", "-"}, cmd...), []string{"only one report can go to stdout"}},
		{[]string{"exec"}, []string{"crmon exec: no command given"}},
		{[]string{"run", "--ebpf=disabled", "extra"}, []string{`crmon run: unexpected argument "extra": crmon run takes none`}},
		{[]string{"version", "extra"}, []string{`crmon version: unexpected argument "extra"`}},
		{[]string{"session", "list", "extra"}, []string{`crmon session list: unexpected argument "extra"`}},
		{[]string{"config", "check"}, []string{"crmon config check: want exactly one FILE"}},
		{[]string{"session", "start"}, []string{"crmon session start: want exactly one NAME"}},
		// Flags go before the arguments; one after them is refused, not
		// read as a file name or dropped.
		{[]string{"diff", "a.json", "b.json", "--max-regression", "cpu_seconds=10%"}, []string{"crmon diff: flag --max-regression after the arguments: flags go before them: crmon diff [flags] BASE.json"}},
		{[]string{"diff", "a.json", "-max-regression=cpu_seconds=10%", "b.json"}, []string{"crmon diff: flag --max-regression after the arguments"}},
		{[]string{"diff", "--unmeasured", "skip", "a.json", "b.json", "--unmeasured=error"}, []string{"crmon diff: flag --unmeasured after the arguments"}},
		{[]string{"query", "up", "--time", "5"}, []string{"crmon query: flag --time after the arguments: flags go before them: crmon query [flags] EXPR"}},
		{[]string{"session", "start", "x", "--lease", "1h"}, []string{"crmon session start: flag --lease after the arguments"}},
		{[]string{"session", "stop", "x", "--json", "r.json"}, []string{"crmon session stop: flag --json after the arguments"}},
		{[]string{"config", "check", "f.toml", "--help"}, []string{"crmon config check: flag --help after the arguments"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// An accepted bad value would start an agent, or a run.
			stdout, stderr, code := runWithin(t, 20*time.Second, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout is not empty:\n%s", stdout)
			}
			checkErrorLines(t, stderr, len(strings.Split(strings.TrimSpace(stderr), "\n")))
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestExecArgsAreCMDs: what follows exec's CMD is CMD's, flags of crmon's
// own names included.
func TestExecArgsAreCMDs(t *testing.T) {
	requireRootRun(t)
	stdout, stderr, code := run(t, "exec", "-q", noAgent, "--", "sh", "-c", `echo "$@"`, "sh", "--json", "x", "--max-regression", "-q")
	if code != 0 || stdout != "--json x --max-regression -q\n" {
		t.Errorf("exit %d, stdout %q, want CMD's arguments as given\n%s", code, stdout, stderr)
	}
}

// runWithin runs crmon like run, killing it after d.
func runWithin(t *testing.T, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	bin := crmonBinary(t) // the first call builds it: not part of d
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = storeEnv(t, args)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("crmon %s still ran after %v", strings.Join(args, " "), d)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

var (
	doubledPrefix = regexp.MustCompile(`crmon[ a-z]*: crmon`)
	oneDashFlag   = regexp.MustCompile(`(^|\s)-[a-z][a-z.-]+`)
)

// checkErrorLines checks that stderr is n lines, each an error that
// starts with "crmon" and names its command once.
func checkErrorLines(t *testing.T, stderr string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != n {
		t.Errorf("stderr has %d lines, want %d:\n%s", len(lines), n, stderr)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "crmon") {
			t.Errorf("error line does not start with crmon: %q", l)
		}
		if doubledPrefix.MatchString(l) {
			t.Errorf("prefix doubled: %q", l)
		}
		if strings.Contains(l, "limit limit") || strings.Contains(l, "Incorrect Usage") || strings.Contains(l, "panic") {
			t.Errorf("doubled or raw text: %q", l)
		}
		if oneDashFlag.MatchString(l) {
			t.Errorf("a flag named with one dash: %q", l)
		}
	}
}

// TestHelpShowsDefaultsOnce: each flag's help states its default once,
// and the one it states is the one it has.
func TestHelpShowsDefaultsOnce(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"run", "--help"}, {"snapshot", "--help"}, {"exec", "--help"},
		{"session", "start", "--help"}, {"session", "stop", "--help"}, {"session", "list", "--help"},
		{"config", "check", "--help"}, {"version", "--help"},
	} {
		stdout, stderr, code := run(t, args...)
		if code != 0 {
			t.Errorf("crmon %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		for _, l := range strings.Split(stdout, "\n") {
			if n := strings.Count(l, "(default"); n > 1 {
				t.Errorf("crmon %s: a flag says its default %d times: %s", strings.Join(args, " "), n, strings.TrimSpace(l))
			}
		}
	}
	stdout, _, _ := run(t, "session", "start", "--help")
	if !strings.Contains(stdout, "(default: 200ms)") {
		t.Errorf("session start --sample-interval does not show its default of 200ms:\n%s", stdout)
	}
}

// TestExecWithoutCgroupAccess runs exec as nobody: no cgroup can be made,
// so crmon says what is missing, in one line, exits 125 and does not run
// CMD.
func TestExecWithoutCgroupAccess(t *testing.T) {
	requireRootRun(t)
	setpriv := testenv.RequireCommand(t, "setpriv")
	bin := crmonBinary(t)
	// nobody must be able to run the binary.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runArgv(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "exec", "--no-agent", "--ebpf=disabled", "--", "sh", "-c", "echo "+ran)
	if code != exitCrmon {
		t.Errorf("exit %d, want %d\n%s", code, exitCrmon, stderr)
	}
	if strings.Contains(stdout, ran) {
		t.Error("CMD ran")
	}
	checkErrorLines(t, stderr, 1)
	for _, w := range []string{"crmon exec: ", "root", "CAP_SYS_ADMIN", "cgroup"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
}

// TestExecReportPathsCheckedFirst: a report that cannot be written is an
// error before CMD runs (125); one that fails at the end is reported and
// fails the run: CMD's own code when it failed, else 125.
func TestExecReportPathsCheckedFirst(t *testing.T) {
	requireRootRun(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--json", "/proc/x.json"},
		{"--junit", filepath.Join(dir, "missing", "r.xml")},
		{"--html", "/dev/null"},
		{"--json", dir},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			args := append(append([]string{"exec", "-q", noAgent, "--ebpf=disabled"}, args...), "--", "sh", "-c", "echo "+ran)
			stdout, stderr, code := run(t, args...)
			if code != exitCrmon {
				t.Errorf("exit %d, want %d\n%s", code, exitCrmon, stderr)
			}
			if strings.Contains(stdout, ran) {
				t.Error("CMD ran")
			}
			checkErrorLines(t, stderr, 1)
			if !strings.Contains(stderr, args[4]) {
				t.Errorf("the error does not name %s:\n%s", args[4], stderr)
			}
		})
	}
	if fi, err := os.Lstat("/dev/null"); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}

	// The directory goes while CMD runs: the report is lost at the end.
	for _, tc := range []struct {
		exit string
		want int
	}{{"exit 0", exitCrmon}, {"exit 7", 7}} {
		gone := filepath.Join(t.TempDir(), "gone")
		if err := os.Mkdir(gone, 0o755); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "exec", "-q", noAgent, "--ebpf=disabled", "--json", filepath.Join(gone, "r.json"),
			"--", "sh", "-c", "rm -rf "+gone+"; "+tc.exit)
		if code != tc.want {
			t.Errorf("%s, report lost: exit %d, want %d\n%s", tc.exit, code, tc.want, stderr)
		}
		checkErrorLines(t, stderr, 1)
		if !strings.Contains(stderr, "--json") || !strings.Contains(stderr, gone) {
			t.Errorf("%s: the error does not name the report:\n%s", tc.exit, stderr)
		}
	}
}

// TestExecReportThroughSymlink: another user's link in /tmp to a file
// only root may write is not followed by a report root writes, while a
// link of root's own is.
func TestExecReportThroughSymlink(t *testing.T) {
	requireRootRun(t)
	important := filepath.Join(t.TempDir(), "important")
	if err := os.WriteFile(important, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.Chmod(tmp, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(tmp, "r.json")
	if err := os.Symlink(important, planted); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "exec", "-q", noAgent, "--ebpf=disabled", "--json", planted, "--", "sh", "-c", "echo "+ran)
	if code != exitCrmon || strings.Contains(stdout, ran) {
		t.Errorf("exit %d, CMD ran: %t; want 125 before CMD runs\n%s", code, strings.Contains(stdout, ran), stderr)
	}
	if !strings.Contains(stderr, "refusing to follow") {
		t.Errorf("stderr does not say why:\n%s", stderr)
	}
	if b, _ := os.ReadFile(important); string(b) != "keep me" {
		t.Errorf("the link's target was written: %q", b)
	}

	own := filepath.Join(tmp, "own.json")
	real := filepath.Join(t.TempDir(), "real.json")
	if err := os.Symlink(real, own); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "exec", "-q", noAgent, "--ebpf=disabled", "--json", own, "--", "true"); code != 0 {
		t.Fatalf("exec through an own link: exit %d\n%s", code, stderr)
	}
	readReport(t, real)
}

// TestExecJSONToStdout: with --json -, stdout is the report alone, written
// after everything CMD started has exited; CMD's stdout goes to stderr.
func TestExecJSONToStdout(t *testing.T) {
	requireRootRun(t)
	stdout, stderr, code := run(t, "exec", "-q", noAgent, "--ebpf=disabled", "--json", "-",
		"--", "sh", "-c", "echo early; (sleep 0.3; echo late) &")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
	}
	if rep["command"] == nil {
		t.Errorf("the report lacks the command: %s", stdout)
	}
	for _, w := range []string{"early", "late"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("CMD's output %q is not on stderr:\n%s", w, stderr)
		}
	}
}
