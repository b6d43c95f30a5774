// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is the agent's control socket unless its configuration
// says otherwise.
const DefaultSocket = "/run/crmon/crmon.sock"

// SocketPath returns the socket path of a "unix://PATH" or "/PATH"
// address, and false for an HTTP URL.
func SocketPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p, true
	}
	if strings.HasPrefix(addr, "/") {
		return addr, true
	}
	return "", false
}

// CheckSocket verifies that the socket at path can only be the root
// agent's: the socket is owned by root, and so is every directory from its
// own up to /, none of them writable by group or others unless sticky
// (where no one but root may rename or remove root's entries). A local
// user can then neither have made it nor swapped it.
func CheckSocket(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("control socket %s: want an absolute path", path)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("control socket %s: not a socket", path)
	}
	if st.Uid != 0 {
		return fmt.Errorf("control socket %s: owned by uid %d, not root; it is not the crmon agent's", path, st.Uid)
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if err := unix.Lstat(dir, &st); err != nil {
			return fmt.Errorf("control socket %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("control socket %s: %s is not a directory", path, dir)
		}
		if st.Uid != 0 {
			return fmt.Errorf("control socket %s: directory %s is owned by uid %d, not root; the socket could be anyone's", path, dir, st.Uid)
		}
		if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("control socket %s: directory %s is writable by others; the socket could be anyone's", path, dir)
		}
		if dir == "/" {
			return nil
		}
	}
}

// unixTransport reaches the agent on its control socket, and only if the
// socket passes CheckSocket and the process listening on it is root.
func unixTransport(path string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if err := CheckSocket(path); err != nil {
				return nil, err
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, err
			}
			if err := rootPeer(c); err != nil {
				c.Close()
				return nil, fmt.Errorf("control socket %s: %w", path, err)
			}
			return c, nil
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// rootPeer checks that the process that listens on c's socket is root.
func rootPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("reading the agent's credentials: %w", cerr)
	}
	if cred.Uid != 0 {
		return fmt.Errorf("served by uid %d, not root; it is not the crmon agent", cred.Uid)
	}
	return nil
}

// AgentClient returns a client and the base URL for requests to the agent
// at addr: for a control socket ("unix://PATH" or "/PATH"), a client that
// dials it only if it passes CheckSocket and root listens on it; for an
// HTTP URL, http.DefaultClient and addr.
func AgentClient(addr string) (*http.Client, string) {
	if p, ok := SocketPath(addr); ok {
		return &http.Client{Transport: unixTransport(p), Timeout: 30 * time.Second}, "http://localhost"
	}
	return http.DefaultClient, strings.TrimRight(addr, "/")
}
