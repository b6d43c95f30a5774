// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"json", "json", 0}, {"jsn", "json", 1},
		{"kitten", "sitting", 3}, {"collection_interval", "colection_intervall", 2},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCloseAndNearest(t *testing.T) {
	if !Close("jsn", "json") || !Close("lim", "limit") || Close("frobnicate", "run") || Close("", "run") {
		t.Error("Close: a typo and a prefix are close; an unrelated word and nothing are not")
	}
	keys := []string{"collection_interval", "retention_period", "enable_alerting"}
	if got, ok := Nearest("Colection_Interval", keys); !ok || got != "collection_interval" {
		t.Errorf("Nearest = %q, %v; want collection_interval", got, ok)
	}
	if got, ok := Nearest("zzz", keys); ok {
		t.Errorf("Nearest(zzz) = %q, want no suggestion", got)
	}
}
