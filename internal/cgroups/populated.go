// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import "bytes"

// Populated reads "populated 0|1" from a cgroup2 cgroup.events: whether
// any process is left in the cgroup or below it.
func Populated(b []byte) bool {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("populated ")); ok {
			return len(v) > 0 && v[0] == '1'
		}
	}
	return false
}
