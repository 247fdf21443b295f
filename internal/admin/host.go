package admin

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/momgate/momgate/proto"
)

// MaxHostName is the longest host name Mom= takes (RFC 1035: 253
// characters without the root's dot).
const MaxHostName = 253

// ErrNotMom means a Mom= value is neither an IP address nor a host name.
var ErrNotMom = errors.New("not an IPv4 or IPv6 address, nor a host name")

// ParseMom reads the value of Mom= (create node, set node): an IP address
// a node can hold (proto.CheckNodeAddr), returned as addr with host "", or
// a host name (RFC 1123 labels of letters, digits and '-', dot-separated,
// a last label not all digits), returned lower-case as host with no addr;
// the server resolves a host name once, when the directive runs.
func ParseMom(s string) (addr netip.Addr, host string, err error) {
	if a, perr := netip.ParseAddr(s); perr == nil {
		if err := proto.CheckNodeAddr(a); err != nil {
			return netip.Addr{}, "", err
		}
		return a.Unmap(), "", nil
	}
	if err := checkHostName(s); err != nil {
		return netip.Addr{}, "", err
	}
	return netip.Addr{}, strings.ToLower(strings.TrimSuffix(s, ".")), nil
}

// checkHostName checks s is a host name as RFC 1123 section 2.1 writes
// them, optionally ending in the root's '.'.
func checkHostName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(name) > MaxHostName {
		return ErrNotMom
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return ErrNotMom
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return ErrNotMom
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		// "1.2.3" is a mistyped address, not a name (RFC 3696 section 2).
		return fmt.Errorf("%w (its last label %q is all digits: a mistyped IP address?)", ErrNotMom, last)
	}
	return nil
}
