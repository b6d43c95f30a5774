// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/userfile"
)

// within runs f and fails the test if it has not returned after d: the
// point of these tests is that a read never hangs.
func within[T any](t *testing.T, d time.Duration, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("still reading after %v", d)
		panic("unreachable")
	}
}

// The config file is read only if it is a regular file, and only up to
// the bound: /dev/zero, a FIFO with no writer and a directory are
// refused at once, naming the path and what it is, and a regular file
// over the bound is refused after reading no more than the bound.
func TestLoadOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte(strings.Repeat("# comment\n", maxDocBytes/10+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		is   error
		want string
	}{
		{"/dev/zero", userfile.ErrNotRegular, "reading config: open /dev/zero: is a character device, not a regular file"},
		{fifo, userfile.ErrNotRegular, "reading config: open " + fifo + ": is a named pipe (FIFO), not a regular file"},
		{dir, userfile.ErrNotRegular, "reading config: open " + dir + ": is a directory, not a regular file"},
		{big, userfile.ErrTooLarge, "reading config: read " + big + ": is longer than 1 MiB, the most crmon reads for it"},
	} {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := within(t, 2*userfile.Timeout, func() error { _, err := Load(c.path); return err })
			runtime.ReadMemStats(&after)
			if !errors.Is(err, c.is) {
				t.Fatalf("Load(%s) = %v, want %v", c.path, err, c.is)
			}
			if err.Error() != c.want {
				t.Errorf("Load(%s) = %q, want %q", c.path, err, c.want)
			}
			// The bound is the document's size plus the read's own
			// slack, not what the file would give.
			if n := after.TotalAlloc - before.TotalAlloc; n > 4*maxDocBytes {
				t.Errorf("Load(%s) allocated %d bytes", c.path, n)
			}
		})
	}
}

// Secret files follow the same rule, and the error names the key and its
// line; the rest of the file is still checked in the same run.
func TestSecretFileOnlyRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "big", strings.Repeat("x", maxSecretBytes+1))
	doc := `[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url_file = "/dev/zero"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url_file = "` + fifo + `"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "am"
type = "alertmanager"
url_file = "` + dir + `"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "mail"
type = "email"
smtp_host = "smtp.example.com"
from = "crmon@example.com"
to = ["oncall@example.com"]
username = "crmon"
password_file = "big"
`
	err := within(t, 2*userfile.Timeout, func() error {
		_, err := Parse("t.toml", []byte(doc), ParseOptions{Dir: dir, LookupEnv: noEnv})
		return err
	})
	want := []string{
		`t.toml:4: webhook_url_file = "/dev/zero": cannot read the secret: is a character device, not a regular file`,
		`t.toml:9: url_file = "` + fifo + `": cannot read the secret: is a named pipe (FIFO), not a regular file`,
		`t.toml:14: url_file = "` + dir + `": cannot read the secret: is a directory, not a regular file`,
		`t.toml:23: password_file = "big": cannot read the secret: is longer than 64 KiB, the most crmon reads for it`,
	}
	if err == nil {
		t.Fatal("Parse = nil error")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse:\n got %q\nwant %q", got, want)
	}
}
