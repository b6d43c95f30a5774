// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/runner"
)

// crmon's exit codes. exec passes CMD's own code through, and 126, 127 and
// 128+N as a shell reports them, so its own failure needs a code no
// shell uses: 125, as docker run and env use it.
const (
	exitFailure = 1   // crmon failed (run, snapshot, config, session)
	exitUsage   = 2   // bad command line: unknown command or flag, bad value
	exitCrmon   = 125 // exec: crmon itself failed; CMD did not run, or its report is lost
	exitNoExec  = 126 // exec: CMD exists but cannot run
	exitNoCmd   = 127 // exec: CMD not found
)

// exitError is an error with the exit code it means.
type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// withCode gives err an exit code. A nil err stays nil.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{err: err, code: code}
}

// usageErrorf is a bad command line: exit 2.
func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// exitSilently ends crmon with code and no message: the reason was
// printed already (a limit exceeded), or it is CMD's own code.
func exitSilently(code int) error { return cli.Exit("", code) }

// execFailureCode is crmon exec's exit code when runner.Exec fails: a
// shell's 127 or 126 for a CMD that could not start, 125 when crmon failed
// before CMD ran, and once CMD ran, CMD's own code when it failed (its
// failure shows as it would without crmon) or else 125.
func execFailureCode(err error, res runner.Result) int {
	var se *runner.StartError
	switch {
	case errors.As(err, &se) && se.NotFound():
		return exitNoCmd
	case errors.As(err, &se):
		return exitNoExec
	case res.Started.IsZero() || res.ExitCode == 0:
		return exitCrmon
	default:
		return res.ExitCode
	}
}
