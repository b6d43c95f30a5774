// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// The agent that TestQueueSurvivesKill kills is this test binary run
// again as TestHelperExporterProcess, with these variables set.
const (
	childDir      = "CRMON_EXPORT_CHILD_DIR"      // the queues' directory and the served files
	childEndpoint = "CRMON_EXPORT_CHILD_ENDPOINT" // the remote-write URL
	childTicks    = "CRMON_EXPORT_CHILD_TICKS"    // set: tick that often, deliver everything, stop
	childType     = "CRMON_EXPORT_CHILD_TYPE"     // the exporter_type
	killHost      = "kill-host"
	killInterval  = 200 * time.Millisecond
)

// servedLine is one tick as the child's own recorder wrote it: what the
// agent served, series → value, at ms.
type servedLine struct {
	MS     int64              `json:"ms"`
	Values map[string]float64 `json:"values"`
}

// TestHelperExporterProcess is not a test of its own: it is the agent
// that TestQueueSurvivesKill runs and kills, a stepper ticking every
// 200 ms with an exporter whose queue is on disk, and a
// recorder of its own that writes what each tick served to a file.
func TestHelperExporterProcess(t *testing.T) {
	dir := os.Getenv(childDir)
	if dir == "" {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := agent.New([]collect.Collector{newStepper()}, killInterval, log)
	a.SetExtra(nil)
	c := exporterConfig("out", os.Getenv(childType), os.Getenv(childEndpoint))
	c.RemoteWriteVersion = config.RemoteWrite1
	c.Database, c.Precision = "crmon", "ms"
	// Batches of several ticks: Prometheus refuses one sent again whole.
	c.FlushInterval = config.Duration(time.Second)
	set, err := Start(a, []config.Exporter{c}, Options{Hostname: killHost, QueueDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := set.exporters[0]
	dq, ok := e.q.(*diskQueue)
	if !ok {
		t.Fatal("the queue is not on disk")
	}
	dq.mu.Lock()
	end0 := dq.end // after what the last run left
	dq.mu.Unlock()
	var recordedPts atomic.Uint64
	out, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("served-%d.jsonl", os.Getpid())), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sub := a.Subscribe("test-recorder", 1000)
	var ticks sync.WaitGroup
	recorded := make(chan struct{}, 1000)
	ticks.Go(func() {
		in := newInterner(nil)
		for s := range sub.C() {
			src, err := a.Points(s)
			if err != nil {
				fmt.Fprintln(os.Stderr, "recorder:", err)
				os.Exit(3)
			}
			l := servedLine{MS: s.Time.UnixMilli(), Values: map[string]float64{}}
			for _, p := range in.points(src) {
				l.Values[seriesID(p.s.key, e.labels)] = p.v
			}
			b, _ := json.Marshal(l)
			// One write a line: a kill leaves whole lines.
			if _, err := out.Write(append(b, '\n')); err != nil {
				fmt.Fprintln(os.Stderr, "recorder:", err)
				os.Exit(3)
			}
			recordedPts.Add(uint64(len(l.Values)))
			recorded <- struct{}{}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	n, _ := strconv.Atoi(os.Getenv(childTicks))
	if n == 0 {
		select {} // until killed
	}
	for range n {
		<-recorded
	}
	cancel()
	<-ran
	sub.Close()
	ticks.Wait()
	// Until the exporter's intake has queued every tick the recorder saw
	// (its subscription may be a tick behind the recorder's) and the
	// sender has delivered them all.
	pushed := func() bool {
		dq.mu.Lock()
		defer dq.mu.Unlock()
		return dq.end-end0 >= recordedPts.Load()
	}
	deadline := time.Now().Add(60 * time.Second)
	for (!pushed() || e.q.len() > 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	set.Close()
	fmt.Fprintf(os.Stderr, "child: %s\n", e.counts())
	if e.q.len() != 0 || e.failed.Load() != 0 || e.q.droppedTotal()+e.superseded.Load() != 0 {
		os.Exit(4)
	}
}

// child is one run of the agent under test.
type child struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func startChild(t *testing.T, dir, typ, endpoint string, ticks int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperExporterProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childDir+"="+dir, childEndpoint+"="+endpoint, childType+"="+typ)
	if ticks > 0 {
		cmd.Env = append(cmd.Env, childTicks+"="+strconv.Itoa(ticks))
	}
	c := &child{cmd: cmd, out: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = syncWriter{c.out, &sync.Mutex{}}, syncWriter{c.out, &sync.Mutex{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return c
}

type syncWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// readServed reads the children's served files: series → ms → value, and
// the ticks' times, by file.
func readServed(t *testing.T, dir string) (values map[string]map[int64]float64, ticks map[string][]int64) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "served-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	values, ticks = map[string]map[int64]float64{}, map[string][]int64{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var l servedLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				break // a line the kill cut short
			}
			ticks[f] = append(ticks[f], l.MS)
			for id, v := range l.Values {
				if values[id] == nil {
					values[id] = map[int64]float64{}
				}
				values[id][l.MS] = v
			}
		}
	}
	return values, ticks
}

// queuedTicks are the times (ms) of the ticks in the queue's segments in
// dir, read as they are being written: a record cut short ends a segment.
func queuedTicks(t *testing.T, dir string) map[int64]bool {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	var r segReader
	defer r.close()
	for _, path := range segs {
		st, err := os.Stat(path)
		if err != nil || r.open(path, 0) != nil {
			continue // delivered and deleted meanwhile
		}
		for {
			tk, err := r.next(st.Size(), nil)
			if err != nil || tk == nil {
				break
			}
			got[tk.t.UnixMilli()] = true
		}
	}
	return got
}

// TestQueueSurvivesKill: an agent whose receiver (Debian's Prometheus) is
// down queues its ticks on disk and is killed with SIGKILL in the middle
// of its work; the receiver comes back, the agent starts again on the same
// queue and ticks on. Prometheus then holds every sample of every tick
// served before the kill (all of them were on disk when it came, but for
// a tick served in the moment between that check and the kill) and after
// the restart, each series in timestamp order, and the restarted agent
// failed and dropped nothing. The same with the receiver up, the agent
// killed while it delivers: the batch it was sending is sent again first,
// and taken or refused as one already held, never counted as failed. And
// the same with Debian's InfluxDB, which the restarted agent finds at
// another address (testenv starts it on a port of its own), read back
// through /query.
func TestQueueSurvivesKill(t *testing.T) {
	for _, up := range []bool{false, true} {
		t.Run("Prometheus, receiver "+map[bool]string{false: "down", true: "up"}[up], func(t *testing.T) {
			prom := testenv.StartPrometheus(t)
			if !up {
				prom.Stop()
			}
			killAndRestart(t, config.ExporterPrometheus, prom.WriteURL(), func() (string, func() map[string]map[int64]float64) {
				if !up {
					prom.Start()
				}
				return prom.WriteURL(), func() map[string]map[int64]float64 { return promSamples(t, prom.Addr, killHost) }
			})
		})
	}
	t.Run("InfluxDB, receiver down", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + l.Addr().String()
		l.Close()
		killAndRestart(t, config.ExporterInfluxDB, down, func() (string, func() map[string]map[int64]float64) {
			addr := testenv.InfluxDB(t, "crmon")
			return "http://" + addr, func() map[string]map[int64]float64 { return influxSamples(t, addr, "crmon", killHost) }
		})
	})
}

// killAndRestart runs the agent with an exporter of typ to endpoint,
// kills it, calls restart for the endpoint of its second run and what
// reads the receiver back, and checks that the receiver has what the
// agent served.
func killAndRestart(t *testing.T, typ, endpoint string, restart func() (string, func() map[string]map[int64]float64)) {
	dir := t.TempDir()
	first := startChild(t, dir, typ, endpoint, 0)
	qdir := filepath.Join(dir, queueDirName("out"))
	var recorded []int64
	waitFor(t, 30*time.Second, "15 ticks served and queued on disk", func() string { return first.out.String() }, func() bool {
		_, ticks := readServed(t, dir)
		for _, ts := range ticks {
			recorded = ts
		}
		if len(recorded) < 15 {
			return false
		}
		onDisk := queuedTicks(t, qdir)
		for _, ms := range recorded {
			if !onDisk[ms] {
				return false
			}
		}
		return true
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := first.cmd.Wait()
	if ws, ok := first.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first run ended with %v, not by SIGKILL:\n%s", err, first.out)
	}
	_, ticks := readServed(t, dir)
	var killed []int64
	for _, ts := range ticks {
		killed = ts
	}
	t.Logf("killed after %d ticks served (%d checked on disk)", len(killed), len(recorded))

	endpoint, readBack := restart()
	second := startChild(t, dir, typ, endpoint, 10)
	done := make(chan error, 1)
	go func() { done <- second.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the second run: %v\n%s", err, second.out)
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("the second run did not deliver everything within 2 minutes:\n%s", second.out)
	}
	if !strings.Contains(second.out.String(), "sending what the exporter's queue on disk kept from the last run") {
		t.Errorf("the second run did not find the queue the first left:\n%s", second.out)
	}

	want, _ := readServed(t, dir)
	got := readBack() // Prometheus': checks each series' order
	lost := map[int64]bool{}
	n := 0
	for id, ws := range want {
		for ms, v := range ws {
			g, ok := got[id][ms]
			switch {
			case !ok:
				lost[ms] = true
			case g != v:
				t.Errorf("%s at %d: %v in Prometheus, served %v", id, ms, g, v)
			default:
				n++
			}
		}
	}
	// A tick served after the check and before the kill may be lost: it
	// was the first run's last.
	for ms := range lost {
		if ms != killed[len(killed)-1] || slices.Contains(recorded, ms) {
			t.Errorf("the samples of the tick at %d are missing (the first run's ticks: %v…%v; checked on disk to %v)",
				ms, killed[0], killed[len(killed)-1], recorded[len(recorded)-1])
		}
	}
	t.Logf("%d samples read back from the receiver; %d ticks lost at the kill; the batch on its way at the kill was refused as held already: %v", n, len(lost),
		strings.Contains(second.out.String(), "which it had received then"))
	if n == 0 {
		t.Fatal("nothing read back")
	}
}
