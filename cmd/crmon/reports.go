// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// reportFlagNames are the report options that name a file, or - for
// stdout.
var reportFlagNames = []string{"json", "junit", "html", "markdown", "gitlab-metrics"}

// reportOutputs are the report files of a run or a session, opened before
// it starts or stops, so that a path that cannot be written fails before
// anything is lost.
type reportOutputs struct {
	files map[string]*userfile.Output // by flag; nil for stdout
	// failCode is the exit code for a report that cannot be written.
	failCode int
}

// openReports opens the files that the report flags name. At most one
// report goes to stdout: two would run into each other.
func openReports(c *cli.Context, failCode int) (*reportOutputs, error) {
	r := &reportOutputs{files: map[string]*userfile.Output{}, failCode: failCode}
	stdout := ""
	for _, flag := range reportFlagNames {
		switch name := c.String(flag); name {
		case "":
		case "-":
			if stdout != "" {
				r.Abort()
				return nil, usageErrorf("--%s - and --%s -: only one report can go to stdout", stdout, flag)
			}
			stdout = flag
			r.files[flag] = nil
		default:
			o, err := userfile.Create(name)
			if err != nil {
				r.Abort()
				return nil, withCode(failCode, fmt.Errorf("--%s: %w", flag, err))
			}
			r.files[flag] = o
		}
	}
	return r, nil
}

// toStdout reports whether a report goes to stdout.
func (r *reportOutputs) toStdout() bool {
	for _, o := range r.files {
		if o == nil {
			return true
		}
	}
	return false
}

// write writes the report of flag, if asked for, and puts it in place.
func (r *reportOutputs) write(c *cli.Context, flag string, write func(io.Writer) error) error {
	o, ok := r.files[flag]
	if !ok {
		return nil
	}
	delete(r.files, flag)
	if o == nil {
		if err := write(c.App.Writer); err != nil {
			return fmt.Errorf("--%s -: writing to stdout: %w", flag, err)
		}
		return nil
	}
	if err := write(o); err != nil {
		o.Abort()
		return fmt.Errorf("--%s: writing %s: %w", flag, o.Path(), err)
	}
	if err := o.Commit(); err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	return nil
}

// Abort drops the reports not written; their targets stay as they were.
func (r *reportOutputs) Abort() {
	for _, o := range r.files {
		if o != nil {
			o.Abort()
		}
	}
}
