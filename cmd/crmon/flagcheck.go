// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/sessions"
)

// Flags that take a duration or one of a few words check their value in
// their Action; checkFlags runs every such check before a command does
// anything, for values from the command line, the environment and the
// defaults alike, so that nonsense is refused with the allowed values
// instead of being used.

// durationIn accepts durations from lo to hi.
func durationIn(lo, hi time.Duration) func(*cli.Context, time.Duration) error {
	return func(_ *cli.Context, d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("want a duration from %s to %s", shortDuration(lo), shortDuration(hi))
		}
		return nil
	}
}

// intIn accepts integers from lo to hi.
func intIn(lo, hi int) func(*cli.Context, int) error {
	return func(_ *cli.Context, n int) error {
		if n < lo || n > hi {
			return fmt.Errorf("want a number from %d to %d", lo, hi)
		}
		return nil
	}
}

// shortDuration is d as a user writes it: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// oneOf accepts one of words, as written.
func oneOf(words ...string) func(*cli.Context, string) error {
	return func(_ *cli.Context, s string) error {
		if !slices.Contains(words, s) {
			return fmt.Errorf("want %s", orList(words))
		}
		return nil
	}
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// checkFlags runs the checks of flags on their values in c and returns
// every problem at once.
func checkFlags(c *cli.Context, flags []cli.Flag) error {
	var errs []error
	for _, f := range flags {
		name := f.Names()[0]
		var err error
		var val string
		switch f := f.(type) {
		case *cli.DurationFlag:
			if f.Action != nil {
				val, err = shortDuration(c.Duration(name)), f.Action(c, c.Duration(name))
			}
		case *cli.StringFlag:
			if f.Action != nil {
				val, err = c.String(name), f.Action(c, c.String(name))
			}
		case *cli.IntFlag:
			if f.Action != nil {
				val, err = fmt.Sprint(c.Int(name)), f.Action(c, c.Int(name))
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s=%s: %w", name, val, err))
		}
	}
	return errors.Join(errs...)
}

// logLevels are the values of --log.level.
var logLevels = []string{"debug", "info", "warn", "error"}

// parseLogLevel reads a --log.level value that checkFlags accepted.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := oneOf(logLevels...)(nil, s); err != nil {
		return l, fmt.Errorf("--log.level=%s: %w", s, err)
	}
	return l, l.UnmarshalText([]byte(s))
}

// sampleIntervalFlag is the plots' sample interval of exec and session
// start, in the range the agent's session API takes.
func sampleIntervalFlag() cli.Flag {
	return &cli.DurationFlag{Name: "sample-interval", Value: sessions.DefaultSampleInterval, Usage: "sample interval of the plots", Action: durationIn(50*time.Millisecond, time.Hour)}
}
