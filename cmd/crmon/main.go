// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Command crmon is a low-overhead resource monitor for Linux CI hosts and
// the containers their tests run in.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/version"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		// A command that already decided its exit code (exec, config
		// check) returns a cli.ExitCoder; anything else is exit 1.
		if ec, ok := err.(cli.ExitCoder); ok {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "crmon:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "crmon:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "crmon",
		Usage:   "resource monitor for CI hosts and their containers",
		Version: version.Get().String(),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log.level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"CRMON_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log.format", Value: "logfmt", Usage: "logfmt or json", EnvVars: []string{"CRMON_LOG_FORMAT"}},
		},
		Commands: []*cli.Command{
			runCommand(),
			snapshotCommand(),
			configCommand(),
			execCommand(),
			sessionCommand(),
			versionCommand(),
		},
		EnableBashCompletion: true,
		// main decides the exit code and prints the error once, with
		// the "crmon:" prefix; urfave/cli would otherwise exit inside Run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// newLogger builds the process logger from the global flags. Logs go to
// stderr so that stdout stays clean for snapshots and reports.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log.level"))); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String("log.format")) {
	case "logfmt", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log.format %q: want logfmt or json", c.String("log.format"))
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print crmon's version",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "as JSON"}},
		Action: func(c *cli.Context) error {
			in := version.Get()
			if c.Bool("json") {
				return writeJSON(c.App.Writer, in)
			}
			_, err := fmt.Fprintln(c.App.Writer, in.String())
			return err
		},
	}
}
