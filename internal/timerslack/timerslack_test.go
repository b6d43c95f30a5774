// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package timerslack

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestSetEveryThreadAndTheirChildren sets the slack of a process's threads
// and reads it back from each, then from a thread created afterwards, and
// checks that a timer still fires, the slack late at most (with room for a
// busy machine's scheduling). Run in a child process, so that the test
// binary's other tests keep the kernel's default.
func TestSetEveryThreadAndTheirChildren(t *testing.T) {
	testenv.RequireRoot(t) // another thread's slack needs CAP_SYS_NICE
	const slack = 4 * time.Millisecond
	if os.Getenv("TIMERSLACK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSetEveryThreadAndTheirChildren$", "-test.v")
		cmd.Env = append(os.Environ(), "TIMERSLACK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestSetEveryThreadAndTheirChildren") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	n, err := Set("/proc", slack)
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := filepath.Glob("/proc/self/task/*")
	if n == 0 || n > len(tasks) {
		t.Fatalf("set %d threads of %d", n, len(tasks))
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(filepath.Base(task))
		got, err := Get("/proc", tid)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		if got != slack {
			t.Errorf("thread %d: slack %v, want %v", tid, got, slack)
		}
	}

	// Threads made later are copies of one that has it: lock goroutines
	// to threads until the runtime makes a new one.
	before := map[string]bool{}
	for _, task := range tasks {
		before[filepath.Base(task)] = true
	}
	release := make(chan struct{})
	defer close(release)
	tids := make(chan int)
	for range 8 {
		go func() {
			runtime.LockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
	}
	newThreads := 0
	for range 8 {
		tid := <-tids
		if before[strconv.Itoa(tid)] {
			continue
		}
		newThreads++
		if got, err := Get("/proc", tid); err != nil || got != slack {
			t.Errorf("new thread %d: slack %v (%v), want %v", tid, got, err, slack)
		}
	}
	if newThreads == 0 {
		t.Fatal("no new thread was made")
	}

	// Timers still fire, never early.
	for range 5 {
		start := time.Now()
		time.Sleep(10 * time.Millisecond)
		if d := time.Since(start); d < 10*time.Millisecond {
			t.Fatalf("slept %v", d)
		}
	}
	if _, err := Set("/proc", -time.Second); err == nil {
		t.Error("a negative slack was taken")
	}
}
