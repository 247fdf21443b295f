package proto

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrNotNodeAddr means an address is one no node can hold as its own:
// a node sends PINGs from it and receives connections on it.
var ErrNotNodeAddr = errors.New("not an address a node can hold")

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")   // RFC 1122: "this host on this network", source only
	reserved4   = netip.MustParsePrefix("240.0.0.0/4") // RFC 1112 class E, with the limited broadcast 255.255.255.255
	compat6     = netip.MustParsePrefix("::/96")       // RFC 4291 deprecated IPv4-compatible addresses (and ::, ::1)
)

// CheckNodeAddr refuses an address no node can hold (the Mom= of create
// node and set node, a MOM's listen address): the unspecified address,
// the limited broadcast 255.255.255.255 and the rest of 240.0.0.0/4,
// 0.0.0.0/8, multicast, deprecated IPv4-compatible IPv6, and an IPv6 zone
// (a PING names 16 bytes, no zone). Loopback and link-local unicast are
// allowed (a test cluster on one host, an isolated link); a subnet's
// directed broadcast cannot be told without its prefix length.
func CheckNodeAddr(a netip.Addr) error {
	a = a.Unmap()
	why := ""
	switch {
	case !a.IsValid():
		why = "no address"
	case a.Zone() != "":
		why = "an IPv6 zone cannot be named in a PING"
	case a.IsUnspecified():
		why = "the unspecified address (a wildcard)"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "the limited broadcast address"
	case a.IsMulticast():
		why = "a multicast address"
	case a.Is4() && thisNetwork.Contains(a):
		why = "in 0.0.0.0/8, which is never a destination"
	case a.Is4() && reserved4.Contains(a):
		why = "in the reserved 240.0.0.0/4"
	case a.Is6() && compat6.Contains(a) && !a.IsLoopback():
		why = "a deprecated IPv4-compatible IPv6 address"
	default:
		return nil
	}
	return fmt.Errorf("%s: %w: %s", a, ErrNotNodeAddr, why)
}
