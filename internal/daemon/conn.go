package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Endpoints returns the remote and local addresses of conn as proto.Addr,
// the two addresses the handshakes check PINGs against.
func Endpoints(conn net.Conn) (remote, local proto.Addr, err error) {
	r, err1 := addrOf(conn.RemoteAddr())
	l, err2 := addrOf(conn.LocalAddr())
	if err := errors.Join(err1, err2); err != nil {
		return remote, local, err
	}
	return proto.AddrFrom(r), proto.AddrFrom(l), nil
}

func addrOf(a net.Addr) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %s: %w", a, err)
	}
	return ap.Addr().Unmap(), nil
}

// PeerAddrPort returns the peer address of c (zero if not IP), for the
// audit log and the per-source limits.
func PeerAddrPort(c net.Conn) netip.AddrPort {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// InitiateSwap runs the initiator's PING swap (handshake.Initiate) on
// conn, the whole exchange bounded by deadline.
func InitiateSwap(conn net.Conn, s *ping.Sealer, v *ping.Verifier, deadline time.Time, res *ping.Result) error {
	remote, local, err := Endpoints(conn)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	defer conn.SetDeadline(time.Time{})
	return handshake.Initiate(conn, remote, local, s, v, res)
}
