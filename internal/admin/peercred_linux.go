//go:build linux

package admin

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest usable socket path (sun_path minus the NUL).
const maxSocketPath = 107

// peerCred reads the credentials of the process connected to c with
// SO_PEERCRED; the kernel recorded them at connect time.
func peerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("peer credentials: SO_PEERCRED: %w", cerr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
