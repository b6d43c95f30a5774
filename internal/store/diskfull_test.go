// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestDiskFullKeepsLaterTicks fills the store's file system (a small
// tmpfs) until a tick's write-ahead log record is torn, frees it, appends
// more ticks, and opens the store again: every tick that was committed,
// before the disk filled and after it had room again, is in the history.
// The TSDB's repair at open drops everything from a torn record on.
func TestDiskFullKeepsLaterTicks(t *testing.T) {
	testenv.RequireLong(t, "a tmpfs mounted")
	testenv.RequireRoot(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=6m"); err != nil {
		testenv.Unavailable(t, "mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	dir := filepath.Join(mnt, "tsdb")
	st := openStore(t, Options{Dir: dir})
	c := newSteps()
	a := agent.New([]collect.Collector{c}, time.Second, nil)
	a.SetExtra([]prometheus.Collector{st})
	failures := func() float64 { return testutil.ToFloat64(collectorOf(st, "crmon_store_append_failures_total")) }
	// Records of more than a 32 KiB page of the log, which a full disk
	// can tear.
	var committed []int64
	tick := func(i int) {
		for k := range 3000 {
			c.set(fmt.Sprintf("c%d", k), float64(i))
		}
		time.Sleep(2 * time.Millisecond)
		before := failures()
		smp := a.Tick(context.Background())
		st.Append(a, smp)
		if failures() == before {
			committed = append(committed, smp.Time.UnixMilli())
		}
	}
	for i := range 5 {
		tick(i)
	}
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); ; {
		if _, err := filler.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	full := len(committed)
	for i := 5; i < 10; i++ {
		tick(i)
	}
	if len(committed) > full {
		t.Fatalf("%d ticks committed on a full disk", len(committed)-full)
	}
	if err := os.Remove(filler.Name()); err != nil {
		t.Fatal(err)
	}
	st.lastOpen = time.Time{} // a minute later: the store is opened again
	for i := 10; i < 15; i++ {
		tick(i)
	}
	if len(committed) == full {
		t.Fatal("no tick committed once the disk had room again")
	}
	st.Close()

	st = openStore(t, Options{Dir: dir})
	q, err := st.Queryable().Querier(0, time.Now().Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "container_cpu_usage_seconds_total"), labels.MustNewMatcher(labels.MatchEqual, "name", "c0"))
	var got []int64
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			ts, _ := it.At()
			got = append(got, ts)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	for _, ts := range committed {
		found := false
		for _, g := range got {
			found = found || g == ts
		}
		if !found {
			t.Errorf("tick at %d was committed but is not in the history after a restart (%d of %d ticks there)", ts, len(got), len(committed))
		}
	}
}
