// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/pkg/session"
)

// ForwardedSignals are passed on to CMD; after CMD exits, they kill what it
// left behind.
var ForwardedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// Options describe the command to run.
type Options struct {
	// Args is CMD and its arguments; Args[0] is looked up in PATH.
	Args []string
	// Env is the environment; nil means the current one.
	Env []string
	Dir string
	// Stdin, Stdout and Stderr are passed as is; when they are *os.File
	// (the default: os.Stdin, os.Stdout, os.Stderr) CMD gets the file
	// itself, so a terminal stays a terminal.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// KillStragglers kills the processes CMD leaves in the cgroup when it
	// exits, instead of waiting for them to exit.
	KillStragglers bool
	// MaxWait, when > 0, bounds the wait for the processes CMD left
	// behind: they are killed after it.
	MaxWait time.Duration
	// Notice, when set, is told once which processes CMD left behind and
	// what happens to them, so that a long wait is not a silent one.
	Notice io.Writer
	// ForwardSignals passes SIGINT, SIGTERM, SIGHUP and SIGQUIT on to CMD.
	ForwardSignals bool
	// CountProcesses counts the processes the run starts from the
	// kernel's fork events (needs CAP_NET_ADMIN).
	CountProcesses bool
}

// Result is how a run ended.
type Result struct {
	// ExitCode is CMD's exit code, or 128+signal when a signal killed it,
	// as a shell reports it.
	ExitCode int
	// Signal is the signal that killed CMD, 0 when it exited.
	Signal syscall.Signal
	// Started is taken just before CMD is cloned into the cgroup; Exited
	// when CMD was reaped; Ended when the cgroup was empty.
	Started, Exited, Ended time.Time
	// Stragglers is whether processes outlived CMD in the cgroup.
	Stragglers bool
	// Left lists (some of) the processes still in the cgroup when CMD
	// exited, and Killed why they were killed: KilledByRequest
	// (Options.KillStragglers), KilledAfterMaxWait, or "" when they were
	// waited for (or a signal or a cancelled run killed them).
	Left   []session.Process
	Killed string
	// ProcessesStarted counts CMD and its descendants when
	// Options.CountProcesses was set and the count is exact; Counted says
	// whether it is.
	ProcessesStarted uint64
	Counted          bool
	// RusageSeconds is CMD's user+system CPU time as wait4 reports it:
	// CMD's own and that of the descendants it waited for.
	RusageSeconds float64
}

// Run runs opts.Args in cg and returns once CMD has exited and the cgroup
// is empty. CMD is in every cgroup of cg before it runs its first
// instruction: the cgroup2 one from clone on (CLONE_INTO_CGROUP), the v1
// ones while it is stopped right after execve (PTRACE_TRACEME), so nothing
// it does escapes the counts. A CMD that fails to start is an error;
// everything after that is in Result.
func Run(ctx context.Context, cg *Cgroup, opts Options) (res Result, err error) {
	if len(opts.Args) == 0 {
		return res, errors.New("no command to run")
	}
	path, err := exec.LookPath(opts.Args[0])
	if err != nil {
		return res, &StartError{Err: err}
	}
	var cgfd int = -1
	if cg.V2Dir != "" {
		fd, err := unix.Open(cg.V2Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return res, fmt.Errorf("opening cgroup %s: %w", cg.V2Dir, err)
		}
		defer unix.Close(fd)
		cgfd = fd
	}
	newCmd := func(ptrace bool) *exec.Cmd {
		cmd := &exec.Cmd{
			Path: path, Args: opts.Args, Env: opts.Env, Dir: opts.Dir,
			Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr,
			SysProcAttr: &syscall.SysProcAttr{Ptrace: ptrace},
		}
		if cgfd >= 0 {
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = cgfd
		}
		return cmd
	}
	needV1 := len(cg.V1Dirs) > 0
	cmd := newCmd(needV1)

	var sigs chan os.Signal
	if opts.ForwardSignals {
		// Before the start, so a signal that arrives while CMD starts is
		// not lost, nor kills crmon before it can clean up.
		sigs = make(chan os.Signal, 8)
		signal.Notify(sigs, ForwardedSignals...)
		defer signal.Stop(sigs)
	}

	var forks *ForkCounter
	if opts.CountProcesses {
		forks, _ = NewForkCounter() // without it, the count is unavailable
	}
	err = start(cmd, cg, needV1, &res)
	if needV1 && errors.Is(err, syscall.EPERM) {
		// crmon itself is traced (strace -f, a debugger): CMD cannot be
		// stopped at exec. Join the v1 cgroups right after the start
		// instead; CMD's first instants escape the v1 counters (memory
		// peak, block I/O), the cgroup2 ones still see everything.
		cmd = newCmd(false)
		err = start(cmd, cg, false, &res)
		if err == nil {
			if err = cg.joinV1(cmd.Process.Pid); err != nil {
				abort(cmd)
			}
		}
	}
	if err != nil {
		if forks != nil {
			forks.Stop()
		}
		return res, err
	}
	if forks != nil {
		forks.Root(cmd.Process.Pid)
		defer func() { res.ProcessesStarted, res.Counted = forks.Stop() }()
	}

	var drain func()
	if forks != nil {
		drain = forks.Drain
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	// A closed Done channel is always ready: after one kill, stop
	// selecting on it, or the loop spins until CMD is reaped.
	done := ctx.Done()
wait:
	for {
		select {
		case werr = <-waited:
			break wait
		case <-tick.C:
			if drain != nil {
				drain()
			}
		case s := <-sigs:
			if !fromTerminal(s) {
				_ = cmd.Process.Signal(s)
			}
		case <-done:
			_ = cg.Kill()
			done = nil
		}
	}
	res.Exited = time.Now()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, fmt.Errorf("waiting for %s: %w", opts.Args[0], werr)
	}
	res.RusageSeconds = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		res.Signal = ws.Signal()
		res.ExitCode = 128 + int(res.Signal)
	default:
		res.ExitCode = ws.ExitStatus()
	}

	var maxWait <-chan time.Time
	if pop, _ := cg.Populated(); pop {
		res.Stragglers = true
		res.Left = cg.Processes(maxListed)
		switch {
		case opts.KillStragglers:
			res.Killed = KilledByRequest
			_ = cg.Kill()
		case opts.MaxWait > 0:
			t := time.NewTimer(opts.MaxWait)
			defer t.Stop()
			maxWait = t.C
		}
		noticeStragglers(opts, res)
	}
	// Processes CMD left behind are part of the run: wait for the last
	// one. A signal or a cancelled ctx while waiting kills them, and so
	// does the end of MaxWait.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	killedAtMax := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			_ = cg.Kill()
		case <-maxWait:
			close(killedAtMax)
			_ = cg.Kill()
		case <-wctx.Done():
		}
	}()
	if err := cg.WaitEmpty(wctx, drain); err != nil && ctx.Err() == nil {
		return res, err
	}
	select {
	case <-killedAtMax:
		res.Killed = KilledAfterMaxWait
	default:
	}
	if ctx.Err() != nil {
		// Cancelled (or past its deadline): kill what is left and wait
		// for the kill to land so the cgroup can go.
		_ = cg.Kill()
		_ = cg.WaitEmpty(context.Background(), drain)
	}
	res.Ended = time.Now()
	return res, nil
}

// StartError is CMD's own failure to start: not found, not executable,
// a bad interpreter. Every other error before CMD runs is the runner's.
type StartError struct{ Err error }

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// NotFound reports whether CMD does not exist, as a shell's exit code 127
// reports it (126 is for a CMD that exists but cannot run).
func (e *StartError) NotFound() bool {
	return errors.Is(e.Err, exec.ErrNotFound) || errors.Is(e.Err, fs.ErrNotExist)
}

// fromTerminal reports whether sig is one the terminal sends to its whole
// foreground process group, which CMD shares with crmon: Ctrl-C already
// reached CMD, and forwarding it would deliver it twice (some programs
// take a second Ctrl-C as "quit now").
func fromTerminal(sig os.Signal) bool {
	if sig != unix.SIGINT && sig != unix.SIGQUIT {
		return false
	}
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// start starts cmd and, when v1 cgroups are needed, moves it into them
// while it is stopped after execve.
func start(cmd *exec.Cmd, cg *Cgroup, needV1 bool, res *Result) error {
	if needV1 {
		// ptrace requests must come from the thread that is the tracer:
		// the one that cloned the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	res.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return &StartError{Err: err}
	}
	if !needV1 {
		return nil
	}
	pid := cmd.Process.Pid
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for %s to exec: %w", cmd.Path, err)
		}
		break
	}
	if !ws.Stopped() {
		return fmt.Errorf("%s did not stop after exec (status %v)", cmd.Path, ws)
	}
	jerr := cg.joinV1(pid)
	if err := unix.PtraceDetach(pid); err != nil {
		abort(cmd)
		return fmt.Errorf("releasing %s: %w", cmd.Path, err)
	}
	if jerr != nil {
		abort(cmd)
		return jerr
	}
	return nil
}

// abort kills a CMD that started but cannot be measured, and reaps it, so
// neither it nor os/exec's copying goroutines outlive the failed run.
func abort(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Why the processes CMD left behind were killed (Result.Killed).
const (
	KilledByRequest    = "kill-stragglers"
	KilledAfterMaxWait = "max-wait"
)

// maxListed bounds the processes a notice and a report list.
const maxListed = 20

// noticeStragglers tells opts.Notice, once, what CMD left behind and what
// the run does about it.
func noticeStragglers(opts Options, res Result) {
	if opts.Notice == nil {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "crmon: %s exited %d; still running in its cgroup:\n", opts.Args[0], res.ExitCode)
	for _, p := range res.Left {
		fmt.Fprintf(&b, "  pid %d  %s\n", p.PID, p.Command)
	}
	if len(res.Left) == maxListed {
		fmt.Fprintf(&b, "  (the first %d listed)\n", maxListed)
	}
	switch {
	case opts.KillStragglers:
		b.WriteString("crmon: killing them (--kill-stragglers)\n")
	case opts.MaxWait > 0:
		fmt.Fprintf(&b, "crmon: waiting for them to exit, at most %s (--max-wait), then killing them\n", opts.MaxWait)
	default:
		b.WriteString("crmon: waiting for them to exit (--kill-stragglers kills them, --max-wait D bounds the wait)\n")
	}
	_, _ = io.WriteString(opts.Notice, b.String())
}
