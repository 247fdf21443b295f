//go:build linux

package pbsgate

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// peer is the process at the other end of a Unix connection, and the
// names of its user and group once looked up (gate.names).
type peer struct {
	uid, gid    uint32
	pid         int32
	user, group string
	named       time.Time
}

func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return peer{}, fmt.Errorf("peer credentials: SO_PEERCRED: %w", cerr)
	}
	return peer{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid}, nil
}
