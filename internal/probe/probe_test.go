// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroupid"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// The test binary re-executes itself as the workloads, selected by this
// variable, so that each workload is a process of its own in a cgroup of
// its own from its first instruction.
const workloadEnv = "CRMON_PROBE_WORKLOAD"

func TestMain(m *testing.M) {
	if w := os.Getenv(workloadEnv); w != "" {
		os.Exit(runWorkload(w, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// runWorkload waits for the go signal on fd 3 (the parent first moves it
// into its v1 cgroups), then works.
func runWorkload(name, arg string) int {
	if name == "unprivileged" {
		if err := unprivileged(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	release := os.NewFile(3, "release")
	var b [1]byte
	if _, err := release.Read(b[:]); err != nil {
		fmt.Fprintln(os.Stderr, "waiting for release:", err)
		return 2
	}
	if err := workload(name, arg); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

func workload(name, arg string) error {
	switch name {
	case "burn":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return err
		}
		burn(d)
		return nil
	case "burn-and-stay":
		// Burns, then sleeps until killed, its run delay still, so
		// that the test reads it from outside beside the probes.
		d, err := time.ParseDuration(arg)
		if err != nil {
			return err
		}
		burn(d)
		fmt.Println("done")
		time.Sleep(time.Hour)
		return nil
	case "idle":
		d, _ := time.ParseDuration(arg)
		time.Sleep(d)
		return nil
	case "direct-io":
		return directIO(arg)
	case "buffered-write":
		return bufferedWrite(arg)
	case "send":
		return send(arg)
	case "receive":
		return receive(arg)
	case "unprivileged":
		return unprivileged()
	case "switches":
		return switches(arg)
	}
	return fmt.Errorf("unknown workload %q", name)
}

// burn spins for d of CPU time of this thread.
func burn(d time.Duration) {
	runtime.LockOSThread()
	start := threadCPU()
	x := uint64(1)
	for threadCPU()-start < d {
		for range 100000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	_ = x
}

// switches sleeps and burns by turns, n times (arg), then prints "done"
// and sleeps until killed, its context switch counts still.
func switches(arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	for range n {
		time.Sleep(200 * time.Microsecond)
		start := threadCPU()
		for threadCPU()-start < time.Millisecond {
		}
	}
	fmt.Println("done")
	time.Sleep(time.Hour)
	return nil
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// runDelay sums the run delay (2nd field of /proc/<pid>/task/<tid>/schedstat)
// of pid's threads.
func runDelay(t testing.TB, pid int) float64 {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var sum int64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			sum += v
		}
	}
	return float64(sum)
}

// directIO writes and then reads back size bytes with O_DIRECT.
func directIO(arg string) error {
	parts := strings.SplitN(arg, ",", 2)
	size, _ := strconv.Atoi(parts[0])
	path := parts[1]
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC|syscall.O_DIRECT, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := alignedBuf(1 << 20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for off := 0; off < size; off += len(buf) {
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			return err
		}
	}
	for off := 0; off < size; off += len(buf) {
		if _, err := f.ReadAt(buf, int64(off)); err != nil {
			return err
		}
	}
	return nil
}

func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)
	return b[off : off+n]
}

func bufferedWrite(arg string) error {
	parts := strings.SplitN(arg, ",", 2)
	size, _ := strconv.Atoi(parts[0])
	f, err := os.OpenFile(parts[1], os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// Sync after every MiB: on a v1 host without cgroup writeback, pages
	// the flusher gets to first are charged to the flusher's (root)
	// cgroup, as blk-cgroup does; a busy host starts background writeback
	// at any time.
	buf := bytes.Repeat([]byte{0x5a}, 1<<20)
	for off := 0; off < size; off += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// send connects to addr and sends n bytes; arg is "n,addr".
// send sends n bytes to addr (arg "n,addr"), waits until the connection
// is closed on both sides and prints, as JSON on stdout, what its TCP
// stack counted (testenv.TCPSent): the bound of what the probes can have
// seen of it.
func send(arg string) error {
	parts := strings.SplitN(arg, ",", 2)
	if len(parts) != 2 {
		return fmt.Errorf("want n,addr, got %q", arg)
	}
	n, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return err
	}
	sent, err := testenv.SendTCP(parts[1], n, time.Minute)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(sent)
}

// sentTCP is what a finished send workload's TCP stack counted.
func (wp *workloadProc) sentTCP(t testing.TB) testenv.TCPSent {
	t.Helper()
	var s testenv.TCPSent
	if err := json.Unmarshal([]byte(wp.stdoutString()), &s); err != nil {
		t.Fatalf("the sender's TCP counters %q: %v", wp.stdoutString(), err)
	}
	return s
}

// receive listens on the address written to stdout, reads to EOF and
// prints the count.
func receive(string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	c, err := l.Accept()
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, n)
	return nil
}

// testCgroup is a fresh cgroup in the cgroup2 hierarchy and, on hybrid
// hosts, the blkio v1 cgroup of the same path.
type testCgroup struct {
	path   string // "/crmon-probe-test-…"
	dirs   []string
	v2     string
	blkio  string
	mounts cgroupid.Mounts
}

func newCgroup(t testing.TB, m cgroupid.Mounts, name string) *testCgroup {
	t.Helper()
	path := fmt.Sprintf("/crmon-probe-%s-%d-%d", name, os.Getpid(), time.Now().UnixNano()%1e9)
	cg := &testCgroup{path: path, mounts: m, v2: filepath.Join(m.Unified.Dir, path)}
	if m.Blkio.Dir == "" {
		// Pure v2: without io (and memory, for writeback) enabled below
		// the root, blk-cgroup charges the root, not the test's cgroup.
		enableControllers(t, m.Unified.Dir, "io", "memory")
	}
	cg.dirs = append(cg.dirs, cg.v2)
	if m.Blkio.Dir != "" {
		cg.blkio = filepath.Join(m.Blkio.Dir, path)
		cg.dirs = append(cg.dirs, cg.blkio)
	}
	for _, d := range cg.dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(cg.remove)
	return cg
}

// enableControllers enables the named controllers for dir's children
// and, when the test ends, disables again those it enabled, so that the
// host's root keeps the controllers it had. Best effort: a host that
// delegates differently has them on already, or refuses.
func enableControllers(t testing.TB, dir string, names ...string) {
	t.Helper()
	file := filepath.Join(dir, "cgroup.subtree_control")
	had, err := os.ReadFile(file)
	if err != nil {
		return
	}
	on := strings.Fields(string(had))
	var added []string
	for _, n := range names {
		if slices.Contains(on, n) {
			continue
		}
		if err := os.WriteFile(file, []byte("+"+n), 0o644); err != nil {
			t.Logf("enabling %s in %s: %v", n, file, err)
			continue
		}
		added = append(added, n)
	}
	// Cleanups run last-in first-out: this one runs after the test's
	// cgroups, registered later, are gone.
	t.Cleanup(func() {
		for _, n := range added {
			if err := os.WriteFile(file, []byte("-"+n), 0o644); err != nil {
				t.Errorf("restoring %s: disabling %s: %v", file, n, err)
			}
		}
	})
}

func (cg *testCgroup) remove() {
	for _, d := range cg.dirs {
		// Retry: the last task leaves a moment after its parent reaps it.
		for i := 0; i < 50; i++ {
			if err := os.Remove(d); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// workloadProc is a started workload.
type workloadProc struct {
	cmd     *exec.Cmd
	stdout  lockedBuffer
	stderr  bytes.Buffer
	release *os.File
}

// lockedBuffer is read while the child writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (wp *workloadProc) stdoutString() string { return wp.stdout.String() }

// start starts workload in cg: cloned straight into the cgroup2 cgroup
// (CLONE_INTO_CGROUP), moved into the v1 blkio cgroup while it waits, then
// released. cpu pins it to one CPU when >= 0.
func start(t testing.TB, cg *testCgroup, cpu int, name, arg string) *workloadProc {
	t.Helper()
	dir, err := os.Open(cg.v2)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wp := &workloadProc{release: w}
	wp.cmd = exec.Command(os.Args[0], "-test.run=^$", arg)
	wp.cmd.Env = append(os.Environ(), workloadEnv+"="+name, "GOMAXPROCS=1")
	wp.cmd.ExtraFiles = []*os.File{r}
	wp.cmd.Stdout = &wp.stdout
	wp.cmd.Stderr = &wp.stderr
	wp.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if cpu >= 0 {
		// The child inherits the forking thread's affinity, for all its
		// threads.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var old, set unix.CPUSet
		_ = unix.SchedGetaffinity(0, &old)
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Fatal(err)
		}
		defer unix.SchedSetaffinity(0, &old)
	}
	if err := wp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if cg.blkio != "" {
		if err := os.WriteFile(filepath.Join(cg.blkio, "cgroup.procs"), []byte(strconv.Itoa(wp.cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return wp
}

func (wp *workloadProc) go_(t testing.TB) {
	t.Helper()
	if _, err := wp.release.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	wp.release.Close()
}

func (wp *workloadProc) wait(t testing.TB) *syscall.Rusage {
	t.Helper()
	if err := wp.cmd.Wait(); err != nil {
		t.Fatalf("workload: %v\n%s", err, wp.stderr.String())
	}
	return wp.cmd.ProcessState.SysUsage().(*syscall.Rusage)
}

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadProbes loads the probes for one test.
// requireEBPF stops a test that loads BPF programs where it cannot: not
// root (or -short), or no kernel BTF.
func requireEBPF(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		testenv.Unavailable(t, "no kernel BTF")
	}
}

func loadProbes(t testing.TB, opts Options) *Probes {
	t.Helper()
	requireEBPF(t)
	opts.Required = true
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func mounts(t testing.TB) cgroupid.Mounts {
	t.Helper()
	m, err := cgroupid.FindMounts("/proc")
	if err != nil {
		testenv.Unavailable(t, "cgroup2: %v", err)
	}
	return m
}

// settle lets exited tasks' last context switch land before a read.
func settle() { time.Sleep(100 * time.Millisecond) }

func read(t *testing.T, p *Probes, path string) CgroupStats {
	t.Helper()
	snap, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := snap.Cgroup(path)
	return c
}

// errUnderCount marks block operations or latencies missing, the one
// failure that lost completions can explain: bytes are counted as a
// request is issued, and a lost completion takes none of them.
var errUnderCount = errors.New("under-count")

// ratio returns an error unless got/want is within [1+lo, 1+hi].
func ratio(t testing.TB, what string, got, want, lo, hi float64) error {
	t.Helper()
	r := got / want
	if r < 1+lo || r > 1+hi {
		return fmt.Errorf("%s = %.0f, ground truth %.0f: ratio %.4f outside [%.3f, %.3f]", what, got, want, r, 1+lo, 1+hi)
	}
	t.Logf("%s = %.0f, ground truth %.0f: ratio %.4f", what, got, want, r)
	return nil
}

// lostCompletions is the block probe's count of lost completions.
func lostCompletions(t *testing.T, p *Probes) uint64 {
	t.Helper()
	snap, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Dropped(ProbeBlock, "lost_completion")
}

// errChargedElsewhere marks an attempt whose workload's block I/O the
// kernel's own blk-cgroup counter shows charged mostly to other cgroups
// (writeback without cgroup writeback): the attempt says nothing of the
// workload's cgroup.
var errChargedElsewhere = errors.New("writeback charged elsewhere")

// retryOnLostCompletions runs attempt, which checks its own block counts,
// again (up to 3 times in all) only when a kernel-side counter explains
// why the attempt could not be compared:
//   - it found no operation or latency and the block probe lost
//     completions meanwhile: on Linux 6.18 the completion program was
//     seen not to run for some completions while another program
//     attached to or detached from the tracepoint, or beside
//     `stress-ng --io`;
//   - the kernel's blk-cgroup counter of the workload's cgroup shows it
//     charged the workload's I/O to other cgroups (errChargedElsewhere).
//
// Any other failure, a byte count off its ground truth included, or an
// under-count with no lost completion, fails at once. When every attempt
// was spoiled the test cannot run: it fails under CI=true and is skipped
// otherwise.
//
// The attempt's workload waited for its I/O, so once it is done any of
// its requests still in flight lost its completion: they are swept after
// a second (a request of someone else's issued just before is given that
// long to complete) instead of the agent's LostAfter.
func retryOnLostCompletions(t *testing.T, p *Probes, attempt func() error) {
	t.Helper()
	const attempts = 3
	for i := 1; ; i++ {
		before := lostCompletions(t, p)
		err := attempt()
		switch {
		case err == nil:
			return
		case errors.Is(err, errChargedElsewhere):
			if i == attempts {
				testenv.Unavailable(t, "%v (in every one of %d attempts)", err, i)
			}
			t.Logf("attempt %d: %v; retrying with a new cgroup", i, err)
			continue
		case !errors.Is(err, errUnderCount):
			t.Fatal(err)
		}
		done := time.Now()
		time.Sleep(time.Second)
		if err := p.SweepLostCompletions(time.Since(done)); err != nil {
			t.Fatal(err)
		}
		lost := lostCompletions(t, p) - before
		if lost == 0 {
			t.Fatalf("%v (no completion was lost meanwhile)", err)
		}
		if i == attempts {
			t.Fatalf("%v (%d completions lost meanwhile, attempt %d)", err, lost, i)
		}
		t.Logf("attempt %d: %v; %d completions lost meanwhile, retrying", i, err, lost)
	}
}

func within(t *testing.T, what string, got, want, lo, hi float64) {
	t.Helper()
	r := got / want
	if r < 1+lo || r > 1+hi {
		t.Errorf("%s = %.0f, ground truth %.0f: ratio %.4f outside [%.3f, %.3f]", what, got, want, r, 1+lo, 1+hi)
	} else {
		t.Logf("%s = %.0f, ground truth %.0f: ratio %.4f", what, got, want, r)
	}
}

func TestSchedCPU(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	busy := newCgroup(t, m, "burn")
	idle := newCgroup(t, m, "idle")

	wi := start(t, idle, -1, "idle", "2s")
	wb := start(t, busy, -1, "burn", "1500ms")
	wi.go_(t)
	wb.go_(t)
	ru := wb.wait(t)
	wi.wait(t)
	settle()

	c := read(t, p, busy.path)
	within(t, "cpu ns", float64(c.CPU), float64(rusageCPU(ru)), -0.01, 0.01)
	if c.VoluntarySwitches+c.InvoluntarySwitches == 0 {
		t.Error("no context switches counted")
	}
	if c.RunqueueLatency.Count == 0 {
		t.Error("empty run-queue histogram")
	}
	ic := read(t, p, idle.path)
	if ic.CPU >= 50*time.Millisecond {
		t.Errorf("idle cgroup CPU = %v, want < 50ms", ic.CPU)
	}
	t.Logf("idle cgroup CPU = %v", ic.CPU)
}

// startUntilDone starts n copies of workload name in cg (pinned to cpu
// when >= 0), releases them together, and waits until each has printed
// "done" and sleeps; they are killed when the test ends.
func startUntilDone(t *testing.T, cg *testCgroup, cpu int, name, arg string, n int) []*workloadProc {
	t.Helper()
	ws := make([]*workloadProc, n)
	for i := range ws {
		ws[i] = start(t, cg, cpu, name, arg)
	}
	for _, w := range ws {
		w.go_(t)
	}
	t.Cleanup(func() {
		for _, w := range ws {
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for _, w := range ws {
		for !strings.Contains(w.stdoutString(), "done") {
			if time.Now().After(deadline) || w.cmd.ProcessState != nil {
				t.Fatalf("%s workload not done: %s", name, w.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ws
}

// TestSchedRunqueue runs two burners pinned to one CPU: each waits while
// the other runs, and the kernel's schedstat run delay is ground truth.
func TestSchedRunqueue(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	cg := newCgroup(t, m, "runq")
	cpu := runtime.NumCPU() - 1
	ws := startUntilDone(t, cg, cpu, "burn-and-stay", "700ms", 2)
	// Compared where the two are defined to agree: every thread asleep,
	// so that only the Go runtime's idle threads may still wait for a
	// CPU, and the probes' read bracketed by two reads of the kernel's
	// own per-thread run delay. (The workload reading its own run delay
	// before it exits, as this test did, leaves out the wait to exit,
	// which a loaded machine makes long.)
	time.Sleep(50 * time.Millisecond)
	total := func() (sum float64) {
		for _, w := range ws {
			sum += runDelay(t, w.cmd.Process.Pid)
		}
		return sum
	}
	lo := total()
	c := read(t, p, cg.path)
	hi := total()
	got := float64(c.RunqueueWait)
	t.Logf("run-queue wait: probes %.0f ns, /proc/PID/task/*/schedstat %.0f..%.0f ns", got, lo, hi)
	if lo < float64(100*time.Millisecond) {
		t.Fatalf("only %.0f ns of run delay: the two burners did not wait for each other", lo)
	}
	if got < lo*0.99 || got > hi*1.01 {
		t.Errorf("run-queue wait = %.0f ns, the kernel's own %.0f..%.0f ns: outside 1 %%", got, lo, hi)
	}
	if p50 := c.RunqueueLatency.Quantile(0.5); p50 <= 0 {
		t.Errorf("p50 = %v", p50)
	}
}

// ctxtSwitches sums voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches of /proc/<pid>/task/*/status: each file has
// one thread's.
func ctxtSwitches(t *testing.T, pid int) (vol, invol uint64) {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(files) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				vol += n
			case "nonvoluntary_ctxt_switches":
				invol += n
			}
		}
	}
	return vol, invol
}

// TestSchedSwitchTypes checks voluntary and involuntary context switches
// against the kernel's own per-thread counts, for two processes pinned to
// one CPU that sleep and burn by turns, so that they block and preempt
// each other. The comparison is made while all are asleep: the probes' read
// is bracketed by two reads of /proc/PID/task/*/status, between which only
// the Go runtime's idle threads may switch. The processes were cloned into
// the cgroup, so every switch of theirs is the cgroup's; none of their
// threads exits, whose counts /proc would no longer show.
func TestSchedSwitchTypes(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	cg := newCgroup(t, m, "switches")
	cpu := runtime.NumCPU() - 1
	ws := startUntilDone(t, cg, cpu, "switches", "1500", 2)
	pids := []int{ws[0].cmd.Process.Pid, ws[1].cmd.Process.Pid}
	time.Sleep(50 * time.Millisecond)
	status := func() (vol, invol float64) {
		for _, pid := range pids {
			v, i := ctxtSwitches(t, pid)
			vol += float64(v)
			invol += float64(i)
		}
		return vol, invol
	}
	v1, i1 := status()
	c := read(t, p, cg.path)
	v2, i2 := status()
	t.Logf("voluntary: /proc %v..%v, probes %d; involuntary: /proc %v..%v, probes %d", v1, v2, c.VoluntarySwitches, i1, i2, c.InvoluntarySwitches)
	if i1 < 100 {
		t.Fatalf("only %v involuntary switches: the workload did not preempt itself", i1)
	}
	bracket := func(what string, got, lo, hi float64) {
		if got < lo*0.99 || got > hi*1.01 {
			t.Errorf("%s switches = %.0f, /proc/PID/task/*/status %.0f..%.0f: outside 1 %%", what, got, lo, hi)
		}
	}
	bracket("voluntary", float64(c.VoluntarySwitches), v1, v2)
	bracket("involuntary", float64(c.InvoluntarySwitches), i1, i2)
}

// TestShortLivedCgroup removes a cgroup right after its only process
// exits, before any read: its work is still counted, under its path.
func TestShortLivedCgroup(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	cg := newCgroup(t, m, "short")
	w := start(t, cg, -1, "burn", "100ms")
	w.go_(t)
	ru := w.wait(t)
	cg.remove()
	if _, err := os.Stat(cg.v2); !os.IsNotExist(err) {
		t.Fatalf("cgroup not removed: %v", err)
	}
	// Two reads: the first takes the final counts, the second (after the
	// reap delay) deletes the entries; the counts must survive both.
	settle()
	c1 := read(t, p, cg.path)
	time.Sleep(reapDelay + 100*time.Millisecond)
	c2 := read(t, p, cg.path)
	within(t, "cpu ns after removal", float64(c2.CPU), float64(rusageCPU(ru)), -0.01, 0.01)
	if c2.CPU < c1.CPU {
		t.Errorf("counter went backwards across the reap: %v then %v", c1.CPU, c2.CPU)
	}
	if !c2.Removed {
		t.Error("removed cgroup not marked Removed")
	}
	// The reads walk cgroup_removed only when the probe counted a removal.
	var removed uint64
	if err := p.cgroups.RemovedCount.Get(&removed); err != nil || removed == 0 {
		t.Errorf("removed_count = %d (%v): the removal was not counted", removed, err)
	}
	var n uint64
	key := c2.ID
	if key != 0 {
		if err := p.sched.SchedCgroups.Lookup(&key, &[]schedSchedValue{}); err == nil {
			n++
		}
	}
	if n != 0 {
		t.Error("reaped cgroup's map entry still present")
	}
}

func TestHistBucket(t *testing.T) {
	testenv.RequireRoot(t)
	var objs testObjects
	if err := loadTestObjects(&objs, nil); err != nil {
		testenv.Unavailable(t, "loading test programs: %v", err)
	}
	defer objs.Close()
	tests := []struct {
		v    uint64
		want uint32
	}{
		{0, 0}, {1, 1}, {2, 2}, {3, 2}, {4, 3}, {1023, 10}, {1024, 11},
		{1 << 31, 32}, {1<<32 - 1, 32}, {1 << 32, 33}, {1 << 40, 33}, {^uint64(0), 33},
	}
	for _, tt := range tests {
		in := make([]byte, 16)
		binary.LittleEndian.PutUint64(in, tt.v)
		out := make([]byte, 16)
		if _, err := objs.CrmonTestHistBucket.Run(&ebpf.RunOptions{Context: in, ContextOut: out}); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(out[8:]); got != tt.want {
			t.Errorf("hist_bucket(%d) = %d, want %d", tt.v, got, tt.want)
		}
	}
}

// TestSwitchVoluntary runs the sched program's rule for a switch's type
// on the cases __schedule() tells apart: a task preempted after
// set_current_state() is not running, and its switch is involuntary.
func TestSwitchVoluntary(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireLong(t, "eBPF")
	var objs testObjects
	if err := loadTestObjects(&objs, nil); err != nil {
		testenv.Unavailable(t, "loading test programs: %v", err)
	}
	defer objs.Close()
	// Task states from include/linux/sched.h.
	const (
		running       = 0x0
		interruptible = 0x1
		stopped       = 0x4
		dead          = 0x80
	)
	tests := []struct {
		preempt bool
		state   uint64
		want    bool
	}{
		{false, running, false},      // yield, or woken before switching out
		{false, interruptible, true}, // blocked
		{false, stopped, true},
		{false, dead, true}, // a dying task's last switch
		{true, running, false},
		{true, interruptible, false}, // preempted on its way to sleep
		{true, stopped, false},
	}
	for _, tt := range tests {
		in := make([]byte, 16)
		binary.LittleEndian.PutUint64(in, tt.state)
		if tt.preempt {
			binary.LittleEndian.PutUint32(in[8:], 1)
		}
		out := make([]byte, 16)
		if _, err := objs.CrmonTestSwitchVoluntary.Run(&ebpf.RunOptions{Context: in, ContextOut: out}); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(out[12:]) != 0; got != tt.want {
			t.Errorf("preempt %v, state %#x: voluntary %v, want %v", tt.preempt, tt.state, got, tt.want)
		}
	}
}

// testFile is a file on the root filesystem (ext4 on a block device), not
// on a tmpfs: TMPDIR may be one.
func testFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "crmon-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

func TestBlockDirectIO(t *testing.T) {
	p := loadProbes(t, Options{Block: true})
	m := mounts(t)
	const size = 32 << 20
	retryOnLostCompletions(t, p, func() error {
		cg := newCgroup(t, m, "dio")
		idle := newCgroup(t, m, "dio-idle")
		wi := start(t, idle, -1, "idle", "500ms")
		w := start(t, cg, -1, "direct-io", fmt.Sprintf("%d,%s", size, testFile(t)))
		wi.go_(t)
		w.go_(t)
		w.wait(t)
		wi.wait(t)
		settle()
		c := read(t, p, cg.path)
		t.Logf("block: %+v", summarizeBlock(c.Block))
		if c.BlockOps(OpWrite) == 0 || c.BlockLatency(OpWrite).Count == 0 {
			return fmt.Errorf("%w: no write operations or latencies: %+v", errUnderCount, c.Block)
		}
		if len(c.Block) > 0 && c.Block[0].Device == "" {
			return errors.New("empty device name")
		}
		if ic := read(t, p, idle.path); ic.BlockBytes(OpWrite)+ic.BlockBytes(OpRead) != 0 {
			return fmt.Errorf("idle cgroup has block I/O: %+v", ic.Block)
		}
		return errors.Join(
			ratio(t, "O_DIRECT write bytes", float64(c.BlockBytes(OpWrite)), size, 0, 0.01),
			ratio(t, "O_DIRECT read bytes", float64(c.BlockBytes(OpRead)), size, 0, 0.01))
	})
}

// TestBlockBufferedWrite checks that dirty pages written back by the
// writer's fsync are charged to the writer's cgroup, not to a flusher:
// crmon's count for the writer's cgroup is the kernel's blk-cgroup
// counter for it, within 1 %, in every attempt.
//
// Who the kernel charges a page's writeback to is the kernel's choice,
// and the test only makes sure it chose the writer for most of the
// bytes, so that the comparison is about them. With cgroup writeback (a
// cgroup2 io+memory hierarchy) the kernel charges the page's owner, the
// writer, whoever writes it back: all the bytes must be there. Without
// it (blkio on cgroup v1), a page is charged to the cgroup of the task
// that writes it back: the writer's fsync, or a flusher, jbd2, or another
// task's sync() (a busy CI host runs `sync` in a loop) that got to it
// first. Then an attempt in which the writer's own blk-cgroup counter
// shows most bytes charged elsewhere cannot say anything of the writer,
// and is made again with a new cgroup (errChargedElsewhere).
func TestBlockBufferedWrite(t *testing.T) {
	p := loadProbes(t, Options{Block: true})
	m := mounts(t)
	const size = 16 << 20
	retryOnLostCompletions(t, p, func() error {
		cg := newCgroup(t, m, "buffered")
		owner := cg.writebackOwner(t)
		w := start(t, cg, -1, "buffered-write", fmt.Sprintf("%d,%s", size, testFile(t)))
		w.go_(t)
		w.wait(t)
		settle()
		c := read(t, p, cg.path)
		got := float64(c.BlockBytes(OpWrite))
		kernel := float64(cg.kernelWriteBytes(t))
		t.Logf("writer's cgroup: %.0f bytes of %d written (%.1f%%); the kernel charged it %.0f (cgroup writeback: %v)", got, size, 100*got/size, kernel, owner)
		if err := ratio(t, "buffered write bytes vs the cgroup's blk-cgroup counter", got, kernel, -0.01, 0.01); err != nil {
			return err
		}
		switch {
		case owner && kernel < size:
			return fmt.Errorf("with cgroup writeback the kernel charged the writer's cgroup %.0f of %d bytes written", kernel, size)
		case !owner && kernel < size/2:
			return fmt.Errorf("%w: the kernel charged the writer's cgroup %.0f of %d bytes written", errChargedElsewhere, kernel, size)
		}
		return nil
	})
}

// writebackOwner says whether the kernel charges cg the writeback of the
// pages it dirtied whoever writes them back: cgroup writeback, on a
// cgroup2 hierarchy with io and memory enabled for cg.
func (cg *testCgroup) writebackOwner(t *testing.T) bool {
	t.Helper()
	if cg.blkio != "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(cg.v2, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	return slices.Contains(f, "io") && slices.Contains(f, "memory")
}

// kernelWriteBytes is the bytes written that blk-cgroup charged to cg: v1
// blkio.throttle.io_service_bytes ("MAJ:MIN Write N") or v2 io.stat
// ("MAJ:MIN rbytes=… wbytes=N …").
func (cg *testCgroup) kernelWriteBytes(t *testing.T) uint64 {
	t.Helper()
	var sum uint64
	if cg.blkio != "" {
		b, err := os.ReadFile(filepath.Join(cg.blkio, "blkio.throttle.io_service_bytes"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[1] == "Write" {
				n, _ := strconv.ParseUint(f[2], 10, 64)
				sum += n
			}
		}
		return sum
	}
	b, err := os.ReadFile(filepath.Join(cg.v2, "io.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "wbytes="); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			sum += n
		}
	}
	return sum
}

// TestLostCompletions puts the block probe in the state a completion the
// completion program did not see leaves behind: a request's entry still
// in flight after the request completed. Real requests' entries are
// counted when the block layer issues the same requests again; entries
// of requests never issued again are counted by the sweep, after
// LostAfter.
func TestLostCompletions(t *testing.T) {
	const lostAfter = 2 * time.Second
	p := loadProbes(t, Options{Block: true, LostAfter: lostAfter})
	m := mounts(t)
	cg := newCgroup(t, m, "lost")
	inflight := p.block.BlockInflight

	// Collect the addresses of requests in flight during O_DIRECT I/O.
	seen := make(map[uint64]bool)
	w := start(t, cg, -1, "direct-io", fmt.Sprintf("%d,%s", 64<<20, testFile(t)))
	w.go_(t)
	exited := make(chan struct{})
	go func() { w.wait(t); close(exited) }()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		default:
		}
		var key uint64
		var val blockInflight
		for it := inflight.Iterate(); it.Next(&key, &val); {
			seen[key] = true
		}
	}
	if len(seen) == 0 {
		t.Fatal("no request seen in flight")
	}
	before := lostCompletions(t, p)
	// Their completions ran: put them back as if they had not.
	issued := monotonicNow()
	for k := range seen {
		if err := inflight.Update(&k, &blockInflight{IssuedNs: issued}, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	// More I/O reissues the same requests (the block layer reuses them
	// by tag).
	w = start(t, cg, -1, "direct-io", fmt.Sprintf("%d,%s", 64<<20, testFile(t)))
	w.go_(t)
	w.wait(t)
	reissued := lostCompletions(t, p) - before
	t.Logf("%d requests put back, %d counted lost when issued again", len(seen), reissued)
	if reissued == 0 {
		t.Error("no lost completion counted when the requests were issued again")
	}

	// Requests never issued again are swept once in flight for LostAfter.
	// Odd addresses are no request's: these are not issued again, nor
	// completed.
	before = lostCompletions(t, p)
	const never = 16
	for i := range never {
		k := uint64(2*i + 1)
		if err := inflight.Update(&k, &blockInflight{IssuedNs: monotonicNow()}, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(lostAfter)
	snap, err := p.Read(time.Now().Add(lostSweepEvery))
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Dropped(ProbeBlock, "lost_completion") - before; got < never {
		t.Errorf("%d lost completions counted by the sweep, want at least %d", got, never)
	}
	for i := range never {
		k := uint64(2*i + 1)
		if err := inflight.Lookup(&k, new(blockInflight)); err == nil {
			t.Errorf("request %#x still in flight after the sweep", k)
		}
	}
}

func summarizeBlock(bs []BlockStats) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s/%s %d bytes %d ops p50 %v p99 %v", b.Device, b.Op, b.Bytes, b.Ops, b.Latency.Quantile(0.5), b.Latency.Quantile(0.99)))
	}
	return out
}

func TestNetLoopback(t *testing.T) {
	p := loadProbes(t, Options{Net: true})
	m := mounts(t)
	sender := newCgroup(t, m, "tx")
	receiver := newCgroup(t, m, "rx")
	const size = 8 << 20

	rw := start(t, receiver, -1, "receive", "")
	rw.go_(t)
	// The receiver prints its address once listening.
	var addr string
	for i := 0; i < 200 && addr == ""; i++ {
		time.Sleep(10 * time.Millisecond)
		addr = strings.TrimSpace(rw.stdoutString())
	}
	if addr == "" {
		t.Fatal("receiver did not start")
	}
	sw := start(t, sender, -1, "send", fmt.Sprintf("%d,%s", size, addr))
	sw.go_(t)
	sw.wait(t)
	rw.wait(t)
	got, err := strconv.Atoi(strings.TrimSpace(rw.stderr.String()))
	if err != nil || got != size {
		t.Fatalf("receiver got %q bytes, want %d", rw.stderr.String(), size)
	}
	settle()
	tx := read(t, p, sender.path)
	rx := read(t, p, receiver.path)
	sent := sw.sentTCP(t)
	// Each cgroup's only traffic is the one connection. The probes count
	// each packet from its IPv4 header on (skb->len), as it leaves the
	// sender's socket and as it reaches the receiver's. At least: the
	// payload once, and an IPv4 and a TCP header (20+20 bytes) for every
	// packet counted. At most: what the sender's TCP stack says it put
	// out (tcp_info, read once its socket was closed), retransmissions
	// included, with an IPv4 header and a TCP header with every option
	// for each MSS-sized segment. A busy host retransmits, and the
	// receiver's program counts a duplicate as it arrives, so neither
	// count can be held to the payload plus headers alone; both are held
	// to what the sender sent. (The sender's last ACK leaves its socket
	// before it closes, so it is in these counters; the option room its
	// segments left unused, 28 bytes each where only timestamps are set,
	// covers an ACK from its TIME_WAIT should the receiver retransmit its
	// FIN.)
	hi := sent.MaxIPBytes()
	if hi >= 2*size {
		// Retransmissions of this size would hide a count doubled.
		t.Fatalf("the sender retransmitted %d of %d bytes (%+v): a double count could not be told apart", sent.BytesRetrans, sent.BytesSent, sent)
	}
	for _, c := range []struct {
		what           string
		bytes, packets uint64
	}{
		{"sender transmit", tx.NetTransmitBytes, tx.NetTransmitPackets},
		{"receiver receive", rx.NetReceiveBytes, rx.NetReceivePackets},
	} {
		lo := size + c.packets*(testenv.IPv4Header+testenv.TCPHeaderMin)
		if c.packets == 0 || c.bytes < lo || c.bytes > hi {
			t.Errorf("%s: %d bytes in %d packets, want %d (payload %d and 40 bytes of headers a packet) to %d (the sender's %+v)",
				c.what, c.bytes, c.packets, lo, size, hi, sent)
		} else {
			t.Logf("%s: %d bytes in %d packets (payload %d, bounds %d to %d; the sender's %+v)", c.what, c.bytes, c.packets, size, lo, hi, sent)
		}
	}
	// The sender's socket sent every packet its cgroup's program saw, and
	// each is at least one segment.
	if tx.NetTransmitPackets > sent.SegsOut {
		t.Errorf("sender transmit packets = %d, more than the %d segments its TCP stack sent", tx.NetTransmitPackets, sent.SegsOut)
	}
}

// unprivileged loads the probes without capabilities and prints what New
// reports: each probe down, with its reason, and Required's error.
func unprivileged() error {
	p, err := New(DefaultOptions())
	if err != nil {
		return fmt.Errorf("New without Required failed: %w", err)
	}
	for _, s := range p.Status() {
		fmt.Printf("%s up=%v reason=%s\n", s.Probe, s.Up, s.Reason)
	}
	snap, err := p.Read(time.Now())
	if err != nil || len(snap.Cgroups) != 0 {
		return fmt.Errorf("Read without probes: %v, %d cgroups", err, len(snap.Cgroups))
	}
	if err := p.Close(); err != nil {
		return err
	}
	opts := DefaultOptions()
	opts.Required = true
	if _, err := New(opts); err != nil {
		fmt.Printf("required: %v\n", err)
	}
	return nil
}

// TestWithoutCapabilities runs New in a child whose capabilities are all
// dropped (setpriv --bounding-set=-all): the agent must keep running with
// every probe down and a reason, and Required must name what is missing.
func TestWithoutCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireCommand(t, "setpriv")
	cmd := exec.Command(setpriv, "--bounding-set=-all", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workloadEnv+"=unprivileged")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	text := string(out)
	for _, probe := range []string{ProbeSched, ProbeBlock, ProbeNet, ProbeCgroups} {
		if !strings.Contains(text, probe+" up=false reason=") {
			t.Errorf("no down status with a reason for %s in:\n%s", probe, text)
		}
	}
	if !strings.Contains(text, "required: eBPF probes required: probe sched: missing capabilities: CAP_BPF") ||
		!strings.Contains(text, "probe net: ") {
		t.Errorf("Required error does not name the probes:\n%s", text)
	}
	t.Logf("\n%s", text)
}

func TestParseCapEff(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n", 0x1ffffffffff, true},
		{"CapEff:\t0000000000000000\n", 0, true},
		{"CapEff:\tzz\n", 0, false},
		{"Name:\tx\n", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCapEff([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCapEff(%q) = %x, %v; want %x, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestReapWithoutCgroupsProbe checks the fallback reaper: with the
// cgroups probe (which reports removals) down, a removed cgroup is found
// gone in cgroupfs, its entry deleted and its counts kept.
func TestReapWithoutCgroupsProbe(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	// Take the cgroups probe down as a failed load would have left it.
	p.mu.Lock()
	// Its two links (mkdir, rmdir) are the first: it loads first.
	for _, l := range p.links[:2] {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p.links = p.links[2:]
	if err := p.cgroups.Close(); err != nil {
		t.Fatal(err)
	}
	p.cgroups = nil
	p.progs = p.programs()
	p.mapList = p.maps()
	p.mu.Unlock()

	m := mounts(t)
	cg := newCgroup(t, m, "gone")
	w := start(t, cg, -1, "burn", "50ms")
	w.go_(t)
	ru := w.wait(t)
	settle()
	now := time.Now()
	c1 := read(t, p, cg.path)
	id := c1.ID
	if c1.CPU == 0 || id == 0 {
		t.Fatalf("before removal: %+v", c1)
	}
	cg.remove()
	snap, err := p.Read(now.Add(goneSweepEvery + time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c2, ok := snap.Cgroup(cg.path)
	if !ok || !c2.Removed {
		t.Fatalf("removed cgroup %s: present %v, removed %v", cg.path, ok, c2.Removed)
	}
	within(t, "cpu ns after the fallback reap", float64(c2.CPU), float64(rusageCPU(ru)), -0.01, 0.01)
	if err := p.sched.SchedCgroups.Lookup(&id, &[]schedSchedValue{}); err == nil {
		t.Error("entry of the removed cgroup still in the map")
	}
}

// TestUnresolvedEntriesExpire puts entries for a cgroup id that names no
// cgroup into each per-cgroup map, as the programs do for a cgroup crmon
// cannot see (its own cgroup namespace, a cgroup gone unnoticed): each is
// kept, and resolving retried, for unresolvedGrace, then deleted and
// counted once as an "unresolved" drop however many reads saw it.
func TestUnresolvedEntriesExpire(t *testing.T) {
	p := loadProbes(t, Options{Sched: true, Block: true, Net: true})
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// cgroup ids are inode numbers; this one is above any on the host.
	const id = 1<<62 + 12345
	schedKey, netKey := uint64(id), uint64(id)
	blockKey := blockBlockKey{Cgroup: id, Dev: 8 << 20, Op: 1}
	sched := make([]schedSchedValue, ncpu)
	sched[0].CpuNs, sched[0].Voluntary = 1e6, 1
	block := make([]blockBlockValue, ncpu)
	block[0].Bytes, block[0].Ops = 4096, 1
	net := make([]netNetValue, ncpu)
	net[0].RxBytes, net[0].RxPackets = 100, 1
	if err := p.sched.SchedCgroups.Put(&schedKey, sched); err != nil {
		t.Fatal(err)
	}
	if err := p.block.BlockCgroups.Put(&blockKey, block); err != nil {
		t.Fatal(err)
	}
	if err := p.net.NetCgroups.Put(&netKey, net); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.sched.SchedCgroups.Delete(&schedKey)
		p.block.BlockCgroups.Delete(&blockKey)
		p.net.NetCgroups.Delete(&netKey)
	})
	present := func() map[string]bool {
		return map[string]bool{
			ProbeSched: p.sched.SchedCgroups.Lookup(&schedKey, &sched) == nil,
			ProbeBlock: p.block.BlockCgroups.Lookup(&blockKey, &block) == nil,
			ProbeNet:   p.net.NetCgroups.Lookup(&netKey, &net) == nil,
		}
	}
	unresolved := func(snap *Snapshot) map[string]uint64 {
		n := map[string]uint64{}
		for _, d := range snap.Drops {
			if d.Reason == "unresolved" {
				n[d.Probe] = d.Count
			}
		}
		return n
	}
	readAt := func(at time.Time) *Snapshot {
		t.Helper()
		snap, err := p.Read(at)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range snap.Cgroups {
			if c.ID == id {
				t.Fatalf("cgroup id %d resolved to %s", uint64(id), c.Path)
			}
		}
		return snap
	}

	start := time.Now()
	base := unresolved(readAt(start))
	// Within the grace period: kept, and not counted, however many reads.
	for i := 1; i <= 4; i++ {
		snap := readAt(start.Add(time.Duration(i) * unresolvedGrace / 5))
		for probe, ok := range present() {
			if !ok {
				t.Errorf("read %d, within the grace period: the %s entry was deleted", i, probe)
			}
			if got := unresolved(snap)[probe]; got != base[probe] {
				t.Errorf("read %d, within the grace period: %d %s unresolved drops, want %d", i, got, probe, base[probe])
			}
		}
	}
	// After it: deleted and counted once, also by later reads.
	for i, at := range []time.Duration{unresolvedGrace, unresolvedGrace + time.Second, 2 * unresolvedGrace} {
		snap := readAt(start.Add(at))
		for probe, ok := range present() {
			if ok {
				t.Errorf("read %d after the grace period: the %s entry is still in its map", i+1, probe)
			}
			if got := unresolved(snap)[probe]; got != base[probe]+1 {
				t.Errorf("read %d after the grace period: %d %s unresolved drops, want %d (one for the entry)", i+1, got, probe, base[probe]+1)
			}
		}
	}
}

// TestKernelDrops checks that the drop counters the programs keep (globals
// user space reads from their maps' memory) reach the snapshot by probe and
// reason, and the process probe's its Dropped.
func TestKernelDrops(t *testing.T) {
	p := loadProbes(t, Options{Sched: true, Block: true, Net: true})
	set := func(v *ebpf.Variable, counts []uint64) {
		t.Helper()
		if err := v.Set(counts); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Set(make([]uint64, len(counts))) })
	}
	set(p.sched.SchedDrops, []uint64{3, 5})
	set(p.block.BlockDrops, []uint64{7, 11, 13})
	set(p.net.NetDrops, []uint64{17})
	set(p.cgroups.CgroupsDrops, []uint64{19})
	snap, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, d := range snap.Drops {
		got[d.Probe+"/"+d.Reason] = d.Count
	}
	for k, want := range map[string]uint64{
		"sched/cgroup_map_full": 3, "sched/task_storage": 5,
		"block/cgroup_map_full": 7, "block/inflight_full": 11, "block/lost_completion": 13,
		"net/cgroup_map_full": 17, "cgroups/removed_map_full": 19,
	} {
		// The block probe counts lost completions of its own too.
		if got[k] < want || (k != "block/lost_completion" && got[k] != want) {
			t.Errorf("drops %s = %d, want %d", k, got[k], want)
		}
	}
	pr, err := NewProcs()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	set(pr.objs.ProcsDrops, []uint64{2, 3})
	if n := pr.Dropped(); n != 5 {
		t.Errorf("Procs.Dropped() = %d, want 5", n)
	}
}
