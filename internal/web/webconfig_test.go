// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crmon-dev/crmon/internal/userfile"
)

func TestCheckConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	write("cert.pem", "not checked here")
	write("key.pem", "not checked here")
	ok := write("ok.yml", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n")
	auth := write("auth.yml", "basic_auth_users:\n  u: $2y$10$abc\n")
	zeroKey := write("zero-key.yml", "tls_server_config:\n  cert_file: cert.pem\n  key_file: /dev/zero\n")
	fifoCA := write("fifo-ca.yml", "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: fifo\n")
	big := write("big.yml", "# "+strings.Repeat("x", maxWebFileBytes)+"\n")

	for _, c := range []struct {
		path string
		is   error
		want string
	}{
		{"", nil, ""},
		{ok, nil, ""},
		{auth, nil, ""},
		{"/dev/zero", userfile.ErrNotRegular, "--web.config.file: open /dev/zero: is a character device, not a regular file"},
		{fifo, userfile.ErrNotRegular, "--web.config.file: open " + fifo + ": is a named pipe (FIFO), not a regular file"},
		{dir, userfile.ErrNotRegular, "--web.config.file: open " + dir + ": is a directory, not a regular file"},
		{big, userfile.ErrTooLarge, "--web.config.file: read " + big + ": is longer than 1 MiB, the most crmon reads for it"},
		{zeroKey, userfile.ErrNotRegular, "--web.config.file " + zeroKey + ": key_file: open /dev/zero: is a character device, not a regular file"},
		{fifoCA, userfile.ErrNotRegular, "--web.config.file " + fifoCA + ": client_ca_file: open " + fifo + ": is a named pipe (FIFO), not a regular file"},
	} {
		err := CheckConfigFile(c.path)
		if c.is == nil {
			if err != nil {
				t.Errorf("CheckConfigFile(%q) = %v", c.path, err)
			}
			continue
		}
		if !errors.Is(err, c.is) || err.Error() != c.want {
			t.Errorf("CheckConfigFile(%q) = %v, want %q", c.path, err, c.want)
		}
	}
}
