// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/suggest"
)

// commandError is an error as main prints it: once, after the name of the
// command it came from ("crmon exec: ...").
type commandError struct {
	cmd string
	err error
}

// Error names the command on every line: errors.Join puts one problem on
// each.
func (e *commandError) Error() string {
	msg := e.err.Error()
	if msg == "" {
		return ""
	}
	return e.cmd + ": " + strings.ReplaceAll(msg, "\n", "\n"+e.cmd+": ")
}

func (e *commandError) Unwrap() error { return e.err }

// ExitCode is the code err carries, exitFailure when it carries none.
func (e *commandError) ExitCode() int {
	var ec cli.ExitCoder
	if errors.As(e.err, &ec) {
		return ec.ExitCode()
	}
	return exitFailure
}

// exitCode is what main exits with for err.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitFailure
}

// errorMessage is err as main prints it: prefixed once with the command
// that failed, or with "crmon" when no command claimed it.
func errorMessage(err error) string {
	var ce *commandError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	return "crmon: " + err.Error()
}

// prepareCommands gives every command of the tree under path the same
// error handling: errors are prefixed once with the command's path, a bad
// flag is a usage error (exit 2) with a suggestion instead of the whole
// help, an unknown subcommand is a usage error too, and `help` knows only
// the commands that exist.
func prepareCommands(path string, cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		sub := path + " " + cmd.Name
		cmd.OnUsageError = onUsageError(sub)
		if len(cmd.Subcommands) > 0 {
			cmd.Subcommands = append(prepareCommands(sub, cmd.Subcommands), helpCommand(sub))
			if cmd.Action == nil {
				cmd.Action = groupAction(sub)
			}
		}
		cmd.Action = prefixErrors(sub, cmd.Action)
		cmd.Before = checkBefore(sub, cmd)
	}
	return cmds
}

// checkBefore refuses, before the command runs, its bad flag values and,
// for a command that takes no arguments, any argument: `crmon run foo`
// must not start an agent as if foo meant something. Flags go before a
// command's arguments (Go's flag parsing stops at the first argument): one
// of the command's flags among its arguments is refused with that said,
// instead of being taken for a file name or ignored. exec is the
// exception (what follows its CMD is CMD's), and so is a group such as
// session, whose arguments are its subcommand's.
func checkBefore(path string, cmd *cli.Command) cli.BeforeFunc {
	// Decided now: urfave/cli gives every command a help subcommand when
	// it runs.
	takesNone := cmd.ArgsUsage == "" && len(cmd.Subcommands) == 0
	passesArgs := strings.Contains(cmd.ArgsUsage, "--") || len(cmd.Subcommands) > 0
	return func(c *cli.Context) error {
		err := checkFlags(c, cmd.Flags)
		if a := c.Args().First(); err == nil && takesNone && c.Args().Present() && !(c.NArg() == 1 && (a == "help" || a == "h")) {
			err = fmt.Errorf("unexpected argument %q: %s takes none", c.Args().First(), path)
		}
		if f := flagAmongArgs(c.Args().Slice(), cmd.Flags); err == nil && !passesArgs && f != "" {
			err = fmt.Errorf("flag %s after the arguments: flags go before them: %s [flags] %s", f, path, cmd.ArgsUsage)
		}
		if err != nil {
			return &commandError{cmd: path, err: withCode(exitUsage, err)}
		}
		return nil
	}
}

// flagAmongArgs names the first of args that is one of flags (-n, --name,
// --name=value), as its help writes it, or is "".
func flagAmongArgs(args []string, flags []cli.Flag) string {
	for _, a := range args {
		name, ok := strings.CutPrefix(a, "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		for _, f := range flags {
			if slices.Contains(f.Names(), name) {
				if len(name) == 1 {
					return "-" + name
				}
				return "--" + name
			}
		}
	}
	return ""
}

// checkFlagsBefore refuses the app's bad global flag values.
func checkFlagsBefore(path string, flags []cli.Flag) cli.BeforeFunc {
	return func(c *cli.Context) error {
		if err := checkFlags(c, flags); err != nil {
			return &commandError{cmd: path, err: withCode(exitUsage, err)}
		}
		return nil
	}
}

// prefixErrors names the command in the errors act returns, once.
func prefixErrors(path string, act cli.ActionFunc) cli.ActionFunc {
	if act == nil {
		return nil
	}
	return func(c *cli.Context) error {
		err := act(c)
		var ce *commandError
		if err == nil || errors.As(err, &ce) {
			return err
		}
		return &commandError{cmd: path, err: err}
	}
}

// singleDashFlag matches a flag as Go's flag package names it in errors,
// with one dash whatever the user typed.
var singleDashFlag = regexp.MustCompile(`(flag provided but not defined: |flag needs an argument: |for flag |bad flag syntax: )-([^-\s:][^\s:]+)`)

// onUsageError reports a flag that does not parse: one line naming it as
// the user wrote it (--json, not -json), the closest existing flag, and
// where the help is.
func onUsageError(path string) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		msg := singleDashFlag.ReplaceAllString(err.Error(), "$1--$2")
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok && cli.SuggestFlag != nil {
			if s := cli.SuggestFlag(c.Command.Flags, strings.TrimLeft(name, "-"), c.Command.HideHelp); s != "" && similar(strings.TrimLeft(name, "-"), strings.TrimLeft(s, "-")) {
				msg += "; did you mean " + s + "?"
			}
		}
		return &commandError{cmd: path, err: usageErrorf("%s (see '%s --help')", msg, path)}
	}
}

// similar keeps suggestions that share something with what was typed:
// Jaro-Winkler, which cli.SuggestFlag uses, always finds a "closest"
// flag, however unrelated.
func similar(typed, name string) bool { return suggest.Close(typed, name) }

// unknownCommand is the usage error for a command name that does not
// exist among cmds.
func unknownCommand(path, name string, cmds []*cli.Command) error {
	msg := fmt.Sprintf("unknown command %q", name)
	best, bestD := "", 0
	for _, cmd := range cmds {
		for _, n := range cmd.Names() {
			if d := suggest.Distance(name, n); similar(name, n) && (best == "" || d < bestD) {
				best, bestD = n, d
			}
		}
	}
	if best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	return &commandError{cmd: path, err: usageErrorf("%s (see '%s --help')", msg, path)}
}

// groupAction runs for a command that only groups others (crmon, crmon
// session) when no subcommand is named: help for none, a usage error for
// one that does not exist.
func groupAction(path string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Args().Present() {
			return unknownCommand(path, c.Args().First(), c.Command.Subcommands)
		}
		return showHelp(c)
	}
}

// showHelp shows the help of the command c runs: the app's for the root.
func showHelp(c *cli.Context) error {
	if len(c.Lineage()) <= 2 {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// helpCommand replaces urfave/cli's own, which exits 3 (crmon's "limit
// exceeded") for a topic that does not exist.
func helpCommand(path string) *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "show the commands, or one command's options",
		ArgsUsage: "[COMMAND]",
		Action: func(c *cli.Context) error {
			parent := c.Lineage()[1]
			if !c.Args().Present() {
				return showHelp(parent)
			}
			name := c.Args().First()
			for _, cmd := range parent.Command.Subcommands {
				if cmd.HasName(name) && cmd.Name != "help" {
					return cli.ShowCommandHelp(parent, name)
				}
			}
			return unknownCommand(path, name, parent.Command.Subcommands)
		},
	}
}
