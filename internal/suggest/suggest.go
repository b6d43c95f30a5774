// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package suggest finds the likely intended word for a typo, for the
// "did you mean" of config keys, flags and commands.
package suggest

import "strings"

// Close reports whether typed is close enough to name to be a typo of it:
// one is a prefix of the other, or their edit distance is at most a third
// of what was typed (and at least 2).
func Close(typed, name string) bool {
	if typed == "" || name == "" {
		return false
	}
	if strings.HasPrefix(name, typed) || strings.HasPrefix(typed, name) {
		return true
	}
	return Distance(typed, name) <= max(2, len(typed)/3)
}

// Nearest returns the candidate closest to s by edit distance, ignoring
// case, and whether it is close enough to be a likely typo.
func Nearest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := Distance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD >= 0 && bestD <= max(2, len(s)/3)
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
