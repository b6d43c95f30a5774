// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"strings"
	"testing"
)

// TestTableHostileNames: `crmon top --all` lists cgroups by path, and
// anyone with a delegated cgroup names theirs: escape sequences, C1
// controls, bidirectional overrides and line breaks in a name reach the
// terminal as text, not as commands, and every row stays one line.
func TestTableHostileNames(t *testing.T) {
	v := Compute(sample(10, false), sample(12, false), false)
	rows := append([]Row(nil), v.Rows...)
	rows[0].Name = "/user.slice/x\x1b]52;c;aGk=\x07\x1b[2J\u009b31m"
	rows[1].Name, rows[1].Image = "evil\u202egnp.exe\nfake row", "img\x1b[8m"
	header, lines := Table(rows, v.Host.Time, 0)
	if len(lines) != len(rows) {
		t.Fatalf("%d lines for %d rows", len(lines), len(rows))
	}
	for _, l := range append(lines, header) {
		if i := strings.IndexFunc(l, func(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u202e' }); i >= 0 {
			t.Errorf("a control character reaches the terminal at %d: %q", i, l)
		}
	}
	if !strings.Contains(lines[0], `/user.slice/x\x1b]52;c;aGk=\x07`) {
		t.Errorf("the name is not shown escaped: %q", lines[0])
	}
}
