// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestUnits(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(0), "0 B"},
		{Bytes(1023), "1023 B"},
		{Bytes(1536), "1.50 KiB"},
		{Bytes(16 << 20), "16.0 MiB"},
		{Bytes(23.5 * (1 << 30)), "23.5 GiB"},
		{Bytes(300 << 30), "300 GiB"},
		{Millis(0.00104), "1.04 ms"},
		{Millis(0.000012), "0.012 ms"},
		{Millis(0.25), "250 ms"},
		{Millis(4.3), "4.30 s"},
		{Age(45 * time.Second), "45s"},
		{Age(192 * time.Second), "3m12s"},
		{Age(2*time.Hour + 5*time.Minute), "2h5m"},
		{Age(99 * time.Hour), "4d3h"},
		{pctText(ptr(99.5)), "100 %"},
		{pctText(ptr(3.25)), "3.2 %"},
		{pctText(nil), "n/a"},
		{rateText(ptr(2048.0)), "2.00 KiB/s"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestTable checks the columns' alignment, n/a for what was not measured,
// and that a narrow terminal cuts names, then leaves the image out.
func TestTable(t *testing.T) {
	v := Compute(sample(10, false), sample(12, false), false)
	now := v.Host.Time
	header, lines := Table(v.Rows, now, 0)
	if !strings.HasPrefix(header, "NAME      IMAGE    CPU  RUNQ WAIT") || len(lines) != 2 {
		t.Fatalf("header %q, lines %q", header, lines)
	}
	if !strings.Contains(lines[0], "busy-one") || !strings.Contains(lines[0], "5.00 MiB") || !strings.Contains(lines[0], "n/a") {
		t.Errorf("row %q: want the name, memory in MiB and n/a for what the probes measure", lines[0])
	}
	if strings.Index(header, "MEMORY")+len("MEMORY") != strings.Index(lines[0], "MiB")+len("MiB") {
		t.Errorf("figures are not right-aligned under their header:\n%s\n%s", header, lines[0])
	}
	rows := append([]Row(nil), v.Rows...)
	rows[0].Name = strings.Repeat("very-long-container-name-", 3)
	for _, w := range []int{150, 100} {
		header, lines = Table(rows, now, w)
		for _, l := range append(lines, header) {
			if n := utf8.RuneCountInString(l); n > w {
				t.Errorf("width %d: line of %d: %q", w, n, l)
			}
		}
	}
	if strings.Contains(header, "IMAGE") {
		t.Errorf("at 100 columns the image should go: %q", header)
	}
	if !strings.Contains(lines[0], "…") {
		t.Errorf("a long name should be cut: %q", lines[0])
	}
}
