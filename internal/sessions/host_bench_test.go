// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import "testing"

// BenchmarkHostSample is one host read of a session that samples for
// itself (`crmon exec` without an agent): /proc/stat, /proc/meminfo and a
// statfs of /. Under an agent a session takes these from the ticks
// instead, and reads them only at its start and stop.
//
//	go test -run '^$' -bench HostSample -count 5 ./internal/sessions
func BenchmarkHostSample(b *testing.B) {
	h := newHostSampler("/proc", "/")
	for b.Loop() {
		if _, _, _, _, err := h.sample(); err != nil {
			b.Fatal(err)
		}
	}
}
