// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"fmt"
	"strings"
)

// TerminalText is s safe to print to a terminal, for names crmon did not
// choose: a cgroup's path (anyone with a delegated cgroup names theirs,
// with any bytes), a process' command, a message that quotes them. Control
// characters (ESC and the rest of C0 and C1, DEL) would be read by the
// terminal as commands — set its title, write the clipboard, clear or
// redraw the screen — and Unicode's bidirectional overrides and line
// separators would reorder or break the line; each is written as a Go
// escape (\x1b, \u202e) instead. Line breaks and tabs stay when keepLines
// is set, for text crmon lays out in lines itself.
func TerminalText(s string, keepLines bool) string {
	i := strings.IndexFunc(s, func(r rune) bool { return unsafeRune(r, keepLines) })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		switch {
		case !unsafeRune(r, keepLines):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func unsafeRune(r rune, keepLines bool) bool {
	switch {
	case r == '\n' || r == '\t':
		return !keepLines
	case r < 0x20, r >= 0x7f && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true // bidirectional embeddings, overrides, isolates and marks
	case r == 0x2028 || r == 0x2029:
		return true // line and paragraph separators
	}
	return false
}
