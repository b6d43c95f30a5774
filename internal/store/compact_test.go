// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

func TestBlockRanges(t *testing.T) {
	const h = time.Hour
	for _, c := range []struct {
		head, max time.Duration
		want      []time.Duration
	}{
		{10 * time.Minute, 16*h + 48*time.Minute, []time.Duration{10 * time.Minute, 2 * h, 16 * h}}, // 7 d
		{10 * time.Minute, 72 * h, []time.Duration{10 * time.Minute, 2 * h, 24 * h}},                // 30 d
		{10 * time.Minute, 2*h + 24*time.Minute, []time.Duration{10 * time.Minute, 2 * h}},          // 1 d
		{10 * time.Minute, 5 * h, []time.Duration{10 * time.Minute, 2 * h, 4 * h}},
		{10 * time.Minute, time.Hour, []time.Duration{10 * time.Minute}},
		{2 * h, 16 * h, []time.Duration{2 * h}},
	} {
		var got []time.Duration
		for _, r := range blockRanges(c.head, c.max) {
			got = append(got, time.Duration(r)*time.Millisecond)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("blockRanges(%v, %v) (-want +got):\n%s", c.head, c.max, diff)
		}
	}
}

func TestEagerMerge(t *testing.T) {
	const m = int64(time.Minute / time.Millisecond)
	ranges := []int64{10 * m, 120 * m, 960 * m}
	block := func(from, to int64, hints ...string) tsdb.BlockMeta {
		b := tsdb.BlockMeta{ULID: ulid.Make(), MinTime: from * m, MaxTime: to * m}
		b.Compaction.Hints = hints
		return b
	}
	for _, c := range []struct {
		name   string
		blocks []tsdb.BlockMeta
		want   []int // indexes into blocks
	}{
		{"one block", []tsdb.BlockMeta{block(0, 10)}, nil},
		{"a new head block joins its two hours", []tsdb.BlockMeta{block(0, 50), block(50, 60)}, []int{0, 1}},
		{"in any order", []tsdb.BlockMeta{block(50, 60), block(0, 50)}, []int{1, 0}},
		{"a gap within two hours", []tsdb.BlockMeta{block(0, 30), block(90, 100)}, []int{0, 1}},
		{"the first head block of the next two hours stays alone", []tsdb.BlockMeta{block(0, 120), block(120, 130)}, nil},
		{"and the finished two hours join the day's block", []tsdb.BlockMeta{block(0, 240), block(240, 360), block(360, 370)}, []int{0, 1}},
		{"but not across the top range", []tsdb.BlockMeta{block(0, 960), block(960, 1080), block(1080, 1090)}, nil},
		{"the finished two hours before the newest, at the top level", []tsdb.BlockMeta{block(0, 120), block(120, 240), block(240, 250)}, []int{0, 1}},
		{"nor across two hours", []tsdb.BlockMeta{block(100, 110), block(120, 130)}, nil},
		{"blocks made from part of the head are left to the TSDB", []tsdb.BlockMeta{block(0, 50), block(50, 60, tsdb.CompactionHintFromStaleSeries)}, nil},
		{"and skipped", []tsdb.BlockMeta{block(0, 50), block(40, 60, tsdb.CompactionHintFromStaleSeries), block(50, 60)}, []int{0, 2}},
		{"overlapping blocks are left to the TSDB", []tsdb.BlockMeta{block(0, 60), block(50, 70)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want []ulid.ULID
			for _, i := range c.want {
				want = append(want, c.blocks[i].ULID)
			}
			var got []ulid.ULID
			for _, b := range eagerMerge(c.blocks, ranges) {
				got = append(got, b.ULID)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got := eagerMerge([]tsdb.BlockMeta{block(0, 50), block(50, 60)}, ranges[:1]); got != nil {
		t.Errorf("merged with a single range: %v", got)
	}
}

// TestLayoutKeepsEverySample runs the store's layout on a real TSDB: 5 h
// at 10 s, compacted whenever the head is (as the TSDB's loop does on
// append). Every sample must still be there with its value, the blocks
// must not overlap, and each finished two hours must be one block, merged
// into the block of its day's range.
func TestLayoutKeepsEverySample(t *testing.T) {
	st := openStore(t, Options{Retention: 7 * 24 * time.Hour})
	ranges := blockRanges(headBlock, 16*time.Hour)
	// At the start of a top-level range, so that the 5 h stay in one.
	start := time.UnixMilli(time.Now().Add(-6*time.Hour).UnixMilli() / ranges[2] * ranges[2])
	const step, n, series = 10 * time.Second, 5 * 360, 20
	var text bytes.Buffer
	for i := range n {
		text.Reset()
		for j := range series {
			fmt.Fprintf(&text, "container_cpu_usage_seconds_total{name=\"c%d\"} %d\n", j, i*j)
		}
		if err := st.appendText(text.Bytes(), start.Add(time.Duration(i)*step).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if st.db.Head().MaxTime()-st.db.Head().MinTime() > headBlock.Milliseconds()*3/2 {
			if err := st.db.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := start.Add(n * step)

	bs := st.db.Blocks()
	var spans []string
	for _, b := range bs {
		spans = append(spans, fmt.Sprintf("%v–%v", time.Duration(b.Meta().MinTime-start.UnixMilli())*time.Millisecond, time.Duration(b.Meta().MaxTime-start.UnixMilli())*time.Millisecond))
	}
	// 0–4h holds the two finished two hours, merged; the third is the
	// head's blocks since, merged into one. The head keeps the last 10
	// minutes.
	want := []string{"0s–4h0m0s", "4h0m0s–4h50m0s"}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("blocks (-want +got):\n%s", diff)
	}

	q, err := st.db.Querier(start.UnixMilli(), end.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "container_cpu_usage_seconds_total"))
	got := 0
	for set.Next() {
		s := set.At()
		var j int
		if _, err := fmt.Sscanf(s.Labels().Get("name"), "c%d", &j); err != nil {
			t.Fatal(err)
		}
		it := s.Iterator(nil)
		i := 0
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if want := start.Add(time.Duration(i) * step).UnixMilli(); ts != want || v != float64(i*j) {
				t.Fatalf("%s: sample %d is (%d, %v), want (%d, %d)", s.Labels(), i, ts, v, want, i*j)
			}
			i++
		}
		if i != n {
			t.Errorf("%s: %d samples, want %d", s.Labels(), i, n)
		}
		got++
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if got != series {
		t.Errorf("%d series, want %d", got, series)
	}
}

// TestDiskBudget replays a host with 50 idle containers (2 231 series,
// recorded from a real agent) at 10 s for 5 hours of synthetic time and
// measures the data directory every ten minutes, as du does. After the
// first half hour no ten minutes may grow it by more than 50 MB a day,
// but one: a block that starts a two-hour range while its top-level range
// holds no finished block to merge costs a fresh index (see compact.go),
// which happens at the second two hours of every top-level range. The
// write-ahead log must stay at what 30 minutes append: it is truncated at
// every head block.
func TestDiskBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("5 hours of a host's series: several seconds")
	}
	top := blockRanges(headBlock, 16*time.Hour)[2]
	start := time.UnixMilli(time.Now().Add(-6*time.Hour).UnixMilli() / top * top)
	const perWindow, ticks = 60, 5 * 360
	var wal0, wal int64
	var walPerTick float64
	sizes := replay(t, Options{}, start, 10*time.Second, ticks, perWindow, func(st *Store, i int) {
		wal = dirSize(filepath.Join(st.Dir(), "wal"))
		switch i {
		case perWindow:
			wal0 = wal
		case perWindow + 6:
			// The log's growth a tick, before it is first truncated.
			walPerTick = float64(wal-wal0) / 6
		}
	}).sizes
	var growth []float64
	over := 0
	for i := 4; i < len(sizes); i++ {
		d := sizes[i] - sizes[i-1]
		g := float64(d) * 144 / 1e6
		growth = append(growth, g)
		if g > 50 {
			over++
			if over > 1 || g > 60 {
				t.Errorf("minutes %d–%d: the directory grew %d bytes, %.1f MB a day", (i-1)*10, i*10, d, g)
			}
		}
	}
	slices.Sort(growth)
	t.Logf("ten-minute growth, MB a day: min %.1f, median %.1f, max %.1f; %d over 50", growth[0], growth[len(growth)/2], growth[len(growth)-1], over)
	if limit := walPerTick * 180; float64(wal) > limit || walPerTick <= 0 {
		t.Errorf("write-ahead log of %d bytes after 5 h; more than 30 minutes of it (%.0f bytes)", wal, limit)
	}
}

// TestMergeInterruptedByACrash leaves the directory as a kill -9 between
// writing a merged block and deleting the blocks it was merged from would:
// both on disk. The store must open, keep the merged block only, and
// answer each sample once.
func TestMergeInterruptedByACrash(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	const step, n = 10 * time.Second, 6 * 35
	// Unmerged blocks of ten minutes first.
	st := openStore(t, Options{Dir: dir, Retention: 7 * 24 * time.Hour, BlockDuration: headBlock})
	synthetic(t, st, start, step, n, 3)
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	parents, err := blockMetas(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(parents) != 2 {
		t.Fatalf("%d blocks, want 2 to merge", len(parents))
	}
	saved := t.TempDir()
	for _, p := range parents {
		if err := os.CopyFS(filepath.Join(saved, p.ULID.String()), os.DirFS(filepath.Join(dir, p.ULID.String()))); err != nil {
			t.Fatal(err)
		}
	}

	// The store's layout merges them, and "crashes" before deleting them.
	st = openStore(t, Options{Dir: dir, Retention: 7 * 24 * time.Hour})
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bs := st.db.Blocks(); len(bs) != 1 || len(bs[0].Meta().Compaction.Parents) != 2 {
		t.Fatalf("%d blocks after the merge, want 1 made of 2", len(bs))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(saved)); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, Options{Dir: dir, Retention: 7 * 24 * time.Hour})
	if bs := st.db.Blocks(); len(bs) != 1 {
		t.Errorf("%d blocks after the restart, want the merged one", len(bs))
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	at := start.Add((n - 1) * step)
	v := instant(t, e, `count_over_time(container_cpu_usage_seconds_total{name="c2"}[1h])`, at)
	if len(v) != 1 || v[0].F != float64(n) {
		t.Errorf("count_over_time = %v, want %d samples, each once", v, n)
	}
}

// TestLayoutOpensAStoreOfTheTSDBLayout opens a directory written with the
// TSDB's defaults (2-hour blocks, 128 MiB log segments), as a store from
// before this layout is, goes on appending, and finds every sample.
func TestLayoutOpensAStoreOfTheTSDBLayout(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-8 * time.Hour).Truncate(2 * time.Hour)
	const step, before, after = 10 * time.Second, 6 * 60 * 5, 6 * 60
	st := openStore(t, Options{Dir: dir, Retention: 7 * 24 * time.Hour, tsdbLayout: true})
	synthetic(t, st, start, step, before, 3)
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, Options{Dir: dir, Retention: 7 * 24 * time.Hour})
	var text bytes.Buffer
	for i := before; i < before+after; i++ {
		text.Reset()
		for j := range 3 {
			fmt.Fprintf(&text, "container_cpu_usage_seconds_total{name=\"c%d\"} %d\n", j, i*j)
		}
		if err := st.appendText(text.Bytes(), start.Add(time.Duration(i)*step).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if err := st.db.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	at := start.Add((before + after - 1) * step)
	v := instant(t, e, `count_over_time(container_cpu_usage_seconds_total{name="c2"}[7h])`, at)
	if len(v) != 1 || v[0].F != before+after {
		t.Errorf("count_over_time = %v, want %d", v, before+after)
	}
	v = instant(t, e, `container_cpu_usage_seconds_total{name="c2"}`, at)
	if len(v) != 1 || v[0].F != 2*(before+after-1) {
		t.Errorf("last value = %v, want %d", v, 2*(before+after-1))
	}
	// What the head held at the restart and what came after is cut in
	// ten minutes: the head keeps at most the last 20.
	bs := st.db.Blocks()
	var spans []string
	for _, b := range bs {
		spans = append(spans, fmt.Sprintf("%v–%v", time.Duration(b.Meta().MinTime-start.UnixMilli())*time.Millisecond, time.Duration(b.Meta().MaxTime-start.UnixMilli())*time.Millisecond))
	}
	if len(bs) == 0 || at.Sub(time.UnixMilli(bs[len(bs)-1].Meta().MaxTime)) > 20*time.Minute {
		t.Errorf("blocks %v: the head holds more than 20 minutes of the %v", spans, at.Sub(start))
	}
}
