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
		// Every error reaches here, printed once; commands that decided
		// their exit code (exec, a usage error) carry it.
		if msg := errorMessage(err); msg != "" {
			fmt.Fprintln(os.Stderr, msg)
		}
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	const name = "crmon"
	flags := []cli.Flag{
		&cli.StringFlag{Name: "log.level", Value: "info", Usage: orList(logLevels), EnvVars: []string{"CRMON_LOG_LEVEL"}, Action: oneOf(logLevels...)},
		&cli.StringFlag{Name: "log.format", Value: "logfmt", Usage: "logfmt or json", EnvVars: []string{"CRMON_LOG_FORMAT"}, Action: oneOf("logfmt", "json")},
		// urfave/cli adds --help only along with its own help command,
		// which crmon replaces.
		cli.HelpFlag,
	}
	return &cli.App{
		Name:    name,
		Usage:   "resource monitor for CI hosts and their containers",
		Version: version.Get().String(),
		Flags:   flags,
		Commands: append(prepareCommands(name, []*cli.Command{
			runCommand(),
			snapshotCommand(),
			topCommand(),
			configCommand(),
			alertsCommand(),
			queryCommand(),
			reportCommand(),
			execCommand(),
			diffCommand(),
			sessionCommand(),
			versionCommand(),
		}), helpCommand(name)),
		Action:               groupAction(name),
		Before:               checkFlagsBefore(name, flags),
		OnUsageError:         onUsageError(name),
		EnableBashCompletion: true,
		// main decides the exit code and prints the error once, with
		// the command's name; urfave/cli would otherwise exit inside Run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// newLogger builds the process logger from the global flags. Logs go to
// stderr so that stdout stays clean for snapshots and reports.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	level, err := parseLogLevel(c.String("log.level"))
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String("log.format")) {
	case "logfmt":
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
