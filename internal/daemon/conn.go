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
	ap, err := addrPortOf(a)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

// addrPortOf is a's IP address (unmapped) and port. A TCP address is read
// as it is, without formatting it to a string and parsing it back, which
// cost four allocations per connection; other kinds go through the string.
func addrPortOf(a net.Addr) (netip.AddrPort, error) {
	if t, ok := a.(*net.TCPAddr); ok && t != nil {
		if ip, ok := netip.AddrFromSlice(t.IP); ok && t.Port >= 0 && t.Port <= 0xffff {
			return netip.AddrPortFrom(ip.WithZone(t.Zone).Unmap(), uint16(t.Port)), nil
		}
	}
	if a == nil {
		return netip.AddrPort{}, fmt.Errorf("no address")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %s: %w", a, err)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// PeerAddrPort returns the peer address of c (zero if not IP), for the
// audit log and the per-source limits.
func PeerAddrPort(c net.Conn) netip.AddrPort {
	ap, err := addrPortOf(c.RemoteAddr())
	if err != nil {
		return netip.AddrPort{}
	}
	return ap
}

// keepAlive is the TCP keep-alive an admitted connection gets: Go's
// defaults for a connection that sets none.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// EnableKeepAlive turns on TCP keep-alive for c, a connection admitted on a
// listener of Base.Listen that stays open for a session, so that a peer
// that vanished is noticed between requests as it was before admission
// went without.
func EnableKeepAlive(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	if err := tc.SetKeepAliveConfig(keepAlive); err != nil {
		return fmt.Errorf("keep-alive: %w", err)
	}
	return nil
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
