// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"fmt"
	"runtime"
	"testing"
)

// recorder is a testing.TB whose Fatalf ends only the goroutine it is
// called on, and records the failure.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Logf(format string, a ...any) {}
func (r *recorder) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
	runtime.Goexit()
}

func TestUntilBlockCounted(t *testing.T) {
	const want = 100
	type result struct {
		got  float64
		lost uint64
	}
	tests := []struct {
		name     string
		attempts []result
		tries    int
		fail     bool
	}{
		{"counted at once", []result{{want, 0}}, 1, false},
		{"over-count returned for the caller to fail", []result{{want + 1, 0}}, 1, false},
		{"under-count without a lost completion fails at once", []result{{want - 10, 0}, {want, 0}}, 1, true},
		{"under-count explained by lost completions is retried", []result{{want - 10, 2}, {want, 0}}, 2, false},
		{"under-count explained, then not", []result{{want - 10, 2}, {want - 10, 0}, {want, 0}}, 2, true},
		{"three explained under-counts fail", []result{{want - 10, 1}, {want - 10, 1}, {want - 10, 1}, {want, 0}}, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tries := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				UntilBlockCounted(r, want, func(try int) (float64, uint64) {
					tries++
					a := tt.attempts[try-1]
					return a.got, a.lost
				})
			}()
			<-done
			if tries != tt.tries {
				t.Errorf("%d attempts, want %d", tries, tt.tries)
			}
			if (r.failed != "") != tt.fail {
				t.Errorf("failed %q, want failure %v", r.failed, tt.fail)
			}
		})
	}
}
