// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package control is the agent's control socket: a unix socket whose
// connections carry the kernel's word on who is asking (SO_PEERCRED), so
// that the session API can tie each session to the user and the process
// that started it. No client can forge those credentials, which no HTTP
// header or TCP port on a shared host can promise.
package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a control connection, as the
// kernel recorded it when the process connected.
type Peer struct {
	// PID is 0 when the process is not visible in the agent's PID
	// namespace.
	PID int
	UID uint32
	GID uint32
	// conn is the connection the peer came on, when there is one.
	conn *net.UnixConn
}

// Root reports whether the peer is root, who may act on every session.
func (p Peer) Root() bool { return p.UID == 0 }

type peerKey struct{}

// OpenPidfd returns a pidfd of the peer process, for the caller to close.
// On a connection it asks the socket (SO_PEERPIDFD, Linux 6.5), which names
// the very process that connected even if it has exited and its pid been
// reused since; elsewhere it opens the pid.
func (p Peer) OpenPidfd() (int, error) {
	if p.conn != nil {
		if raw, err := p.conn.SyscallConn(); err == nil {
			fd, gerr := -1, error(nil)
			if err := raw.Control(func(s uintptr) {
				fd, gerr = unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
			}); err == nil && gerr == nil {
				return fd, nil
			}
		}
	}
	if p.PID <= 0 {
		return -1, errors.New("the process is not visible in the agent's PID namespace")
	}
	return unix.PidfdOpen(p.PID, 0)
}

// WithPeer returns ctx carrying p.
func WithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer of the connection a request came on; false for
// a request that did not come through the control socket.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// ConnContext is an http.Server ConnContext that records a unix
// connection's peer credentials in the connection's context. Connections
// whose credentials cannot be read carry none, and the session API refuses
// them.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p, err := PeerOf(c)
	if err != nil {
		return ctx
	}
	return WithPeer(ctx, p)
}

// PeerOf reads the peer credentials of a unix connection.
func PeerOf(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("reading peer credentials: %w", cerr)
	}
	return Peer{PID: int(cred.Pid), UID: cred.Uid, GID: cred.Gid, conn: uc}, nil
}

// LookupGroup resolves a group given by name or number; "" is root's
// group.
func LookupGroup(g string) (int, error) {
	if g == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("socket group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// Listener is the control socket. Closing it removes the socket file, if
// it is still the one it made.
type Listener struct {
	*net.UnixListener
	path string
	ino  uint64
}

// dialTimeout bounds the check for an agent already serving the path.
const dialTimeout = time.Second

// Listen makes the control socket at path, mode 0660, owned by root and
// group gid, in a directory it creates root-owned with mode 0755. The
// socket appears under its name only once its mode and owner are set, so
// no one can connect in between. A socket left by an agent that died is
// replaced; one that answers belongs to a running agent and is an error.
func Listen(path string, gid int) (l *Listener, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("control socket: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, dialTimeout); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket: another agent is serving %s", path)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".crmon-")
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	if err := os.Chown(p, 0, gid); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(p, 0o660); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(p, path); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Listener{UnixListener: ln, path: path, ino: st.Ino}, nil
}

// Path is where the socket is.
func (l *Listener) Path() string { return l.path }

// Close stops listening and removes the socket file unless another agent
// has replaced it since.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	var st unix.Stat_t
	if unix.Lstat(l.path, &st) == nil && st.Ino == l.ino {
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EINVAL) {
		err = nil
	}
	return err
}
