// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// churn is a sample at t0+at with n containers, each above the rule's
// threshold in every other sample, shifted by one for odd containers:
// half the instances start and half end at every sample.
func churn(at time.Duration, n int) *metrics.ResourceMetrics {
	m := host(at, 0)
	k := int(at / time.Second)
	for i := range n {
		v := 10.0
		if (i+k)%2 == 0 {
			v = 90
		}
		id := fmt.Sprintf("%064x", i)
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: id, ContainerName: fmt.Sprintf("ct-%d", i), Image: "img", State: "running",
			CgroupPath: "/docker/" + id, CPUUsagePercent: v,
		})
	}
	return m
}

// stateWrites counts the state file's writes: each is a rename into the
// directory, which inotify reports.
type stateWrites struct{ fd int }

func watchStateWrites(t *testing.T, dir string) *stateWrites {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	return &stateWrites{fd: fd}
}

// count returns the writes of name since the last count.
func (w *stateWrites) count(t *testing.T, name string) int {
	t.Helper()
	n := 0
	buf := make([]byte, 64<<10)
	for {
		m, err := unix.Read(w.fd, buf)
		if err == unix.EAGAIN {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflowed")
			}
			file := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			// The file is replaced whole by a rename (or written in
			// place); either is one write.
			if file == name {
				n++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// TestStateWritesCoalesced churns 400 container alert instances, half of
// them starting and half resolving at every one-second sample for two
// minutes: the state changes 120 times, the file is written at most once
// per StateWriteInterval (13 times), and Flush, as at a stop, writes the
// last state, which a restart then restores.
func TestStateWritesCoalesced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.json")
	writes := watchStateWrites(t, dir)
	rule := Rule{Name: "Busy", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 50, Severity: "warning"}
	e := New([]Rule{rule}, Options{StatePath: path, StateWriteInterval: 10 * time.Second})
	const samples, n = 120, 400
	var notified int
	for s := range samples {
		notified += len(e.Eval(churn(time.Duration(s)*time.Second, n)))
	}
	got := writes.count(t, "alerts.json")
	t.Logf("%d samples, %d notifications, %d writes", samples, notified, got)
	if notified < samples*n/2 {
		t.Fatalf("%d notifications: the churn did not churn", notified)
	}
	if max := samples/10 + 1; got < 2 || got > max {
		t.Errorf("%d writes of the state file over %d s of churn, want 2 to %d (one per 10 s)", got, samples, max)
	}

	// The last samples' changes are not written yet; a stop writes them.
	e.Flush()
	if got := writes.count(t, "alerts.json"); got != 1 {
		t.Errorf("Flush wrote %d times, want 1", got)
	}
	e.Flush()
	if got := writes.count(t, "alerts.json"); got != 0 {
		t.Errorf("Flush with nothing changed wrote %d times, want 0", got)
	}
	want := e.Alerts()
	restored := New([]Rule{rule}, Options{StatePath: path}).Alerts()
	if len(restored) != len(want) || len(want) != n/2 {
		t.Fatalf("restored %d instances, the engine held %d (want %d)", len(restored), len(want), n/2)
	}
	for i := range want {
		if want[i].Fingerprint() != restored[i].Fingerprint() || want[i].State != restored[i].State {
			t.Errorf("restored %+v, want %+v", restored[i], want[i])
		}
	}
}

// TestStateFileBounded: a state too large for MaxStateBytes keeps the
// firing instances first, stays within the bound, loads, and says what it
// left out.
func TestStateFileBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.json")
	var logs logBuffer
	const limit = 16 << 10
	rule := Rule{Name: "Busy", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 50, Severity: "warning"}
	slow := Rule{Name: "Slow", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 50, Severity: "info", For: time.Hour}
	e := New([]Rule{rule, slow}, Options{StatePath: path, MaxStateBytes: limit, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	m := churn(0, 200)
	for i := range m.Containers.ContainerDetails {
		m.Containers.ContainerDetails[i].CPUUsagePercent = 90
	}
	e.Eval(m) // 200 firing (Busy), 200 pending (Slow)
	e.Flush()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatalf("state file is not JSON: %v", err)
	}
	if len(b) > limit {
		t.Errorf("state file is %d bytes, over its bound of %d", len(b), limit)
	}
	if len(sf.Instances) == 0 || len(sf.Instances) >= 400 {
		t.Fatalf("%d instances kept of 400 in %d bytes", len(sf.Instances), len(b))
	}
	for _, si := range sf.Instances {
		if si.Alert.State != StateFiring {
			t.Errorf("kept a pending instance (%s) while firing ones were left out", si.Alert.Name)
			break
		}
	}
	if l := logs.String(); !strings.Contains(l, "alert state file full") || !strings.Contains(l, fmt.Sprintf("left_out=%d", 400-len(sf.Instances))) {
		t.Errorf("log does not say what was left out:\n%s", l)
	}
	if a := New([]Rule{rule, slow}, Options{StatePath: path}).Alerts(); len(a) != len(sf.Instances) {
		t.Errorf("restored %d instances from a file of %d", len(a), len(sf.Instances))
	}
}
