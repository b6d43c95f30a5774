// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The on-disk queue: one directory per exporter, holding
//
//	lock                 flock(2)ed by the agent that uses the queue
//	ack                  the running number of the first sample not yet
//	                     delivered or given up, written after deliveries
//	0000000000000001.seg segments, numbered in the order they were written
//
// A segment starts with segMagic, then records, one per tick:
//
//	u32 length of body, little endian
//	u32 CRC-32C (Castagnoli) of body
//	body:
//	  byte     kind: recSeries or recDoc
//	  uvarint  the running number of the tick's first sample
//	  varint   the tick's time, Unix nanoseconds
//	  recSeries:
//	    uvarint  number of series defined here, then each:
//	             uvarint id, uvarint length, the series' key (interner.newSeries)
//	    uvarint  number of samples, then each:
//	             varint id minus (previous id + 1), u64 the value's IEEE 754 bits
//	  recDoc: the snapshot's JSON (Custom), to the end of the body
//
// A series is defined, with its own number, in the record of the first
// tick of the segment that carries it, so a segment reads on its own and
// the oldest can be deleted without breaking the others. Records are
// appended with one write(2) each and fdatasync'ed; one that is cut short
// (the agent killed in the middle of a write, a crash) fails its CRC and
// is cut off when the queue is next opened.
const (
	segMagic  = "CRMONQ1\n"
	recHeader = 8
	recSeries = 1
	recDoc    = 2
	segSuffix = ".seg"
	ackFile   = "ack"
	ackMagic  = "CRMONA1\n"
	lockFile  = "lock"
	// maxRecordBytes bounds a record: a tick of a million series, or a
	// snapshot, is far below it. A longer length is a corrupt header.
	maxRecordBytes = 256 << 20
	// readChunk is how much of a segment the sender reads at once.
	readChunk = 256 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeGen numbers the segments the process writes, all queues together,
// so that a series defined in one is defined again in the next.
var writeGen atomic.Uint64

// segment is one segment file as the queue knows it.
type segment struct {
	seq uint64
	// first and end are the running numbers of the segment's first sample
	// and of the one after its last; equal when it holds no tick.
	first, end uint64
	// firstTime is the time of its first tick.
	firstTime time.Time
	// size is its valid bytes: what a reader may read.
	size int64
	// bad is set when a record of it did not read back: nothing more is
	// read from it or written to it.
	bad bool
}

// diskQueue is an exporter's queue on disk (see the format above). The
// intake appends each tick to the last segment; the sender reads ahead of
// the head only what the next batch needs (readAhead), so a long outage
// grows the directory, not the agent's memory. The head is persisted in
// ack after each delivery, so that a restart, even after kill -9, sends
// what was not delivered: at most the batches delivered since the last
// ack was written are sent twice.
type diskQueue struct {
	dir      string
	log      *slog.Logger
	max      int   // queue_size, in samples
	maxBytes int64 // queue_max_bytes
	segBytes int64 // a segment is closed once it is this long
	labels   []label
	lock     *os.File
	ready    chan struct{}

	mu    sync.Mutex
	segs  []*segment // oldest first; the last one is being written
	head  uint64
	end   uint64
	bytes int64 // every segment's size, headers included
	// dropped counts samples lost before delivery: the bounds, a failed
	// write, a corrupt record.
	dropped uint64
	// ra is the read-ahead: ticks read back from head on, without gaps;
	// raEnd is the running number after its last sample.
	ra    []*tick
	raEnd uint64
	// replay is the end of the batch the last run was sending (readAck).
	replay uint64

	// The intake's: the segment being written.
	w    *os.File
	wseq uint64
	// wgen numbers the segment being written among every segment this
	// process writes, for series.qseg.
	wgen uint64
	wids uint32 // the next series number in the segment
	wbuf []byte
	wnew []*series
	// werr is the last write error, logged once until a write works.
	werr error
	// synced is when the segment was last fdatasync'ed.
	synced time.Time

	// The sender's.
	rd segReader
	// ackLo and ackHi are what ack holds.
	ackLo, ackHi uint64
	ackBuf       []byte
	ackWarn      bool
}

// queueOptions are what an on-disk queue is opened with.
type queueOptions struct {
	dir      string
	max      int
	maxBytes int64
	labels   []label
	log      *slog.Logger
	// shared are the intake's series (see seriesTable); nil for none.
	shared *seriesTable
}

// syncEvery is how often, at most, the segment being written is
// fdatasync'ed: after every tick at the intervals crmon runs at (1 s and
// more), so that a tick is on disk before the next is taken; ticks closer
// than that (tests tick every few milliseconds) are synced with a later
// one, so that the intake keeps up with them. A kill -9 loses nothing
// either way: what write(2) returned is in the page cache.
const syncEvery = time.Second

// segmentBytes is the size at which a segment is closed: 8 MiB, or an
// eighth of the byte bound when that is smaller, so that dropping the
// oldest segment frees a small part of the queue.
func segmentBytes(maxBytes int64) int64 {
	return max(min(8<<20, maxBytes/8), 64<<10)
}

// openDiskQueue opens (or creates) the queue in o.dir and reads back what
// it holds. Segments are read whole once, to check every record: a torn
// last record is cut off; a corrupt record elsewhere ends its segment
// there, and the samples lost with it are counted as dropped.
func openDiskQueue(o queueOptions) (q *diskQueue, err error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(o.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another process (another crmon with the same store path?)", o.dir)
		}
		return nil, fmt.Errorf("locking %s: %w", o.dir, err)
	}
	q = &diskQueue{
		dir: o.dir, log: o.log, max: o.max, maxBytes: o.maxBytes, segBytes: segmentBytes(o.maxBytes),
		labels: o.labels, lock: lock, ready: make(chan struct{}, 1),
	}
	q.rd.shared = o.shared
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	q.head, q.replay = q.readAck()
	q.ackLo, q.ackHi = q.head, q.replay
	if err := q.load(); err != nil {
		return nil, err
	}
	if len(q.segs) > 0 {
		q.end = max(q.end, q.segs[len(q.segs)-1].end)
		// Segments before the first were deleted after the last position
		// was written: delivered, or dropped and counted then.
		q.head = max(q.head, q.segs[0].first)
	}
	q.end = max(q.end, q.head)
	q.raEnd = q.head
	// Bounds that shrank since the last run apply now.
	q.enforceBounds()
	q.gc()
	return q, nil
}

// load reads every segment of the directory, checks its records and
// notes what it holds. Empty segments (a start without a tick) go.
func (q *diskQueue) load() error {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil || segName(seq) != name {
			q.log.Warn("a file that is not a queue segment in the exporter's queue directory; left alone", "file", filepath.Join(q.dir, name))
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	var r segReader
	defer r.close()
	for i, seq := range seqs {
		last := i == len(seqs)-1
		s := &segment{seq: seq}
		path := filepath.Join(q.dir, segName(seq))
		bad, err := r.scan(path, s)
		if err != nil {
			return err
		}
		if s.first < q.end && s.end > s.first {
			// Numbers that go back: not this queue's order; treat as corrupt.
			bad = fmt.Errorf("its samples are numbered from %d, before the previous segment's end %d", s.first, q.end)
			s.size, s.end = int64(len(segMagic)), s.first
		}
		if bad != nil {
			if last && s.size > 0 {
				q.log.Warn("the exporter's queue ended in a torn record (the agent stopped in the middle of a write); cut off", "segment", path, "at", s.size, "err", bad)
			} else {
				q.log.Error("a corrupt segment in the exporter's queue: the rest of it is skipped and its samples counted as dropped", "segment", path, "valid_bytes", s.size, "err", bad)
			}
			if s.size > 0 {
				if err := os.Truncate(path, s.size); err != nil {
					return err
				}
			}
		}
		if s.size <= int64(len(segMagic)) || s.end == s.first {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		q.end = s.end
		q.segs = append(q.segs, s)
		q.bytes += s.size
		q.wseq = max(q.wseq, seq)
	}
	return nil
}

func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// readAck is what the ack file holds: the head, and the end of the batch
// that was being sent from it, which the receiver may or may not have
// (replayEnd); 0, 0, and everything on disk is sent again, when it is
// missing or unreadable.
func (q *diskQueue) readAck() (head, sending uint64) {
	b, err := os.ReadFile(filepath.Join(q.dir, ackFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0
	}
	const n = len(ackMagic) + 16
	if err == nil && (len(b) != n+4 || string(b[:len(ackMagic)]) != ackMagic ||
		crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:])) {
		err = errors.New("not a queue position, or its checksum does not match")
	}
	if err != nil {
		q.log.Warn("the exporter's queue position is unreadable; sending everything its queue holds again", "file", filepath.Join(q.dir, ackFile), "err", err)
		return 0, 0
	}
	return binary.LittleEndian.Uint64(b[len(ackMagic):]), binary.LittleEndian.Uint64(b[len(ackMagic)+8:])
}

// sending persists, before a batch [lo, hi) is sent, that everything
// before lo is delivered and that [lo, hi) may be. A restart then sends
// [lo, hi) again as one batch, the same batch: a receiver that refuses a
// whole request for one sample it already holds (Prometheus 2.x answers
// 400 "out of order sample" and writes nothing of it) either had all of
// it or none. One small file, written beside and renamed, a batch; not
// fsync'ed: after a crash of the host an older one sends some batches
// again, which the receivers take or refuse as a whole (see the README).
func (q *diskQueue) sending(lo, hi uint64) {
	if lo == q.ackLo && hi == q.ackHi {
		return
	}
	b := append(q.ackBuf[:0], ackMagic...)
	b = binary.LittleEndian.AppendUint64(b, lo)
	b = binary.LittleEndian.AppendUint64(b, hi)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	q.ackBuf = b
	tmp := filepath.Join(q.dir, ackFile+".tmp")
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(q.dir, ackFile))
	}
	if err != nil {
		if !q.ackWarn {
			q.ackWarn = true
			q.log.Error("writing the exporter's queue position failed; a restart will send again what was delivered since", "err", err)
		}
		return
	}
	q.ackWarn = false
	q.ackLo, q.ackHi = lo, hi
}

// replayEnd is the end of the batch the last run was sending from the
// head when it ended without a clean stop; 0 when there is none.
func (q *diskQueue) replayEnd() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.replay <= q.head {
		return 0
	}
	return q.replay
}

func (q *diskQueue) headPos() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head
}

// push appends t to the last segment. A tick that cannot be written (a
// full disk, an I/O error) is dropped and counted; the error is logged
// once until a write works again.
func (q *diskQueue) push(t *tick, now time.Time) (dropped int) {
	n := t.len()
	if n == 0 {
		return 0
	}
	q.mu.Lock()
	idx := q.end
	q.mu.Unlock()
	size, err := q.write(t, idx)
	if err != nil && errors.Is(err, syscall.ENOSPC) && q.dropOldestSegment() {
		// A full disk takes the oldest data first, as a full queue does.
		size, err = q.write(t, idx)
	}
	q.mu.Lock()
	if err != nil {
		q.dropped += uint64(n)
		q.mu.Unlock()
		if q.werr == nil {
			q.log.Error("writing to the exporter's queue failed; ticks are dropped until it works again", "dir", q.dir, "err", err)
		}
		q.werr = err
		return n
	}
	s := q.segs[len(q.segs)-1]
	if s.end == s.first {
		s.first, s.firstTime = idx, t.t
	}
	q.end = idx + uint64(n)
	if !s.bad {
		s.end = q.end
	}
	s.size += size
	q.bytes += size
	before := q.dropped
	q.enforceBounds()
	q.mu.Unlock()
	q.gc()
	q.mu.Lock()
	dropped = int(q.dropped - before)
	q.mu.Unlock()
	if q.werr != nil {
		q.log.Info("writing to the exporter's queue works again", "dir", q.dir)
		q.werr = nil
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

// enforceBounds drops the oldest samples beyond queue_size; gc applies
// queue_max_bytes. Callers hold mu.
func (q *diskQueue) enforceBounds() {
	if over := int64(q.end-q.head) - int64(q.max); over > 0 {
		q.dropped += uint64(over)
		q.head += uint64(over)
	}
	q.trim()
}

// dropOldestSegment drops the oldest segment that is not being written,
// counting its samples as dropped; false when there is none.
func (q *diskQueue) dropOldestSegment() bool {
	q.mu.Lock()
	if len(q.segs) < 2 {
		q.mu.Unlock()
		return false
	}
	s := q.segs[0]
	if s.end > q.head {
		q.dropped += s.end - q.head
		q.head = s.end
	}
	q.trim()
	q.mu.Unlock()
	q.gc()
	return true
}

// gc deletes the segments wholly before the head, except the one being
// written, and, beyond queue_max_bytes, the oldest (their samples counted
// as dropped).
func (q *diskQueue) gc() {
	for {
		q.mu.Lock()
		if q.bytes > q.maxBytes && len(q.segs) > 1 && q.segs[0].end > q.head {
			s := q.segs[0]
			q.dropped += s.end - q.head
			q.head = s.end
			q.trim()
		}
		if len(q.segs) < 2 || q.segs[0].end > q.head {
			q.mu.Unlock()
			return
		}
		s := q.segs[0]
		q.segs = q.segs[1:]
		q.bytes -= s.size
		q.mu.Unlock()
		// A reader that has it open reads on from its descriptor, and
		// finds its place again (segReader.seek).
		if err := os.Remove(filepath.Join(q.dir, segName(s.seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			q.log.Error("deleting a delivered segment of the exporter's queue", "err", err)
		}
	}
}

// trim forgets the read-ahead's ticks before the head. Callers hold mu.
func (q *diskQueue) trim() {
	i := 0
	for i < len(q.ra) && q.ra[i].idx+uint64(q.ra[i].len()) <= q.head {
		q.ra[i] = nil
		i++
	}
	q.ra = q.ra[i:]
	if len(q.ra) == 0 {
		q.ra = nil
		q.raEnd = max(q.raEnd, q.head)
	}
}

// write appends t's record to the segment being written, starting a new
// segment when there is none or it is full, and returns the record's
// bytes.
func (q *diskQueue) write(t *tick, idx uint64) (int64, error) {
	if q.w == nil || q.segFull() {
		if err := q.newSegment(); err != nil {
			return 0, err
		}
	}
	b := q.encode(t, idx)
	_, err := q.w.Write(b)
	if err == nil && time.Since(q.synced) >= syncEvery {
		// The intake's own goroutine waits for it, not the tick (see the
		// README for its cost).
		err = unix.Fdatasync(int(q.w.Fd()))
		q.synced = time.Now()
	}
	if err != nil {
		// Cut off what part of the record made it, so that the segment
		// stays readable, and start a new one: the record defined series
		// that the next must define again.
		q.mu.Lock()
		size := q.segs[len(q.segs)-1].size
		q.mu.Unlock()
		q.w.Truncate(size)
		q.w.Close()
		q.w = nil
		return 0, err
	}
	return int64(len(b)), nil
}

func (q *diskQueue) segFull() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.segs[len(q.segs)-1]
	return s.size >= q.segBytes || s.bad
}

// newSegment closes the segment being written and starts the next.
func (q *diskQueue) newSegment() error {
	if q.w != nil {
		q.w.Close()
		q.w = nil
	}
	seq := q.wseq + 1
	f, err := os.OpenFile(filepath.Join(q.dir, segName(seq)), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(segMagic); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	q.w, q.wseq, q.wgen, q.wids = f, seq, writeGen.Add(1), 0
	q.mu.Lock()
	q.segs = append(q.segs, &segment{seq: seq, first: q.end, end: q.end, size: int64(len(segMagic))})
	q.bytes += int64(len(segMagic))
	q.mu.Unlock()
	return nil
}

// encode is t's record, with the definitions of its series that are new
// to the segment.
func (q *diskQueue) encode(t *tick, idx uint64) []byte {
	b := append(q.wbuf[:0], 0, 0, 0, 0, 0, 0, 0, 0) // the header, filled below
	if t.doc != nil {
		b = append(b, recDoc)
	} else {
		b = append(b, recSeries)
	}
	b = binary.AppendUvarint(b, idx)
	b = binary.AppendVarint(b, t.t.UnixNano())
	if t.doc != nil {
		b = append(b, t.doc...)
	} else {
		defs := q.wnew[:0]
		for _, p := range t.pts {
			if s := p.s; s.qseg != q.wgen {
				s.qseg, s.qid = q.wgen, q.wids
				q.wids++
				defs = append(defs, s)
			}
		}
		b = binary.AppendUvarint(b, uint64(len(defs)))
		for _, s := range defs {
			b = binary.AppendUvarint(b, uint64(s.qid))
			b = binary.AppendUvarint(b, uint64(len(s.key)))
			b = append(b, s.key...)
		}
		clear(defs)
		q.wnew = defs
		b = binary.AppendUvarint(b, uint64(len(t.pts)))
		prev := int64(-1)
		for _, p := range t.pts {
			id := int64(p.s.qid)
			b = binary.AppendVarint(b, id-prev-1)
			prev = id
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.v))
		}
	}
	body := b[recHeader:]
	binary.LittleEndian.PutUint32(b, uint32(len(body)))
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(body, castagnoli))
	q.wbuf = b
	return b
}

// len is the number of samples waiting, on disk.
func (q *diskQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.end - q.head)
}

// oldest is the time of the oldest waiting tick, read ahead if it is
// not yet. The sender's, as fill is.
func (q *diskQueue) oldest() (time.Time, bool) {
	q.fill(1)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.trim()
	if q.end == q.head || len(q.ra) == 0 {
		return time.Time{}, false
	}
	return q.ra[0].t, true
}

func (q *diskQueue) readyC() <-chan struct{} { return q.ready }

func (q *diskQueue) droppedTotal() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

func (q *diskQueue) diskBytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// commit removes the samples before hi and deletes the segments the head
// has passed. The next batch's sending persists the new head.
func (q *diskQueue) commit(hi uint64) {
	q.mu.Lock()
	if hi > q.head {
		q.head = min(hi, q.end)
	}
	q.trim()
	q.mu.Unlock()
	q.gc()
}

// peek reads ahead what the batch needs, then builds it as the memory
// queue does.
func (q *diskQueue) peek(max int, whole bool) batch {
	q.fill(max)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.trim()
	if len(q.ra) == 0 {
		return batch{lo: q.head, hi: q.head}
	}
	return peekTicks(q.ra, q.head, max, whole)
}

// fill reads ticks from disk into the read-ahead until it holds want
// samples from the head, or all there is, or it reaches a gap (samples
// lost with a corrupt record), which a batch must not span. Files are
// read without mu held.
func (q *diskQueue) fill(want int) {
	for {
		q.mu.Lock()
		q.trim()
		if q.raEnd-q.head >= uint64(want) || q.raEnd >= q.end {
			q.mu.Unlock()
			return
		}
		// Read on in the reader's segment while it holds what comes
		// next, else open the first segment that does.
		var seg segment
		found := false
		for _, s := range q.segs {
			if s.end > q.raEnd {
				seg, found = *s, true
				break
			}
		}
		q.mu.Unlock()
		if !found {
			return
		}
		if q.rd.f == nil || seg.seq != q.rd.seq {
			if err := q.rd.open(filepath.Join(q.dir, segName(seg.seq)), seg.seq); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted meanwhile: the head moved past it
				}
				q.corrupt(seg.seq, err)
				continue
			}
		}
		if q.rd.off >= seg.size {
			return // everything written is read
		}
		t, err := q.rd.next(seg.size, q.labels)
		if err != nil {
			q.corrupt(seg.seq, err)
			continue
		}
		q.mu.Lock()
		end := t.idx + uint64(t.len())
		switch {
		case end <= q.head:
			// Dropped meanwhile, or delivered before the last start.
		case t.idx > q.raEnd && len(q.ra) > 0:
			// A gap: the batch ends before it; it is read again later.
			q.rd.unread()
			q.mu.Unlock()
			return
		default:
			if t.idx > q.raEnd {
				// The read-ahead is empty, and the samples before this
				// tick are lost (a corrupt record).
				q.dropped += t.idx - q.head
				q.head = t.idx
			}
			q.ra = append(q.ra, t)
			q.raEnd = end
		}
		q.mu.Unlock()
	}
}

// corrupt handles a record that does not read back while the agent
// runs: the rest of its segment is skipped, and the samples lost with it
// are counted as dropped when the reader passes them. The writer starts
// a new segment if it was writing this one.
func (q *diskQueue) corrupt(seq uint64, err error) {
	q.log.Error("a corrupt segment in the exporter's queue: the rest of it is skipped and its samples counted as dropped", "segment", filepath.Join(q.dir, segName(seq)), "err", err)
	pos := q.rd.pos
	opened := q.rd.f != nil && q.rd.seq == seq
	q.rd.close()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.segs {
		if s.seq == seq {
			if !opened {
				pos = s.first
			}
			s.end = max(min(s.end, pos), s.first)
			s.bad = true
		}
	}
}

// close persists the head and closes the files; the samples left stay on
// disk for the next start.
func (q *diskQueue) close() (left int, kept bool) {
	head := q.headPos()
	q.sending(head, head)
	q.rd.close()
	if q.w != nil {
		unix.Fdatasync(int(q.w.Fd()))
		q.w.Close()
		q.w = nil
	}
	q.lock.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ra = nil
	return int(q.end - q.head), true
}

// segReader reads a segment's records in order.
type segReader struct {
	f   *os.File
	seq uint64
	// off is the file offset of the next record; buf holds the bytes
	// from bufOff on.
	off, bufOff int64
	buf         []byte
	// pos is the running number after the last tick read; last the
	// offset of the last record, for unread.
	pos, last, lastPos uint64
	lastIDs            int
	// ids are the segment's series by number; known are the series of
	// this segment and the last by key, so that a series keeps what the
	// sender rendered of it from one segment to the next.
	ids   []*series
	known map[string]*series
	// shared are the intake's live series, taken first.
	shared *seriesTable
	gen    uint64
}

func (r *segReader) open(path string, seq uint64) error {
	r.close()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	magic := make([]byte, len(segMagic))
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != segMagic {
		f.Close()
		return fmt.Errorf("not a queue segment: bad header")
	}
	r.f, r.seq, r.off, r.bufOff, r.buf = f, seq, int64(len(segMagic)), int64(len(segMagic)), r.buf[:0]
	r.ids = r.ids[:0]
	r.gen++
	if r.known == nil {
		r.known = map[string]*series{}
	}
	// Series unused in the last two segments are forgotten.
	for k, s := range r.known {
		if s.rgen+1 < r.gen {
			delete(r.known, k)
		}
	}
	return nil
}

func (r *segReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.buf = r.buf[:0]
}

// record returns the body of the next record before limit, nil at limit.
func (r *segReader) record(limit int64) ([]byte, error) {
	if r.off >= limit {
		return nil, nil
	}
	hdr, err := r.bytes(r.off, recHeader, limit)
	if err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(hdr))
	sum := binary.LittleEndian.Uint32(hdr[4:])
	if n == 0 || n > maxRecordBytes {
		return nil, fmt.Errorf("record at %d: length %d", r.off, n)
	}
	body, err := r.bytes(r.off+recHeader, n, limit)
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("record at %d: checksum mismatch", r.off)
	}
	r.last = uint64(r.off)
	r.off += recHeader + n
	return body, nil
}

// bytes returns n bytes at off, reading more of the file as needed;
// io.ErrUnexpectedEOF when they go past limit.
func (r *segReader) bytes(off, n, limit int64) ([]byte, error) {
	if off+n > limit {
		return nil, fmt.Errorf("record at %d: cut short at %d bytes: %w", r.off, limit, io.ErrUnexpectedEOF)
	}
	if off < r.bufOff || off+n > r.bufOff+int64(len(r.buf)) {
		// Keep what is still ahead, read at least readChunk more.
		if off >= r.bufOff && off <= r.bufOff+int64(len(r.buf)) {
			r.buf = r.buf[:copy(r.buf, r.buf[off-r.bufOff:])]
		} else {
			r.buf = r.buf[:0]
		}
		r.bufOff = off
		have := int64(len(r.buf))
		want := max(min(max(n, readChunk), limit-off), have)
		if int64(cap(r.buf)) < want {
			r.buf = append(make([]byte, 0, want), r.buf...)
		}
		r.buf = r.buf[:want]
		m, err := r.f.ReadAt(r.buf[have:], off+have)
		r.buf = r.buf[:have+int64(m)]
		if have+int64(m) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("record at %d: %w", r.off, err)
		}
	}
	return r.buf[off-r.bufOff : off-r.bufOff+n], nil
}

// unread steps back over the last tick returned, and forgets the series
// it defined, which reading it again defines again.
func (r *segReader) unread() {
	r.off, r.pos = int64(r.last), r.lastPos
	clear(r.ids[r.lastIDs:])
	r.ids = r.ids[:r.lastIDs]
}

// next is the segment's next tick before limit; nil at limit.
func (r *segReader) next(limit int64, labels []label) (*tick, error) {
	body, err := r.record(limit)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, io.ErrUnexpectedEOF // fill checks off against limit first
	}
	r.lastIDs = len(r.ids)
	t, err := r.decode(body, labels)
	if err != nil {
		return nil, fmt.Errorf("record at %d: %w", r.last, err)
	}
	r.lastPos = r.pos
	r.pos = t.idx + uint64(t.len())
	return t, nil
}

var errRecord = errors.New("malformed record")

func (r *segReader) decode(b []byte, labels []label) (*tick, error) {
	kind := b[0]
	b = b[1:]
	idx, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errRecord
	}
	b = b[n:]
	ns, n := binary.Varint(b)
	if n <= 0 {
		return nil, errRecord
	}
	b = b[n:]
	t := &tick{t: time.Unix(0, ns), idx: idx}
	switch kind {
	case recDoc:
		t.doc = slices.Clone(b)
		return t, nil
	case recSeries:
	default:
		return nil, fmt.Errorf("%w: kind %d", errRecord, kind)
	}
	defs, n := binary.Uvarint(b)
	if n <= 0 || defs > uint64(len(b)) {
		return nil, errRecord
	}
	b = b[n:]
	for range defs {
		id, n := binary.Uvarint(b)
		if n <= 0 || id != uint64(len(r.ids)) {
			return nil, fmt.Errorf("%w: series number %d out of order", errRecord, id)
		}
		b = b[n:]
		kl, n := binary.Uvarint(b)
		if n <= 0 || kl > uint64(len(b)-n) {
			return nil, errRecord
		}
		key := string(b[n : n+int(kl)])
		b = b[n+int(kl):]
		s := r.shared.get(key)
		if s == nil {
			s = r.known[key]
		}
		if s == nil {
			s = &series{key: key}
			var ls []label
			s.name, ls = splitKey(key, nil)
			s.labels = mergeLabels(ls, labels)
			r.known[key] = s
		}
		s.rgen = r.gen
		r.ids = append(r.ids, s)
	}
	np, n := binary.Uvarint(b)
	if n <= 0 || np > uint64(len(b))/9 {
		return nil, errRecord
	}
	b = b[n:]
	t.pts = make([]point, np)
	prev := int64(-1)
	for i := range t.pts {
		d, n := binary.Varint(b)
		if n <= 0 || len(b) < n+8 {
			return nil, errRecord
		}
		id := prev + 1 + d
		if id < 0 || id >= int64(len(r.ids)) {
			return nil, fmt.Errorf("%w: undefined series %d", errRecord, id)
		}
		prev = id
		t.pts[i] = point{s: r.ids[id], v: math.Float64frombits(binary.LittleEndian.Uint64(b[n:]))}
		b = b[n+8:]
	}
	if len(b) != 0 {
		return nil, errRecord
	}
	return t, nil
}

// scan reads the segment at path to check it and fill s. bad is what is
// wrong with it; s.size is then the length of its valid part (0 when
// even its header is not).
func (r *segReader) scan(path string, s *segment) (bad error, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := r.open(path, s.seq); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		return err, nil
	}
	defer r.close()
	first := true
	s.size = r.off
	for {
		body, err := r.record(st.Size())
		if err != nil {
			return err, nil
		}
		if body == nil {
			return nil, nil
		}
		// Only the header is needed here, but decoding checks the body.
		t, err := r.decode(body, nil)
		if err != nil {
			return fmt.Errorf("record at %d: %w", r.last, err), nil
		}
		if first {
			s.first, s.firstTime = t.idx, t.t
			first = false
		} else if t.idx < s.end {
			return fmt.Errorf("record at %d: sample number %d goes back", r.last, t.idx), nil
		}
		s.end = t.idx + uint64(t.len())
		s.size = r.off
	}
}

// queueDirName is an exporter's name as a directory name: letters,
// digits, '_', '-' and '.' as they are, any other byte and a leading '.'
// as %XX, so that no name leaves the queues' directory or names another
// exporter's; a long name is cut, with a hash of the whole.
func queueDirName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' && i > 0
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	s := b.String()
	if s == "" {
		return "%" // no byte escapes to it
	}
	if len(s) > 200 {
		h := sha256.Sum256([]byte(name))
		s = fmt.Sprintf("%s~%x", s[:183], h[:8])
	}
	return s
}
