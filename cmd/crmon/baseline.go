// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/report"
	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/session"
)

// maxReportFile bounds a report crmon reads back (--baseline, crmon
// diff). A report without series holds the totals, up to a few thousand
// containers and processes: a few MiB at most.
const maxReportFile = 64 << 20

// maxBaselines bounds --baseline: a median of more adds nothing.
const maxBaselines = 32

// checks are what a run's report is checked against: its limits, and its
// baselines with the bounds on how far its figures may grow.
type checks struct {
	limits        session.Limits
	baselines     []*session.Report
	baselineNames []string
	bounds        []session.RegressionBound
}

// regressionFlags are the baseline options of `crmon exec` and `crmon
// session stop`.
func regressionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "baseline", Usage: "compare with the JSON report `FILE` of an earlier run (repeatable: the median of several)"},
		&cli.StringSliceFlag{Name: "max-regression", Usage: "fail (exit 3) when a figure of the totals grows more than this over the baseline: `FIGURE=PERCENT%`, e.g. cpu_seconds=10% (repeatable)"},
	}
}

// loadChecks reads the limits (loadLimits), the baselines and the
// regression bounds, so that bad options fail before CMD runs.
func loadChecks(c *cli.Context) (checks, error) {
	var ch checks
	var err error
	if ch.limits, err = loadLimits(c); err != nil {
		return ch, err
	}
	var errs []error
	for _, s := range c.StringSlice("max-regression") {
		b, err := session.ParseRegressionFlag(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--max-regression %s: %w", s, err))
			continue
		}
		ch.bounds = append(ch.bounds, b)
	}
	names := c.StringSlice("baseline")
	if len(names) > maxBaselines {
		errs = append(errs, fmt.Errorf("--baseline: %d files, at most %d", len(names), maxBaselines))
		names = nil
	}
	for _, n := range names {
		r, err := readReportFile(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("--baseline: %w", err))
			continue
		}
		ch.baselines = append(ch.baselines, r)
		ch.baselineNames = append(ch.baselineNames, n)
	}
	if len(ch.bounds) > 0 && len(names) == 0 {
		errs = append(errs, errors.New("--max-regression needs --baseline FILE: the report of the run to compare with"))
	}
	return ch, errors.Join(errs...)
}

// readReportFile reads a JSON report that crmon wrote.
func readReportFile(name string) (*session.Report, error) {
	b, err := userfile.Read(name, maxReportFile)
	if err != nil {
		return nil, err
	}
	var probe struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a crmon JSON report: %w", name, err)
	}
	if probe.SchemaVersion == nil {
		return nil, fmt.Errorf("%s: not a crmon JSON report: no schema_version", name)
	}
	if *probe.SchemaVersion != session.SchemaVersion {
		return nil, fmt.Errorf("%s: report schema version %d, this crmon reads version %d", name, *probe.SchemaVersion, session.SchemaVersion)
	}
	var r session.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

// check evaluates rep against ch, recording the results in rep, and
// returns the limits exceeded and the regressions beyond their bounds.
func (ch checks) check(rep *session.Report, unmeasured session.Unmeasured) error {
	limitErr := rep.Check(ch.limits, unmeasured)
	rep.Baselines = ch.baselineNames
	return errors.Join(limitErr, rep.CheckRegressions(ch.baselines, ch.bounds, unmeasured))
}

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "compare a run's JSON report with one or more earlier ones",
		ArgsUsage: "BASE.json [BASE2.json...] NEW.json",
		Description: `crmon diff prints each figure of NEW beside the same figure of BASE, and the
change: the totals, each container (by name) and each process row (by command). With several
BASE files, each figure of the baseline is their median. --max-regression checks the
totals as crmon exec --baseline does, and exits 3 when a figure grew beyond its bound.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "max-regression", Usage: "exit 3 when a figure of the totals grew more than this: `FIGURE=PERCENT%` (repeatable)"},
			&cli.StringFlag{Name: "unmeasured", Value: string(session.UnmeasuredError), Usage: "a bound on a figure that was not measured: error (fails like a regression) or skip", Action: oneOf(string(session.UnmeasuredError), string(session.UnmeasuredSkip))},
		},
		Action: runDiff,
	}
}

func runDiff(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) < 2 {
		return usageErrorf("want BASE.json [BASE2.json...] NEW.json")
	}
	if len(args)-1 > maxBaselines {
		return usageErrorf("%d baselines, at most %d", len(args)-1, maxBaselines)
	}
	var bounds []session.RegressionBound
	for _, s := range c.StringSlice("max-regression") {
		b, err := session.ParseRegressionFlag(s)
		if err != nil {
			return usageErrorf("--max-regression %s: %w", s, err)
		}
		bounds = append(bounds, b)
	}
	var reps []*session.Report
	for _, a := range args {
		r, err := readReportFile(a)
		if err != nil {
			return withCode(exitFailure, err)
		}
		reps = append(reps, r)
	}
	bases, cur := reps[:len(reps)-1], reps[len(reps)-1]
	if err := report.Diff(c.App.Writer, bases, args[:len(args)-1], cur, args[len(args)-1]); err != nil {
		return withCode(exitFailure, err)
	}
	err := cur.CheckRegressions(bases, bounds, session.Unmeasured(c.String("unmeasured")))
	for _, g := range cur.Regressions {
		fmt.Fprintln(c.App.Writer, strings.TrimSpace(report.RegressionText(g)))
	}
	if err != nil {
		return exitSilently(ExitLimitExceeded)
	}
	return nil
}
