// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestSummaryHostileNames: the summary crmon exec prints names other
// users chose — another cgroup that starved the run, a process of the
// run — and none of their control characters reaches the terminal.
func TestSummaryHostileNames(t *testing.T) {
	r := sample()
	r.Findings[0].Message = "the CPUs were busy with /user.slice/x\x1b]0;title\x07\x1b[2J"
	r.Findings[0].Others[0].Cgroup = "/user.slice/y\u009b31m"
	r.Containers[0].Name = "db\x1b[8m"
	r.Command = []string{"sh", "-c", "echo \x1b[31mred\nsecond line"}
	var b bytes.Buffer
	if err := Summary(&b, r); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' || r >= 0x7f && r < 0xa0 }); i >= 0 {
		t.Errorf("a control character reaches the terminal at %d:\n%q", i, s)
	}
	if !strings.Contains(s, `/user.slice/x\x1b]0;title\x07\x1b[2J`) {
		t.Errorf("the cgroup is not shown escaped:\n%s", s)
	}
}
