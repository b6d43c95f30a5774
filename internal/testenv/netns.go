// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Netns is a network namespace of a test's own, held by a thread that
// stays in it; it goes when the test ends. IPv6 is off in it, so that
// only the test moves its devices' counters. Nothing of it outlives the
// test: no bind mount, no name in /run/netns.
type Netns struct {
	// Path is the namespace's file, for Open-like calls and nsenter.
	Path string
	do   chan func()
}

// NewNetns makes a network namespace for the test. It needs root.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	RequireRoot(t)
	n := &Netns{do: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace: when this goroutine
		// ends locked, the runtime ends the thread with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- err
			return
		}
		n.Path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		// No IPv6: a device that comes up sends router solicitations
		// and listener reports on its own, seconds later, and the
		// tests want counters that only they move. /proc/sys/net is
		// the opening thread's namespace's.
		for _, c := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + c + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0); err != nil && !os.IsNotExist(err) {
				ready <- err
				return
			}
		}
		ready <- nil
		for f := range n.do {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("making a network namespace: %v", err)
	}
	t.Cleanup(func() { close(n.do) })
	return n
}

// Do runs f on the namespace's thread: sockets it makes are the
// namespace's.
func (n *Netns) Do(f func()) {
	done := make(chan struct{})
	n.do <- func() { defer close(done); f() }
	<-done
}

// ProcNetDev returns the namespace's /proc/net/dev.
func (n *Netns) ProcNetDev(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(n.Path[:len(n.Path)-len("ns/net")] + "net/dev")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// IP runs ip(8) with args in the namespace, and fails the test if it
// fails.
func (n *Netns) IP(t testing.TB, args ...string) {
	t.Helper()
	RequireCommand(t, "nsenter")
	RequireCommand(t, "ip")
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.Path, "ip"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// Veths adds n veth pairs, named prefix+"a"+i and prefix+"b"+i, up.
func (n *Netns) Veths(t testing.TB, prefix string, count int) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "ip-batch")
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		fmt.Fprintf(f, "link add %sa%d type veth peer name %sb%d\n", prefix, i, prefix, i)
		fmt.Fprintf(f, "link set %sa%d up\nlink set %sb%d up\n", prefix, i, prefix, i)
	}
	f.Close()
	n.IP(t, "-batch", f.Name())
}
