//go:build !linux

package pbsgate

import (
	"errors"
	"net"
)

// peer is the process at the other end of a Unix connection.
type peer struct {
	uid, gid uint32
	pid      int32
}

// peerOf needs SO_PEERCRED, which only Linux has here: the PBS socket
// refuses everyone elsewhere.
func peerOf(*net.UnixConn) (peer, error) {
	return peer{}, errors.New("peer credentials: SO_PEERCRED is Linux only")
}
