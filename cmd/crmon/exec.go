// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/report"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/session"
)

// ExitLimitExceeded is crmon exec's exit code when CMD succeeded but went
// over a limit.
const ExitLimitExceeded = 3

// agentProbeTimeout bounds the /healthz probe. Without an agent the probe
// costs nothing whatever the bound: there is no socket, or nothing accepts
// on it, and the kernel says so at once. With one, a loaded host may take
// longer than a few hundred milliseconds to answer, and giving up then
// would measure without the agent's probes for no reason.
const agentProbeTimeout = 2 * time.Second

// reportFlags are the report options of `crmon exec` and `crmon session
// stop`.
func reportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "json", Usage: "write the report as JSON (schema: docs/report.md) to `FILE`; - writes it to stdout once CMD and all it started have exited, and sends CMD's stdout to stderr, so that stdout is the report alone"},
		&cli.StringFlag{Name: "junit", Usage: "write the limits as JUnit XML to `FILE`, one test case per limit (- for stdout, as with --json -)"},
		&cli.StringFlag{Name: "html", Usage: "write a self-contained HTML report with plots to `FILE` (- for stdout, as with --json -)"},
		&cli.StringFlag{Name: "markdown", Usage: "write a Markdown summary (totals, findings, limits) to `FILE` (- for stdout); without it, the summary is appended to $GITHUB_STEP_SUMMARY when that is set"},
		&cli.StringFlag{Name: "gitlab-metrics", Usage: "write the totals as a GitLab metrics report (artifacts:reports:metrics) to `FILE` (- for stdout)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no summary on stderr"},
		&cli.StringFlag{Name: "limits", Usage: "read limits from the TOML `FILE` ([cleanroom.resource_limits])"},
		&cli.StringSliceFlag{Name: "limit", Usage: "a limit `NAME=VALUE` or container:PATTERN:NAME=VALUE (repeatable; overrides the file's limit of the same name and pattern); names: " + strings.Join(session.LimitNames(), ", ")},
		&cli.StringFlag{Name: "unmeasured", Value: string(session.UnmeasuredError), Usage: "a limit on a figure that was not measured: error (fails like an exceeded limit) or skip (reported as skipped)", Action: oneOf(string(session.UnmeasuredError), string(session.UnmeasuredSkip))},
		&cli.StringFlag{Name: "name", Usage: "name the report and its JUnit suite `NAME` (default: exec, or the session's name), so that CI follows it across runs"},
		agentURLFlag(),
	}
}

func execCommand() *cli.Command {
	flags := append(append(reportFlags(), regressionFlags()...),
		&cli.StringSliceFlag{Name: "containers", Usage: "report only containers with label `LABEL=VALUE` (repeatable; all must match); default: every container created during the run"},
		&cli.BoolFlag{Name: "kill-stragglers", Usage: "kill the processes CMD leaves behind when it exits instead of waiting for them"},
		&cli.DurationFlag{Name: "max-wait", Usage: "after CMD exits, wait at most `D` for the processes it left behind, then kill them (0: no bound)", Action: durationIn(0, 24*time.Hour)},
		sampleIntervalFlag(),
		&cli.BoolFlag{Name: "no-agent", Usage: "measure in this process even when an agent is running"},
		&cli.StringFlag{Name: "ebpf", Value: "auto", Usage: "without an agent: auto (load the probes when the kernel allows), required or disabled", EnvVars: []string{"CRMON_EBPF"}, Action: oneOf(config.EBPFModes...)},
		&cli.StringFlag{Name: "cgroup-parent", Value: runner.DefaultParent, Usage: "cgroup under which the run gets its own"},
		&cli.StringFlag{Name: "docker-host", Usage: "Docker engine (default $DOCKER_HOST or the local socket)", EnvVars: []string{"DOCKER_HOST"}},
	)
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command in a cgroup of its own and report what it and its containers consumed",
		ArgsUsage: "[options] -- CMD [ARGS...]",
		Description: `crmon exec runs CMD in a fresh cgroup and measures it from its first instruction
to the exit of the last process it started: CPU, run-queue wait, context switches, block
I/O, network, peak memory and processes, and the same for every container created during
the run. CMD's stdin, stdout, stderr, signals and exit code pass through; if CMD succeeds
but a limit is exceeded, or is on a figure that was not measured (unless --unmeasured
skip), crmon exits 3. Processes CMD leaves behind are named on stderr and waited for
(--kill-stragglers, --max-wait). With an agent running (its control socket,
CRMON_AGENT_URL, default unix:///run/crmon/crmon.sock) the agent measures; otherwise exec
loads the probes itself. exec uses the socket only if root owns it and every directory
above it, so no other user can stand in for the agent.`,
		Flags:           flags,
		SkipFlagParsing: false,
		Action:          runExec,
	}
}

func runExec(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageErrorf("no command given: crmon exec [options] -- CMD [ARGS...]")
	}
	logger, err := execLogger(c)
	if err != nil {
		return withCode(exitUsage, err)
	}
	checks, err := loadChecks(c)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if _, err := runner.CleanParent(c.String("cgroup-parent")); err != nil {
		return usageErrorf("--cgroup-parent: %w", err)
	}
	// Everything that can fail before CMD runs fails before it runs.
	outs, err := openReports(c, exitCrmon)
	if err != nil {
		return err
	}
	defer outs.Abort()
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		return withCode(exitCrmon, err)
	}
	if err := runner.CheckAccess(h, c.String("cgroup-parent")); err != nil {
		return withCode(exitCrmon, err)
	}
	stdout := io.Writer(os.Stdout)
	if outs.toStdout() {
		// stdout carries the report alone.
		stdout = os.Stderr
	}
	opts := runner.ExecOptions{
		Options: runner.Options{
			Args: args, Stdin: os.Stdin, Stdout: stdout, Stderr: os.Stderr,
			KillStragglers: c.Bool("kill-stragglers"), MaxWait: c.Duration("max-wait"), ForwardSignals: true,
			Notice: c.App.ErrWriter,
		},
		Hierarchy:  h,
		Parent:     c.String("cgroup-parent"),
		Containers: c.StringSlice("containers"),
		Tracker: sessions.TrackerOptions{
			Hierarchy: h, SampleInterval: c.Duration("sample-interval"), Logger: logger,
		},
	}
	ctx := context.Background()
	// Without the agent, or when it does not start the session, exec
	// measures here, with the probes it loads itself.
	local := func(agentErr error) (sessions.TrackerOptions, func(), error) {
		return localTracker(opts.Tracker, c.String("ebpf"), c.String("docker-host"), h, agentErr)
	}
	url, err := agentSocket(c)
	if err != nil {
		return err
	}
	if !c.Bool("no-agent") && agentUp(ctx, url, logger) {
		opts.AgentURL = url
		opts.Local = local
	} else {
		topts, release, err := local(nil)
		if err != nil {
			return withCode(exitCrmon, err)
		}
		defer release()
		opts.Tracker = topts
	}
	rep, res, err := runner.Exec(ctx, opts)
	if err != nil {
		return withCode(execFailureCode(err, res), err)
	}
	err = finishReport(c, outs, rep, checks, res.ExitCode)
	if res.Signal != 0 {
		reraise(res.Signal)
	}
	return err
}

// agentUp reports whether the agent answers on its control socket. A
// socket that is there but fails session.CheckSocket is not used, and
// said so: whoever made it could forge reports.
func agentUp(ctx context.Context, url string, logger *slog.Logger) bool {
	if p, _ := session.SocketPath(url); p != "" {
		if _, err := os.Lstat(p); err == nil {
			if err := session.CheckSocket(p); err != nil {
				logger.Warn("not using the agent", "err", err)
				return false
			}
		}
	}
	return session.HealthyClient(ctx, nil, url, agentProbeTimeout)
}

// reraise ends crmon by the signal that ended CMD, once the reports are
// written, so that a calling shell sees what it would have seen without
// crmon: bash stops a loop on a child that died of SIGINT, not on one that
// exited 130. Only SIGINT, SIGTERM and SIGHUP are re-raised: the Go
// runtime ends a process on those by the signal itself, while on SIGQUIT it
// dumps goroutines and exits 2. For the rest, and if the signal does not
// end the process, the caller's 128+N exit code stands.
func reraise(sig syscall.Signal) {
	switch sig {
	case unix.SIGINT, unix.SIGTERM, unix.SIGHUP:
	default:
		return
	}
	signal.Reset(sig)
	_ = unix.Kill(os.Getpid(), sig)
	time.Sleep(100 * time.Millisecond)
}

// finishReport checks the limits and regressions, writes the reports and
// decides the exit code: CMD's own, or ExitLimitExceeded when CMD succeeded
// but a limit was exceeded, a figure grew beyond its bound over the
// baseline, or either could not be checked (--unmeasured error). A report that
// cannot be written is reported and, when CMD succeeded, ends crmon with
// outs' failure code.
func finishReport(c *cli.Context, outs *reportOutputs, rep *session.Report, ch checks, code int) error {
	if n := c.String("name"); n != "" {
		rep.Name = n
	}
	limitErr := ch.check(rep, session.Unmeasured(c.String("unmeasured")))
	var errs []error
	if !c.Bool("quiet") {
		errs = append(errs, report.Summary(c.App.ErrWriter, rep))
	}
	errs = append(errs, outs.write(c, "json", func(w io.Writer) error { return report.JSON(w, rep, false) }))
	errs = append(errs, outs.write(c, "junit", func(w io.Writer) error {
		host, _ := os.Hostname()
		return report.JUnit(w, rep, host)
	}))
	errs = append(errs, outs.write(c, "html", func(w io.Writer) error { return report.HTML(w, rep) }))
	errs = append(errs, outs.write(c, "markdown", func(w io.Writer) error { return report.Markdown(w, rep) }))
	errs = append(errs, outs.write(c, "gitlab-metrics", func(w io.Writer) error { return report.GitLabMetrics(w, rep) }))
	if p := os.Getenv("GITHUB_STEP_SUMMARY"); p != "" && !c.IsSet("markdown") {
		if err := userfile.Append(p, func(w io.Writer) error { return report.Markdown(w, rep) }); err != nil {
			errs = append(errs, fmt.Errorf("$GITHUB_STEP_SUMMARY: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if code == 0 {
			code = outs.failCode
		}
		return withCode(code, err)
	}
	if limitErr != nil && code == 0 {
		if c.Bool("quiet") {
			fmt.Fprintln(c.App.ErrWriter, "crmon:", limitErr)
		}
		return exitSilently(ExitLimitExceeded)
	}
	if code != 0 {
		return exitSilently(code)
	}
	return nil
}

// loadLimits reads --limits and then --limit, which add to the file's and
// override the file's limit of the same name and container pattern; it
// checks --name too, so that bad options fail before CMD runs.
func loadLimits(c *cli.Context) (session.Limits, error) {
	if err := validReportName(c.String("name")); err != nil {
		return nil, err
	}
	var ls session.Limits
	if f := c.String("limits"); f != "" {
		var err error
		if ls, err = config.LoadLimits(f); err != nil {
			return nil, err
		}
	}
	var errs []error
	for _, s := range c.StringSlice("limit") {
		l, err := session.ParseLimitFlag(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--limit %s: %w", s, err))
			continue
		}
		ls = append(ls, l)
	}
	return ls.Effective(), errors.Join(errs...)
}

// maxReportName bounds --name: it ends up in file names of CI systems.
const maxReportName = 128

// validReportName accepts what JUnit consumers keep as a suite name: up to
// 128 printable characters.
func validReportName(n string) error {
	if len(n) > maxReportName {
		return fmt.Errorf("--name: %d bytes, at most %d", len(n), maxReportName)
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("--name %q: only printable characters", n)
		}
	}
	return nil
}

// execLogger logs warnings only: exec's stderr belongs to CMD.
func execLogger(c *cli.Context) (*slog.Logger, error) {
	level := slog.LevelWarn
	if c.IsSet("log.level") {
		var err error
		if level, err = parseLogLevel(c.String("log.level")); err != nil {
			return nil, err
		}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "crmon"), nil
}
