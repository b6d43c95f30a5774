// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import "testing"

// UntilBlockCounted runs attempt, which writes want bytes with O_DIRECT
// and returns the bytes the eBPF probes charged to the writer and the
// block completions the probes lost meanwhile (crmon_bpf_dropped_events_total
// {probe="block",reason="lost_completion"}, host-wide). It runs attempt
// again, up to three times in all, only while the count falls short of
// want and lost completions explain it, and returns the last count.
//
// On Linux 6.18 the tp_btf block programs were seen not to run for some
// block_rq_complete events that ftrace recorded on the same tracepoint,
// with no recursion miss counted, most often while another program
// attached to or detached from it (another test's probes, another agent).
// Such an attempt undercounts by whole requests, and the probe counts the
// requests whose completion it did not see. An under-count with no lost
// completion fails at once; a count of want or more is returned, and one
// above want, or bytes charged to another cgroup, fails in the caller's
// checks. Each retry is logged, so a run that needed one shows it.
func UntilBlockCounted(t testing.TB, want float64, attempt func(try int) (got float64, lost uint64)) float64 {
	t.Helper()
	for try := 1; ; try++ {
		got, lost := attempt(try)
		switch {
		case got >= want:
			return got
		case lost == 0:
			t.Fatalf("attempt %d: the probes counted %.0f of %.0f bytes written, and lost no block completion meanwhile", try, got, want)
		case try == 3:
			t.Fatalf("attempt %d: the probes counted %.0f of %.0f bytes written; %d block completions lost meanwhile, in every attempt", try, got, want, lost)
		}
		t.Logf("attempt %d: the probes counted %.0f of %.0f bytes written and lost %d block completions meanwhile, retrying", try, got, want, lost)
	}
}
