// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import "testing"

func TestTerminalText(t *testing.T) {
	for _, tc := range []struct {
		in        string
		keepLines bool
		want      string
	}{
		{"/docker/abc-1.scope", false, "/docker/abc-1.scope"},
		{"ünïcode ✓ 日本", false, "ünïcode ✓ 日本"},
		{"/x\x1b]52;c;aGk=\x07", false, `/x\x1b]52;c;aGk=\x07`},
		{"\x1b[2J\x1b[Hfake", false, `\x1b[2J\x1b[Hfake`},
		{"c1 \u009b31m csi", false, `c1 \x9b31m csi`},
		{"del\x7f nul\x00", false, `del\x7f nul\x00`},
		{"evil\u202egnp.exe \u2066x\u2069", false, `evil\u202egnp.exe \u2066x\u2069`},
		{"a\nb\tc\r", false, `a\x0ab\x09c\x0d`},
		{"a\nb\tc\r\u2028", true, "a\nb\tc\\x0d\\u2028"},
	} {
		if got := TerminalText(tc.in, tc.keepLines); got != tc.want {
			t.Errorf("TerminalText(%q, %v) = %q, want %q", tc.in, tc.keepLines, got, tc.want)
		}
	}
}
