// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// Duration is a time.Duration written as Prometheus writes durations: a
// string of number+unit parts, largest unit first, with units ms, s, m, h,
// d (24h), w (7d) and y (365d): "500ms", "30s", "1h30m", "7d", "2w".
//
// It prints back with units up to days ("7d", "30d", "1d12h"), never weeks
// or years, so the ADR's examples round-trip as written.
type Duration time.Duration

// ParseDuration parses a duration such as "30s", "1h30m" or "7d".
func ParseDuration(s string) (Duration, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, errors.New(`not a duration; write a number with a unit (ms, s, m, h, d, w), largest first, e.g. "30s", "1h30m", "7d"`)
	}
	return Duration(d), nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as ParseDuration reads it: "0s", "250ms", "1h30m", "7d".
func (d Duration) String() string {
	v := time.Duration(d)
	if v == 0 {
		return "0s"
	}
	var buf [32]byte
	b := buf[:0]
	if v < 0 {
		// ParseDuration rejects these; they only come from code, and
		// Validate reports them.
		b = append(b, '-')
		v = -v
	}
	for _, u := range [...]struct {
		unit string
		size time.Duration
	}{
		{"d", 24 * time.Hour},
		{"h", time.Hour},
		{"m", time.Minute},
		{"s", time.Second},
		{"ms", time.Millisecond},
	} {
		if n := v / u.size; n > 0 {
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, u.unit...)
			v -= n * u.size
		}
	}
	if v > 0 {
		// Below a millisecond the Prometheus syntax has no unit; say it
		// the Go way rather than lose it.
		b = append(b, time.Duration(v).String()...)
	}
	return string(b)
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Set implements flag.Value (and urfave/cli's Generic), so a flag can
// take a duration in the config's syntax.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }
