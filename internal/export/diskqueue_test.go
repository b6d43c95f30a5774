// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/config"
)

// dqTest is an on-disk queue under test with the series it is fed.
type dqTest struct {
	t      *testing.T
	dir    string
	series []*series
	logs   strings.Builder
	mu     sync.Mutex
	// t0 is the first tick's time; tick i is i seconds later.
	t0 time.Time
}

func newDQTest(t *testing.T, nseries int) *dqTest {
	d := &dqTest{t: t, dir: t.TempDir(), t0: time.Unix(1765000000, 0)}
	for i := range nseries {
		key := fmt.Sprintf("test_metric%sdevice%ssd%c%sinstance%s%d", sep, sep, 'a'+i%26, sep, sep, i)
		s := &series{key: key}
		s.name, s.labels = splitKey(key, nil)
		d.series = append(d.series, s)
	}
	return d
}

func (d *dqTest) open(max int, maxBytes int64) *diskQueue {
	d.t.Helper()
	q, err := openDiskQueue(queueOptions{dir: d.dir, max: max, maxBytes: maxBytes, log: logTo(&d.mu, &d.logs),
		labels: []label{{"job", "crmon"}}})
	if err != nil {
		d.t.Fatal(err)
	}
	return q
}

func (d *dqTest) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// value is series j's value at tick i: every sample differs.
func value(i, j int) float64 { return float64(i)*1000 + float64(j) + 0.25 }

// tick is tick i of every series, or of those keep says (a container
// that comes and goes).
func (d *dqTest) tick(i int, keep func(j int) bool) *tick {
	t := &tick{t: d.t0.Add(time.Duration(i) * time.Second)}
	for j, s := range d.series {
		if keep == nil || keep(j) {
			t.pts = append(t.pts, point{s, value(i, j)})
		}
	}
	return t
}

// drain reads q to its end in batches of size, committing each, and
// checks what it reads: every series in timestamp order, the values its
// ticks had, the exporter's labels merged. It returns the ticks read, by
// time.
func (d *dqTest) drain(q *diskQueue, size int) []int {
	d.t.Helper()
	last := map[string]time.Time{}
	var ticks []int
	for q.len() > 0 {
		b := q.peek(size, false)
		if b.samples() == 0 {
			d.t.Fatalf("an empty batch with %d queued; log:\n%s", q.len(), d.log())
		}
		n := 0
		for _, c := range b.chunks {
			i := int(c.t.Sub(d.t0) / time.Second)
			if c.from == 0 {
				ticks = append(ticks, i)
			}
			for _, p := range c.pts[c.from:c.to] {
				n++
				if !c.t.After(last[p.s.key]) {
					d.t.Fatalf("%s: %v after %v", p.s.key, c.t, last[p.s.key])
				}
				last[p.s.key] = c.t
				var j int
				fmt.Sscanf(p.s.key[strings.LastIndex(p.s.key, sep)+1:], "%d", &j)
				if p.v != value(i, j) {
					d.t.Fatalf("%s at tick %d: %v, want %v", p.s.key, i, p.v, value(i, j))
				}
				if !slices.Contains(p.s.labels, label{"job", "crmon"}) || p.s.name != "test_metric" {
					d.t.Fatalf("series read back as %s %v", p.s.name, p.s.labels)
				}
			}
		}
		if n != b.samples() {
			d.t.Fatalf("a batch of %d samples says %d", n, b.samples())
		}
		q.commit(b.hi)
	}
	return ticks
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestDiskQueueReplayAndAck: what was committed (delivered) before a stop
// is not read again after it; what was not comes back in order, each
// series in timestamp order, a tick split by a batch resumed where it was
// cut; series that come and go are defined in each segment that carries
// them.
func TestDiskQueueReplayAndAck(t *testing.T) {
	d := newDQTest(t, 150)
	q := d.open(1_000_000, 1<<20) // 128 KiB segments
	odd := func(j int) bool { return j%2 == 1 }
	for i := range 300 {
		keep := odd
		if i%3 == 0 {
			keep = nil
		}
		q.push(d.tick(i, keep), time.Now())
	}
	if len(q.segs) < 3 {
		t.Fatalf("%d segments; the test wants several", len(q.segs))
	}
	// Deliver 3 ticks and part of the fourth (150 + 75 + 75 + 12).
	for _, size := range []int{225, 75, 12} {
		q.commit(q.peek(size, false).hi)
	}
	head := q.head
	left, kept := q.close()
	if !kept || left != int(q.end-head) {
		t.Fatalf("close: %d left, kept %v; %d were", left, kept, q.end-head)
	}

	q = d.open(1_000_000, 1<<20)
	if q.head != head || q.len() != left {
		t.Fatalf("reopened at %d with %d queued; closed at %d with %d", q.head, q.len(), head, left)
	}
	b := q.peek(1000, false)
	if c := b.chunks[0]; c.t != d.t0.Add(3*time.Second) || c.from != 12 {
		t.Fatalf("the first batch after the start begins at %v sample %d, want tick 3 sample 12", c.t, c.from)
	}
	// More ticks after the start, then everything is read in order.
	for i := 300; i < 320; i++ {
		q.push(d.tick(i, nil), time.Now())
	}
	got := d.drain(q, 333)
	if want := seq(4, 320); !slices.Equal(got, want) {
		t.Errorf("ticks read after the restart: %v, want 4…319 (and the rest of 3)", got)
	}
	if q.dropped != 0 {
		t.Errorf("%d dropped", q.dropped)
	}
	// Everything delivered: only the segment being written is left.
	q.close()
	segs, _ := filepath.Glob(filepath.Join(d.dir, "*"+segSuffix))
	if len(segs) != 1 {
		t.Errorf("segments left after delivering everything: %v", segs)
	}
	q = d.open(1_000_000, 1<<20)
	if q.len() != 0 || q.replayEnd() != 0 {
		t.Errorf("%d queued, replay to %d, after delivering everything and a restart", q.len(), q.replayEnd())
	}

	// Killed while sending a batch: the next start sends that batch, the
	// same, first; the one before it is delivered.
	for i := 320; i < 330; i++ {
		q.push(d.tick(i, nil), time.Now())
	}
	b1 := q.peek(200, false)
	q.sending(b1.lo, b1.hi)
	q.commit(b1.hi)
	b2 := q.peek(400, false)
	q.sending(b2.lo, b2.hi)
	q.abandon()
	q = d.open(1_000_000, 1<<20)
	if q.headPos() != b2.lo || q.replayEnd() != b2.hi {
		t.Errorf("after a kill while sending [%d, %d): head %d, replay to %d", b2.lo, b2.hi, q.headPos(), q.replayEnd())
	}
	q.close()
}

// abandon closes q's files as a kill -9 would: without writing anything.
func (q *diskQueue) abandon() {
	q.rd.close()
	if q.w != nil {
		q.w.Close()
	}
	q.lock.Close()
}

// TestDiskQueueTornTail: a last record cut short (the agent killed in the
// middle of a write) is cut off when the queue opens, logged once; every
// tick before it is read back, and ticks pushed afterwards follow.
func TestDiskQueueTornTail(t *testing.T) {
	for _, cut := range []int{1, 7, 12, 200} {
		d := newDQTest(t, 40)
		q := d.open(1_000_000, 64<<20)
		for i := range 10 {
			q.push(d.tick(i, nil), time.Now())
		}
		path := filepath.Join(d.dir, segName(q.wseq))
		q.close()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		// The last record is 8 + about 11 bytes a sample long.
		if err := os.Truncate(path, st.Size()-int64(cut)); err != nil {
			t.Fatal(err)
		}
		q = d.open(1_000_000, 64<<20)
		if n := strings.Count(d.log(), "torn record"); n != 1 {
			t.Errorf("cut %d: %d log lines about a torn record:\n%s", cut, n, d.log())
		}
		if q.len() != 9*40 || q.dropped != 0 {
			t.Errorf("cut %d: %d queued, %d dropped, want the 9 whole ticks", cut, q.len(), q.dropped)
		}
		q.push(d.tick(10, nil), time.Now())
		if got := d.drain(q, 100); !slices.Equal(got, append(seq(0, 9), 10)) {
			t.Errorf("cut %d: ticks read %v", cut, got)
		}
		q.close()
	}
}

// TestDiskQueueCorruptMiddle: a record that fails its CRC in a segment
// that is not the last skips the rest of that segment, logged, and its
// samples are counted as dropped; the segments after it are read.
func TestDiskQueueCorruptMiddle(t *testing.T) {
	d := newDQTest(t, 100)
	q := d.open(10_000_000, 1<<20) // 128 KiB segments, about 110 ticks each
	for i := range 400 {
		q.push(d.tick(i, nil), time.Now())
	}
	first := *q.segs[0]
	second := *q.segs[1]
	q.close()
	// A byte in the middle of the first segment.
	path := filepath.Join(d.dir, segName(first.seq))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	q = d.open(10_000_000, 1<<20)
	if !strings.Contains(d.log(), "a corrupt segment") {
		t.Errorf("nothing logged about the corrupt segment:\n%s", d.log())
	}
	got := d.drain(q, 1000)
	lostFrom, lostTo := 0, int(second.first/100)
	for lostFrom < len(got) && got[lostFrom] == lostFrom {
		lostFrom++
	}
	want := append(seq(0, lostFrom), seq(lostTo, 400)...)
	if !slices.Equal(got, want) || lostFrom == 0 || lostFrom >= lostTo {
		t.Fatalf("read ticks %v, want 0…%d and %d…399", got, lostFrom-1, lostTo)
	}
	if want := uint64(lostTo-lostFrom) * 100; q.dropped != want {
		t.Errorf("%d dropped, want %d (ticks %d…%d)", q.dropped, want, lostFrom, lostTo-1)
	}
	q.close()
}

// TestDiskQueueBounds: beyond queue_max_bytes the oldest segments go,
// beyond queue_size the oldest samples; both are counted as dropped, and
// what is left is the newest, without a gap, also after a restart.
func TestDiskQueueBounds(t *testing.T) {
	d := newDQTest(t, 100)
	const maxBytes = 1 << 20
	q := d.open(10_000_000, maxBytes)
	pushed := 0
	for i := range 3000 { // about 1 MB a 1000 ticks
		pushed += 100
		q.push(d.tick(i, nil), time.Now())
		if q.bytes > maxBytes {
			t.Fatalf("tick %d: %d bytes on disk, more than %d", i, q.bytes, maxBytes)
		}
	}
	if got := dirBytes(t, d.dir); got != q.bytes {
		t.Errorf("the directory holds %d bytes of segments, the queue says %d", got, q.bytes)
	}
	if q.dropped == 0 || int(q.dropped)+q.len() != pushed {
		t.Errorf("%d dropped + %d queued, %d pushed", q.dropped, q.len(), pushed)
	}
	oldest := 3000 - q.len()/100
	q.close()

	// A smaller queue_size at the next start drops the oldest samples.
	q = d.open(25_050, maxBytes)
	if q.len() != 25_050 || int(q.dropped) != (3000-oldest)*100-25_050 {
		t.Errorf("with queue_size 25050: %d queued, %d dropped", q.len(), q.dropped)
	}
	b := q.peek(100, false)
	if c := b.chunks[0]; c.from != 50 || c.t != d.t0.Add(time.Duration(3000-251)*time.Second) {
		t.Errorf("the oldest sample kept is %v #%d", c.t, c.from)
	}
	if got := d.drain(q, 700); !slices.Equal(got, seq(2750, 3000)) {
		t.Errorf("read %v", got)
	}
	q.close()
}

func dirBytes(t *testing.T, dir string) int64 {
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		st, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestDiskQueueDocs: Custom's snapshots round-trip, one a sample.
func TestDiskQueueDocs(t *testing.T) {
	d := newDQTest(t, 0)
	q := d.open(100, 1<<20)
	for i := range 5 {
		q.push(&tick{t: d.t0.Add(time.Duration(i) * time.Second), doc: fmt.Appendf(nil, `{"tick":%d}`, i)}, time.Now())
	}
	q.close()
	q = d.open(100, 1<<20)
	defer q.close()
	b := q.peek(3, false)
	if len(b.chunks) != 3 || b.samples() != 3 {
		t.Fatalf("peek(3) of snapshots: %d chunks, %d samples", len(b.chunks), b.samples())
	}
	for i, c := range b.chunks {
		if want := fmt.Sprintf(`{"tick":%d}`, i); string(c.doc) != want {
			t.Errorf("snapshot %d: %s", i, c.doc)
		}
	}
}

// TestDiskQueueLock: a directory in use by a queue cannot be opened by
// another (two agents with the same store path).
func TestDiskQueueLock(t *testing.T) {
	d := newDQTest(t, 1)
	q := d.open(100, 1<<20)
	if _, err := openDiskQueue(queueOptions{dir: d.dir, max: 100, maxBytes: 1 << 20, log: logTo(&d.mu, &d.logs)}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second open of the directory: %v", err)
	}
	q.close()
	q = d.open(100, 1<<20)
	q.close()
}

// TestQueueDirName: an exporter's name cannot leave the queues' directory
// or name another exporter's.
func TestQueueDirName(t *testing.T) {
	seen := map[string]string{}
	long := strings.Repeat("x", 300)
	for _, name := range []string{"prometheus", "influx.eu-1", "../../etc", "..", ".", "a/b", `a\b`, "a%2Fb", "",
		"\x00", "ünï", ".hidden", long, long + "y"} {
		got := queueDirName(name)
		if got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\x00") || strings.HasPrefix(got, ".") || len(got) > 200 {
			t.Errorf("queueDirName(%q) = %q", name, got)
		}
		if filepath.Join("/q", got) != "/q/"+got {
			t.Errorf("queueDirName(%q) = %q leaves the directory", name, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share %q", name, other, got)
		}
		seen[got] = name
	}
	if got := queueDirName("influx.eu-1"); got != "influx.eu-1" {
		t.Errorf("a plain name is changed: %q", got)
	}
}

// TestDiskQueueDropsWhileReading: the intake drops the oldest samples
// (queue_size) past what the sender has read ahead and sent; the sender's
// late commit removes nothing more, and the next batch starts at the
// oldest sample kept.
func TestDiskQueueDropsWhileReading(t *testing.T) {
	d := newDQTest(t, 10)
	q := d.open(35, 1<<20)
	defer q.close()
	for i := range 3 {
		q.push(d.tick(i, nil), time.Now())
	}
	b := q.peek(20, false) // in flight: ticks 0 and 1
	for i := 3; i < 7; i++ {
		q.push(d.tick(i, nil), time.Now()) // keeps 35: ticks 3.5 to 6
	}
	if q.dropped != 35 || q.len() != 35 {
		t.Fatalf("%d dropped, %d queued", q.dropped, q.len())
	}
	q.commit(b.hi)
	// flush_interval counts from the oldest tick waiting.
	if at, ok := q.oldest(); !ok || at != d.t0.Add(3*time.Second) {
		t.Errorf("oldest: %v, %v; want tick 3's time", at, ok)
	}
	b = q.peek(100, false)
	if c := b.chunks[0]; c.t != d.t0.Add(3*time.Second) || c.from != 5 || b.samples() != 35 {
		t.Errorf("after the drop the batch starts at %v #%d with %d samples", c.t, c.from, b.samples())
	}
}

// TestDiskQueueConcurrent: an intake and a sender at work at once (run
// with -race): every sample arrives once, in order.
func TestDiskQueueConcurrent(t *testing.T) {
	d := newDQTest(t, 200)
	q := d.open(10_000_000, 2<<20)
	defer q.close()
	const ticks = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range ticks {
			q.push(d.tick(i, nil), time.Now())
		}
	}()
	var got []int
	for pushed := false; !pushed || q.len() > 0; {
		select {
		case <-done:
			pushed = true
		default:
		}
		if q.len() == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		got = append(got, d.drain(q, 333)...)
	}
	if !slices.Equal(got, seq(0, ticks)) || q.dropped != 0 {
		t.Errorf("%d ticks read (%d dropped), want %d in order", len(got), q.dropped, ticks)
	}
}

// TestDiskQueueMemory: during an outage the queue on disk grows and the
// heap does not. Ten minutes of host + 50 containers at 10 s (60 ticks of
// the benchmark's fleet) are queued; the sender then reads one batch
// ahead, as it does while retrying. The heap then is what it is with one
// tick queued; the README quotes the figures.
func TestDiskQueueMemory(t *testing.T) {
	fl := newFleet(t, 50)
	fams := make([][]*dto.MetricFamily, 4)
	for i := range fams {
		fams[i] = fl.tick(i)
	}
	in := newFamInterner(nil)
	// The intake's series, which the queue reads back as its own.
	in.shared = newSeriesTable()
	var buf []point
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// grew is what the heap holds more with ticks queued and a batch
	// read ahead than without the queue; the queue is closed after.
	buf = in.familiesInto(buf, fams[0])
	before := heap()
	grew := func(ticks int) (grew uint64, samples int, onDisk int64) {
		q, err := openDiskQueue(queueOptions{dir: t.TempDir(), max: 10_000_000, maxBytes: 1 << 30, log: testLogger(t), shared: in.shared})
		if err != nil {
			t.Fatal(err)
		}
		defer q.close()
		for i := range ticks {
			buf = in.familiesInto(buf, fams[i%len(fams)])
			q.push(&tick{t: time.Unix(1765000000+int64(i)*10, 0), pts: buf}, time.Now())
			samples += len(buf)
		}
		b := q.peek(config.DefaultBatchSize, false)
		if b.samples() != config.DefaultBatchSize {
			t.Fatalf("a batch of %d samples read back", b.samples())
		}
		after := heap()
		runtime.KeepAlive(b)
		if q.len() != samples {
			t.Errorf("%d queued, %d pushed", q.len(), samples)
		}
		return after - min(before, after), samples, q.diskBytes()
	}
	grew(1) // what the first queue of a process allocates once
	one, _, _ := grew(1)
	many, samples, onDisk := grew(60)
	t.Logf("heap growth with 1 tick queued: %.2f MB; with 60 (%d samples, %.1f MB on disk, %.1f bytes a sample): %.2f MB; RSS %s",
		float64(one)/1e6, samples, float64(onDisk)/1e6, float64(onDisk)/float64(samples), float64(many)/1e6, rss(t))
	if many > one+1<<20 {
		t.Errorf("the heap grew by %.2f MB with 60 ticks queued, %.2f MB with one: it grows with the outage", float64(many)/1e6, float64(one)/1e6)
	}
	// The series, as the agent keeps them, live on.
	runtime.KeepAlive(fams)
	runtime.KeepAlive(in)
}

// rss is the process' resident set, from /proc/self/status.
func rss(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// BenchmarkDiskQueueSync measures what the fdatasync after each tick
// costs: ticks of host + 50 containers are pushed to two queues in
// turns, blocks of ten, one queue syncing after every tick (as at a 1 s
// interval) and the other never. It reports each one's CPU (the
// process', all threads) and median wall time a tick. The README quotes
// its figures.
func BenchmarkDiskQueueSync(b *testing.B) {
	fl := newFleet(b, 50)
	fams := fl.tick(1)
	in := newFamInterner(nil)
	pts := in.families(fams)
	open := func() *diskQueue {
		q, err := openDiskQueue(queueOptions{dir: b.TempDir(), max: 1 << 40, maxBytes: 1 << 40, log: testLogger(&testing.T{})})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.close() })
		return q
	}
	queues := [2]*diskQueue{open(), open()} // syncing, not
	var cpu [2]time.Duration
	var walls [2][]time.Duration
	i := 0
	b.ResetTimer()
	for i < b.N {
		for k, q := range queues {
			for range 10 {
				if k == 0 {
					q.synced = time.Time{}
				} else {
					q.synced = time.Now()
				}
				c0, w0 := cpuTime(), time.Now()
				q.push(&tick{t: time.Unix(1765000000+int64(i), 0), pts: pts}, time.Now())
				cpu[k] += cpuTime() - c0
				walls[k] = append(walls[k], time.Since(w0))
				// Delivered: the queue does not grow.
				q.commit(q.end)
			}
		}
		i += 10
	}
	b.StopTimer()
	for k, name := range []string{"fdatasync", "nosync"} {
		slices.Sort(walls[k])
		b.ReportMetric(float64(cpu[k].Microseconds())/float64(len(walls[k])), name+"-cpu-us/tick")
		b.ReportMetric(float64(walls[k][len(walls[k])/2].Microseconds()), name+"-wall-us/tick")
	}
}

// TestOrphanQueueLogged: a queue directory of an exporter that is no
// longer configured is named in a log line at the start, with its size,
// and left alone.
func TestOrphanQueueLogged(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, queueDirName("renamed"))
	d := &dqTest{t: t, dir: old, t0: time.Unix(1765000000, 0)}
	d.series = newDQTest(t, 3).series
	q := d.open(100, 1<<20)
	q.push(d.tick(0, nil), time.Now())
	q.close()
	var logs strings.Builder
	var mu sync.Mutex
	set, err := Start(newTestAgent(t), []config.Exporter{exporterConfig("kept", config.ExporterCustom, "http://127.0.0.1:1/")},
		Options{QueueDir: dir, Logger: logTo(&mu, &logs)})
	if err != nil {
		t.Fatal(err)
	}
	set.Close()
	mu.Lock()
	l := logs.String()
	mu.Unlock()
	if n := strings.Count(l, "no configured exporter uses"); n != 1 || !strings.Contains(l, old) || strings.Contains(l, "bytes=0") {
		t.Errorf("log:\n%s", l)
	}
	if _, err := os.Stat(filepath.Join(old, segName(1))); err != nil {
		t.Errorf("the orphan queue was touched: %v", err)
	}
}
