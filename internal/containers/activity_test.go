// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// activityRig is a collector given the probes' activity, as the agent
// does, over containers started by the test.
type activityRig struct {
	t  *testing.T
	c  *Collector
	pc collect.Collector
}

func newActivityRig(t *testing.T, prefix string, idleRefresh int, probes bool) *activityRig {
	c := newTestCollector(t, Options{Include: []string{prefix + "-*"}, IdleRefresh: idleRefresh})
	r := &activityRig{t: t, c: c}
	if probes {
		r.pc = probeCounts(t, c, time.Minute)
	}
	return r
}

// tick runs one tick in the agent's order, containers then the probes,
// with one time.
func (r *activityRig) tick() time.Time {
	now := time.Now()
	if err := r.c.Update(context.Background(), now); err != nil {
		r.t.Fatal(err)
	}
	if r.pc == nil {
		return now
	}
	if err := r.pc.Update(context.Background(), now); err != nil {
		r.t.Fatal(err)
	}
	return now
}

// get returns the container's full read time and CPU total.
func (r *activityRig) get(id string) (fullAt time.Time, usage uint64) {
	r.c.mu.RLock()
	defer r.c.mu.RUnlock()
	ct, ok := r.c.byID[id]
	if !ok {
		r.t.Fatalf("container %.12s not held", id)
	}
	return ct.fullAt, ct.stats.CPU.UsageNanos
}

// scrape checks that the scrape's text is the series Collect emits, and
// returns it.
func (r *activityRig) scrape() string {
	r.t.Helper()
	// checkText reads the collector several times, each under its own
	// lock, while the engine's events update it in the background (a
	// container's metadata from an inspect): a round that saw it change
	// between two reads is tried again, and only the third is reported.
	for range 2 {
		if quietly(func(tb testing.TB) { checkText(tb, r.c) }) {
			return string(r.c.AppendText(nil))
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkText(r.t, r.c)
	return string(r.c.AppendText(nil))
}

// quietly runs check with a testing.TB that records failures instead of
// reporting them, and says whether it passed.
func quietly(check func(testing.TB)) (passed bool) {
	q := &quietTB{}
	defer func() {
		if v := recover(); v != nil && v != errQuietFatal {
			panic(v)
		}
		passed = !q.failed
	}()
	check(q)
	return
}

var errQuietFatal = fmt.Errorf("quietly: fatal")

// quietTB is the testing.TB of quietly: Error and Errorf note a failure,
// Fatal and Fatalf also stop the check (a panic quietly recovers).
type quietTB struct {
	testing.TB
	failed bool
}

func (q *quietTB) Helper()               {}
func (q *quietTB) Error(...any)          { q.failed = true }
func (q *quietTB) Errorf(string, ...any) { q.failed = true }
func (q *quietTB) Fatal(...any)          { q.failed = true; panic(errQuietFatal) }
func (q *quietTB) Fatalf(string, ...any) { q.failed = true; panic(errQuietFatal) }
func (q *quietTB) Failed() bool          { return q.failed }

// textValue returns the value of family's series of the container with
// cgroup cg in a scrape, "" if it has none.
func textValue(scrape, family, cg string) string {
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, family+"{") && strings.Contains(line, `id="`+cg+`"`) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

func (r *activityRig) waitKnown(ids ...string) {
	waitFor(r.t, 10*time.Second, "containers seen through events", func() bool {
		r.c.mu.RLock()
		defer r.c.mu.RUnlock()
		for _, id := range ids {
			if ct, ok := r.c.byID[id]; !ok || ct.reader == nil {
				return false
			}
		}
		return true
	})
}

// TestActivityReads checks, with the probes telling which cgroups were
// active, that a burner that never sleeps is read in full every tick,
// that sleeping containers are not read at all between idle refreshes,
// and that one that wakes is read in full at the next tick.
func TestActivityReads(t *testing.T) {
	prefix := uniq("crmon-act")
	// No idle refresh within the test: only activity makes a read.
	r := newActivityRig(t, prefix, 1000, true)
	burner := dockertest.Run(t, []string{"--name", prefix + "-burn", "--cpus", "0.5"}, "sh", "-c", "while :; do :; done")
	sleeper := dockertest.Run(t, []string{"--name", prefix + "-sleep"}, "sleep", "3600")
	// The waker sleeps until it gets SIGUSR1, then counts to 20000 (some
	// 50 ms of CPU) and sleeps again.
	waker := dockertest.Run(t, []string{"--name", prefix + "-wake"}, "sh", "-c",
		`trap 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done' USR1; while :; do sleep 3600 & wait $!; done`)
	r.waitKnown(burner, sleeper, waker)

	// The containers' start and the engine's setup settle.
	for range 5 {
		r.tick()
		time.Sleep(200 * time.Millisecond)
	}
	_, burnPrev := r.get(burner)
	sleepFull, sleepUsage := r.get(sleeper)
	wakeFull, wakeUsage := r.get(waker)
	const ticks = 10
	for i := range ticks {
		time.Sleep(200 * time.Millisecond)
		now := r.tick()
		full, usage := r.get(burner)
		if !full.Equal(now) {
			t.Errorf("tick %d: the burner was not read in full (last %v ago)", i, now.Sub(full))
		}
		if usage <= burnPrev {
			t.Errorf("tick %d: the burner's CPU total did not move (%d)", i, usage)
		}
		burnPrev = usage
	}
	for _, c := range []struct {
		what  string
		id    string
		full  time.Time
		usage uint64
	}{{"sleeper", sleeper, sleepFull, sleepUsage}, {"waker", waker, wakeFull, wakeUsage}} {
		full, usage := r.get(c.id)
		if !full.Equal(c.full) || usage != c.usage {
			t.Errorf("the %s was read while it slept: full read at %v (was %v), CPU total %d (was %d)", c.what, full, c.full, usage, c.usage)
		}
	}

	// Wake it: the next tick reads it in full, with the CPU it used.
	g := truth{t, r.c.h}
	r.c.mu.RLock()
	wakeCg := r.c.byID[waker].cgroupPath
	r.c.mu.RUnlock()
	before := g.cpuNanos(wakeCg)
	dockertest.Docker(t, "kill", "-s", "USR1", waker)
	waitFor(t, 10*time.Second, "the waker to compute", func() bool { return g.cpuNanos(wakeCg) > before+10e6 })
	now := r.tick()
	full, usage := r.get(waker)
	if !full.Equal(now) {
		t.Fatalf("the waker was not read in full at the tick after it woke (last full read %v before)", now.Sub(full))
	}
	if usage <= wakeUsage+10e6 {
		t.Errorf("the waker's CPU total is %d after it woke, was %d: want 10 ms more", usage, wakeUsage)
	}
	if _, u := r.get(sleeper); u != sleepUsage {
		t.Errorf("the sleeper's CPU total moved from %d to %d", sleepUsage, u)
	}
}

// TestIdleRefresh checks that an idle container is refreshed every
// IdleRefresh ticks, with the probes telling it is idle or without them
// (its CPU total), and not read in full in between; that its
// memory is then what its cgroup says; that it then holds only the files
// a refresh reads; and that it is read in full, its files opened again,
// when it wakes.
//
// With a refresh every tick (idle_refresh equal to the interval, as at
// the default 10 s), an idle container is still only refreshed, never
// read in full.
func TestIdleRefresh(t *testing.T) {
	t.Run("probes", func(t *testing.T) { testIdleRefresh(t, true, 3) })
	t.Run("no probes", func(t *testing.T) { testIdleRefresh(t, false, 3) })
	t.Run("probes, every tick", func(t *testing.T) { testIdleRefresh(t, true, 1) })
}

func testIdleRefresh(t *testing.T, probes bool, every int) {
	prefix := uniq("crmon-refresh")
	r := newActivityRig(t, prefix, every, probes)
	g := truth{t, r.c.h}
	sleeper := dockertest.Run(t, []string{"--name", prefix + "-sleep"}, "sh", "-c",
		`trap 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done' USR1; while :; do sleep 3600 & wait $!; done`)
	r.waitKnown(sleeper)
	for range 5 {
		r.tick()
		time.Sleep(100 * time.Millisecond)
	}
	held := func() (held, files int, ws uint64, cg string) {
		r.c.mu.RLock()
		defer r.c.mu.RUnlock()
		ct := r.c.byID[sleeper]
		return ct.reader.Held(), ct.reader.Files(), ct.stats.Memory.WorkingSet, ct.cgroupPath
	}
	var refreshes []int
	for i := range 4 * every {
		time.Sleep(100 * time.Millisecond)
		now := r.tick()
		r.scrape()
		r.c.mu.RLock()
		ct := r.c.byID[sleeper]
		refreshed, full := ct.refreshedAt.Equal(now), ct.fullAt.Equal(now)
		r.c.mu.RUnlock()
		if full {
			t.Errorf("tick %d: the idle container was read in full", i)
		}
		if refreshed {
			refreshes = append(refreshes, i)
			h, n, ws, cg := held()
			// The kernel charges and uncharges memory in batches of 64
			// pages per CPU (MEMCG_CHARGE_BATCH, drained when it
			// likes), also while nothing runs: that is the precision
			// of a second read.
			if want, tol := g.workingSet(cg), uint64(64*os.Getpagesize()*runtime.NumCPU()); ws > want+tol || want > ws+tol {
				t.Errorf("tick %d: refreshed working set %d, its cgroup says %d (±%d)", i, ws, want, tol)
			}
			if h >= n/2 {
				t.Errorf("tick %d: an idle container holds %d of its %d files after its refresh", i, h, n)
			}
		}
	}
	if len(refreshes) < 3 {
		t.Fatalf("an idle container was refreshed at ticks %v of %d, want every %d", refreshes, 4*every, every)
	}
	for i := 1; i < len(refreshes); i++ {
		if d := refreshes[i] - refreshes[i-1]; d != every {
			t.Errorf("refreshes at ticks %v: %d ticks apart, want %d (the refresh) and none between", refreshes, d, every)
		}
	}
	if refreshes[0] >= every {
		t.Errorf("first refresh at tick %d, want within %d", refreshes[0], every)
	}
	idleHeld, n, _, cg := held()
	t.Logf("idle: %d of %d files held", idleHeld, n)

	idleText := r.scrape()
	before := g.cpuNanos(cg)
	dockertest.Docker(t, "kill", "-s", "USR1", sleeper)
	waitFor(t, 10*time.Second, "the container to compute", func() bool { return g.cpuNanos(cg) > before+10e6 })
	now := r.tick()
	full, usage := r.get(sleeper)
	if !full.Equal(now) {
		t.Fatalf("the container was not read in full at the tick after it woke")
	}
	// The scrape after it woke serves the new total.
	wokeText := r.scrape()
	const cpuFamily = "container_cpu_usage_seconds_total"
	if got, want := textValue(wokeText, cpuFamily, cg), string(collect.AppendValue(nil, float64(usage)/1e9)[1:]); got+"\n" != want || got == textValue(idleText, cpuFamily, cg) {
		t.Errorf("scraped CPU total after it woke %q (before %q), want %q", got, textValue(idleText, cpuFamily, cg), strings.TrimSpace(want))
	}
	if want := g.cpuNanos(cg); usage < before+10e6 || usage > want {
		t.Errorf("CPU total after it woke: %d, want between %d and its cgroup's %d", usage, before+10e6, want)
	}
	// Its counters' files are open again; the settings' are opened
	// when they are read.
	if h, _, _, _ := held(); h <= idleHeld {
		t.Errorf("awake, it holds %d of its %d files, as many as idle", h, n)
	} else {
		t.Logf("awake: %d of %d files held", h, n)
	}
}

// TestIdleNewInterface: an interface that appears in an idle container's
// network namespace is served, with its own label set, from the refresh
// that reads it (an idle tick leaves the label sets alone).
func TestIdleNewInterface(t *testing.T) {
	testenv.RequireRoot(t)
	prefix := uniq("crmon-newif")
	r := newActivityRig(t, prefix, 2, true)
	id := dockertest.Run(t, []string{"--name", prefix + "-sleep"}, "sleep", "3600")
	r.waitKnown(id)
	for range 4 {
		r.tick()
	}
	pid := strings.TrimSpace(dockertest.Docker(t, "inspect", "-f", "{{.State.Pid}}", id))
	// A veth pair inside its namespace: no socket of the container sends
	// or receives anything, so it stays idle.
	if out, err := exec.Command("nsenter", "-t", pid, "-n", "ip", "link", "add", "crmon-a", "type", "veth", "peer", "name", "crmon-b").CombinedOutput(); err != nil {
		t.Fatalf("adding interfaces in the container's namespace: %v: %s", err, out)
	}
	r.c.mu.RLock()
	cg := r.c.byID[id].cgroupPath
	r.c.mu.RUnlock()
	family := "container_network_receive_bytes_total"
	served := func(text string) bool {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, family+"{") && strings.Contains(line, `id="`+cg+`"`) && strings.Contains(line, `interface="crmon-a"`) {
				return true
			}
		}
		return false
	}
	// net/dev of an idle container whose sockets moved nothing is read
	// at most every sixth refresh.
	for i := range 2 * 2 * (cgroups.IdleSkips + 2) {
		r.tick()
		if served(r.scrape()) {
			t.Logf("served %d ticks after it appeared", i+1)
			return
		}
	}
	t.Fatalf("the new interface is not served after %d ticks", 2*2*(cgroups.IdleSkips+2))
}

// TestFoundRunningKeepsNoSecondReader checks that a container crmon finds
// running since longer than the readers for final reads are kept holds one
// set of files, not two: at start, with 1 000 containers, that was 19 000
// descriptors more. One that starts while crmon runs still gets its
// reader kept, for a final read that does not race its removal.
func TestFoundRunningKeepsNoSecondReader(t *testing.T) {
	dockertest.Require(t)
	prefix := uniq("crmon-found")
	const keep = time.Second
	old := dockertest.Run(t, []string{"--name", prefix + "-old"}, "sleep", "600")
	time.Sleep(2 * keep)
	c := newTestCollector(t, Options{Include: []string{prefix + "-*"}, keepReaderFor: keep})
	if c.exits == nil {
		t.Fatal("no exit watcher")
	}
	known := func(id string) func() bool {
		return func() bool {
			c.mu.RLock()
			defer c.mu.RUnlock()
			ct, ok := c.byID[id]
			return ok && ct.exitWD >= 0
		}
	}
	waitFor(t, 10*time.Second, "the running container watched", known(old))
	if n := c.exits.keptFiles(func(id string) bool { return id == old }); n != 0 {
		t.Errorf("a container running for %v before crmon has a second reader kept: %d files", 2*keep, n)
	}
	young := dockertest.Run(t, []string{"--name", prefix + "-young"}, "sleep", "600")
	waitFor(t, 10*time.Second, "the new container watched", known(young))
	waitFor(t, 5*time.Second, "the new container's reader kept", func() bool { return c.exits.keptFiles(func(id string) bool { return id == young }) > 0 })
}

// TestIdleRefreshQuiet checks, with the block and net probes up, that an
// idle container refreshed every tick reads its net/dev once every
// cgroups.IdleSkips+1 refreshes, and that what moves its interfaces
// without its sockets (the port-unreachable replies its kernel sends for
// datagrams to a closed port) is served, equal to its net/dev, at the
// latest that many refreshes later.
func TestIdleRefreshQuiet(t *testing.T) {
	prefix := uniq("crmon-quiet")
	c := newTestCollector(t, Options{Include: []string{prefix + "-*"}, IdleRefresh: 1})
	p, err := probe.New(probe.Options{Sched: true, Block: true, Net: true, Required: true})
	if err != nil {
		testenv.Unavailable(t, "eBPF probes: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	pc := probe.NewCollector(p, probe.CollectorOptions{Lookup: c, RemovedRetention: time.Minute})
	c.SetCgroupCounter(pc.(collect.CgroupCounter))
	r := &activityRig{t: t, c: c, pc: pc}
	id := dockertest.Run(t, []string{"--name", prefix + "-sleep"}, "sleep", "3600")
	r.waitKnown(id)
	for range 5 {
		r.tick()
		time.Sleep(100 * time.Millisecond)
	}
	// tick reports whether the tick refreshed the container and read its
	// net/dev, and the receive packets it serves.
	tick := func() (refreshed, netRead bool, rx uint64, pid int) {
		now := r.tick()
		r.c.mu.RLock()
		defer r.c.mu.RUnlock()
		ct := r.c.byID[id]
		for _, it := range ct.net {
			rx += it.rxPackets
		}
		return ct.refreshedAt.Equal(now), ct.prevNetAt.Equal(now), rx, ct.pid
	}
	every := cgroups.IdleSkips + 1
	var reads []int
	for i := range 3 * every {
		time.Sleep(50 * time.Millisecond)
		refreshed, netRead, _, _ := tick()
		if !refreshed {
			t.Fatalf("tick %d: the idle container was not refreshed", i)
		}
		if netRead {
			reads = append(reads, i)
		}
	}
	if len(reads) < 2 {
		t.Fatalf("net/dev read at ticks %v of %d refreshes: want every %d", reads, 3*every, every)
	}
	for i := 1; i < len(reads); i++ {
		if d := reads[i] - reads[i-1]; d != every {
			t.Errorf("net/dev read at ticks %v: %d refreshes apart, want %d", reads, d, every)
		}
	}

	// Datagrams to a closed port: the container's kernel answers, no
	// socket of it sees them, its interfaces move.
	ip := strings.TrimSpace(dockertest.Docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id))
	_, _, served, pid := tick()
	conn, err := net.Dial("udp", net.JoinHostPort(ip, "9"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 3 {
		conn.Write([]byte("x"))
	}
	truthRx := func() uint64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, it := range parseNetDev(b, nil) {
			n += it.rxPackets
		}
		return n
	}
	waitFor(t, 5*time.Second, "the datagrams to arrive", func() bool { return truthRx() >= served+3 })
	want := truthRx()
	for i := range every {
		_, netRead, rx, _ := tick()
		if !netRead {
			if rx != served {
				t.Fatalf("refresh %d after the datagrams: net/dev not read, yet %d packets served (was %d)", i+1, rx, served)
			}
			continue
		}
		if rx != want {
			t.Errorf("refresh %d after the datagrams: %d packets received served, its net/dev says %d", i+1, rx, want)
		}
		return
	}
	t.Errorf("the datagrams were not served within %d refreshes", every)
}

func TestQuietly(t *testing.T) {
	if !quietly(func(tb testing.TB) { tb.Helper() }) {
		t.Error("a check that passed: quietly says it failed")
	}
	if quietly(func(tb testing.TB) { tb.Errorf("x") }) {
		t.Error("a check that called Errorf: quietly says it passed")
	}
	reached := false
	if quietly(func(tb testing.TB) { tb.Fatalf("x"); reached = true }) || reached {
		t.Errorf("a check that called Fatalf: quietly says it passed, or the check went on (%v)", reached)
	}
}
