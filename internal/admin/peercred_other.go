//go:build !linux

package admin

import (
	"fmt"
	"net"
	"runtime"
)

// maxSocketPath is the longest portable socket path (BSD sun_path is 104).
const maxSocketPath = 103

// peerCred fails closed where SO_PEERCRED is not available: every
// connection is refused.
func peerCred(*net.UnixConn) (Peer, error) {
	return Peer{}, fmt.Errorf("peer credentials: SO_PEERCRED is not supported on %s", runtime.GOOS)
}
