// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package collect

import (
	"strings"
	"testing"
)

// TestCountsOf compares Of with the sum it stands for, over names that
// sort between a cgroup and those below it ("/a-b", "/a.b" between "/a"
// and "/a/b") and paths that are absent or only ancestors.
func TestCountsOf(t *testing.T) {
	own := map[string]uint64{
		"/": 1, "/a": 2, "/a-b": 4, "/a.b": 8, "/a/b": 16, "/a/b/c": 32, "/a/b-c": 64,
		"/ab": 128, "/b": 256, "/system.slice/x.service": 512, "/system.slice/x.service/y": 1024,
		"/a/\xff": 2048, "/a0": 4096,
	}
	c := CountsOf(own)
	want := func(p string) (n uint64) {
		for q, v := range own {
			if p == "/" || q == p || strings.HasPrefix(q, p+"/") {
				n += v
			}
		}
		return n
	}
	for _, p := range []string{"/", "/a", "/a-b", "/a.b", "/a/b", "/a/b/c", "/a/b-c", "/ab", "/b", "/a0",
		"/system.slice", "/system.slice/x.service", "/system.slice/x.service/y", "/a/x", "/z", "/a/b/c/d", "/0", "/a/\xff"} {
		if got := c.Of(p); got != want(p) {
			t.Errorf("Of(%q) = %d, want %d", p, got, want(p))
		}
	}
	if got := c.Of(""); got != 0 {
		t.Errorf(`Of("") = %d, want 0: no cgroup`, got)
	}
	if got := (Counts{}).Of("/a"); got != 0 {
		t.Errorf("no counts: Of = %d, want 0", got)
	}
}
