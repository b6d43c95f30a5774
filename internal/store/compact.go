// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// How the store's blocks are laid out on disk, chosen for the data
// directory's growth as an operator measures it (du over ten minutes,
// times 144), not only over a day. Measured with a host and 50 idle
// containers at 10 s (BenchmarkDiskWindows):
//
//   - The write-ahead log costs 5.7 bytes a sample (snappy), a block's
//     chunks 1.45 and its index about 180 KB however short the block.
//     With the TSDB's 2-hour head blocks the log holds 2–6 h and grows at
//     110 MB a day between truncations, which is what most ten-minute
//     windows see.
//   - Head blocks of ten minutes (headBlock) keep the log at its last
//     15–20 minutes (about 0.9 MB, truncated at each block cut, with
//     segments small enough to be deleted then, walSegmentSize), but a
//     new ten-minute block costs 377 KB, 54 MB a day, half of it index.
//   - So each new head block is merged at once into the block of the
//     two hours it belongs to (runRange), which then grows by the new
//     chunks only, and each finished two-hour block into the block of
//     up to a day it belongs to, in the compaction that starts the next
//     two hours' block, so that window pays for one index, not two.
//     Prometheus's own compactor waits until a range is full, which
//     leaves up to a range's worth of small blocks and their indexes.
const (
	headBlock   = 10 * time.Minute
	runRange    = 2 * time.Hour
	maxTopRange = 24 * time.Hour
)

// walSegmentSize is the write-ahead log's segment size. The TSDB deletes
// the log by whole segments, and not the newest, so a segment must hold
// well under ten minutes (headBlock) for each cut to take back what the
// last ten minutes wrote: 256 KiB is about 3 minutes of a host with 50
// idle containers at 10 s (1 MiB left every other ten minutes +140 MB/day
// and the next -85; 64–512 KiB gave the same windows). A record does not
// start in a segment it does not fit in, and the segment's last page is
// padded: with 64 KiB segments the log of a host with 23 000 series
// (80–130 KB a tick) grew 16 % faster than the TSDB's single segment did
// beside it; with 12 000 synthetic series, 64 KiB cost 7 %, 256 KiB 5.6 %
// and 512 KiB 4.5 %. A multiple of the log's 32 KiB pages.
const walSegmentSize = 256 << 10

// blockRanges are the levels the store's blocks are merged through: the
// head's blocks, runRange, and the largest multiple of runRange up to
// maxBlock and a day. A head block of runRange or more, or a maxBlock
// below two runRanges, leaves fewer levels.
func blockRanges(head, maxBlock time.Duration) []int64 {
	rs := []int64{head.Milliseconds()}
	if runRange <= head || runRange > maxBlock {
		return rs
	}
	rs = append(rs, runRange.Milliseconds())
	if top := min(maxBlock, maxTopRange).Truncate(runRange); top > runRange {
		rs = append(rs, top.Milliseconds())
	}
	return rs
}

// compactor is the TSDB's leveled compactor with the eager merges
// described above planned first. Writing and merging blocks, overlapping
// blocks, tombstones and partial-view blocks stay the TSDB's.
type compactor struct {
	*tsdb.LeveledCompactor
	ranges []int64
}

// newCompactor is a tsdb.NewCompactorFunc for ranges (blockRanges).
func newCompactor(ranges []int64) tsdb.NewCompactorFunc {
	return func(ctx context.Context, r prometheus.Registerer, l *slog.Logger, _ []int64, pool chunkenc.Pool, o *tsdb.Options) (tsdb.Compactor, error) {
		lc, err := tsdb.NewLeveledCompactorWithOptions(ctx, r, l, ranges, pool, tsdb.LeveledCompactorOptions{
			MaxBlockChunkSegmentSize:    o.MaxBlockChunkSegmentSize,
			EnableOverlappingCompaction: o.EnableOverlappingCompaction,
			PD:                          o.PostingsDecoderFactory,
			UseUncachedIO:               o.UseUncachedIO,
			BlockExcludeFilter:          o.BlockCompactionExcludeFunc,
			FloatChunkEncoding:          func() chunkenc.Encoding { return o.FloatChunkEncoding },
		})
		if err != nil {
			return nil, err
		}
		return &compactor{LeveledCompactor: lc, ranges: ranges}, nil
	}
}

// Plan returns the blocks to merge next: what the TSDB's own planner
// picks (overlapping blocks first), else an eager merge (eagerMerge).
func (c *compactor) Plan(dir string) ([]string, error) {
	res, err := c.LeveledCompactor.Plan(dir)
	if err != nil || len(res) > 0 {
		return res, err
	}
	metas, err := blockMetas(dir)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, m := range eagerMerge(metas, c.ranges) {
		dirs = append(dirs, filepath.Join(dir, m.ULID.String()))
	}
	return dirs, nil
}

// eagerMerge picks two adjacent blocks to merge, from blocks in time order
// written from the head alone (a block the TSDB marked as made from part
// of the head, or whose compaction failed, is left to its planner):
//
//   - the newest and the one before it, when both lie in one aligned
//     ranges[1] (the newest head block joins its two hours at once);
//   - otherwise the two before the newest, when both lie in one aligned
//     range of ranges[1:]: the older of them is finished, and the newer
//     one is, since the newest block lies beyond its ranges[1].
func eagerMerge(metas []tsdb.BlockMeta, ranges []int64) []tsdb.BlockMeta {
	if len(ranges) < 2 {
		return nil
	}
	var bs []tsdb.BlockMeta
	for _, m := range metas {
		if len(m.Compaction.Hints) > 0 || m.Compaction.Failed {
			continue
		}
		bs = append(bs, m)
	}
	slices.SortFunc(bs, func(a, b tsdb.BlockMeta) int { return int(min(max(a.MinTime-b.MinTime, -1), 1)) })
	n := len(bs)
	if n >= 2 && within(ranges[1], bs[n-2], bs[n-1]) {
		return bs[n-2:]
	}
	if n >= 3 {
		for _, r := range ranges[1:] {
			if within(r, bs[n-3], bs[n-2]) {
				return bs[n-3 : n-1]
			}
		}
	}
	return nil
}

// within reports whether blocks a and b lie in one range of r aligned to
// multiples of r, as the TSDB aligns its blocks.
func within(r int64, a, b tsdb.BlockMeta) bool {
	start := a.MinTime - mod(a.MinTime, r)
	return a.MinTime < b.MinTime && b.MinTime >= a.MaxTime && b.MaxTime <= start+r
}

func mod(t, r int64) int64 {
	m := t % r
	if m < 0 {
		m += r
	}
	return m
}

// blockMetas reads the meta.json of the blocks in dir. Directories that
// are not blocks (the write-ahead log, blocks being written) are skipped.
func blockMetas(dir string) ([]tsdb.BlockMeta, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ms []tsdb.BlockMeta
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			return nil, err
		}
		var m tsdb.BlockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}
