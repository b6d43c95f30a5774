// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package userfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestAppend: each Append adds to the end of the file and keeps what
// was there; a missing file is created.
func TestAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "summary.md")
	for _, s := range []string{"one\n", "two\n"} {
		if err := Append(p, writeString(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readString(t, p); got != "one\ntwo\n" {
		t.Errorf("file holds %q", got)
	}
}

// TestAppendRefuses: not to a FIFO (at once, without waiting for a
// reader), a device, or through another user's link in /tmp.
func TestAppendRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fifo, "/dev/null", dir} {
		if err := Append(name, writeString("x")); err == nil {
			t.Errorf("Append(%s) succeeded", name)
		}
	}
	testenv.RequireRoot(t)
	secret := filepath.Join(t.TempDir(), "important")
	if err := os.WriteFile(secret, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(stickyDir(t), "summary.md")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := Append(link, writeString("pwned")); err == nil || !strings.Contains(err.Error(), "refusing to follow") {
		t.Errorf("Append through another user's link: %v", err)
	}
	if got := readString(t, secret); got != "keep me" {
		t.Errorf("the link's target was written: %q", got)
	}
}
