// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import "testing"

func TestPopulated(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"empty file", "", false},
		{"populated", "populated 1\nfrozen 0\n", true},
		{"emptied", "populated 0\nfrozen 0\n", false},
		{"not the first line", "frozen 0\npopulated 1\n", true},
		{"no trailing newline", "populated 1", true},
		{"no value", "populated \nfrozen 0\n", false},
		{"other keys only", "frozen 1\n", false},
		{"a key that only starts alike", "populated_x 1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Populated([]byte(tc.in)); got != tc.want {
				t.Errorf("Populated(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
