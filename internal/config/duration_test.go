// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		back string // how it prints
	}{
		{"0", 0, "0s"},
		{"0s", 0, "0s"},
		{"100ms", 100 * time.Millisecond, "100ms"},
		{"1s", time.Second, "1s"},
		{"30s", 30 * time.Second, "30s"},
		{"90s", 90 * time.Second, "1m30s"},
		{"5m", 5 * time.Minute, "5m"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"1h30m15s250ms", time.Hour + 30*time.Minute + 15*time.Second + 250*time.Millisecond, "1h30m15s250ms"},
		{"7d", 7 * 24 * time.Hour, "7d"},
		{"30d", 30 * 24 * time.Hour, "30d"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{"2w", 14 * 24 * time.Hour, "14d"},
		{"1y", 365 * 24 * time.Hour, "365d"},
	} {
		got, err := ParseDuration(c.in)
		if err != nil {
			t.Errorf("ParseDuration(%q) = %v", c.in, err)
			continue
		}
		if got.Std() != c.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", c.in, got.Std(), c.want)
		}
		if s := got.String(); s != c.back {
			t.Errorf("ParseDuration(%q).String() = %q, want %q", c.in, s, c.back)
		}
		// What it prints parses back to the same value.
		again, err := ParseDuration(got.String())
		if err != nil || again != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got.String(), again, err, got)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{"", "30", "s", "-1s", "1.5h", "30 s", "1x", "30S", "1m1h", "10µs"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil {
		t.Fatal(err)
	}
	b, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("1h30m", string(b)); diff != "" {
		t.Errorf("MarshalText (-want +got):\n%s", diff)
	}
	if err := d.Set("2m"); err != nil || d.Std() != 2*time.Minute {
		t.Errorf("Set(2m) = %v, d = %v", err, d)
	}
	if err := d.Set("forever"); err == nil {
		t.Error("Set(forever) = nil, want an error")
	}
	// Below a millisecond has no unit in this syntax; String still says it.
	if s := Duration(1500 * time.Microsecond).String(); s != "1ms500µs" {
		t.Errorf("String() = %q", s)
	}
}
