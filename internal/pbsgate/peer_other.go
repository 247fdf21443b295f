//go:build !linux

package pbsgate

import (
	"errors"
	"net"
	"time"
)

// peer is the process at the other end of a Unix connection, and the
// names of its user and group once looked up (gate.names).
type peer struct {
	uid, gid    uint32
	pid         int32
	user, group string
	named       time.Time
}

// peerOf needs SO_PEERCRED, which only Linux has here: the PBS socket
// refuses everyone elsewhere.
func peerOf(*net.UnixConn) (peer, error) {
	return peer{}, errors.New("peer credentials: SO_PEERCRED is Linux only")
}
