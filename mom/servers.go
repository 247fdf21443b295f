package mom

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The MOM's list of servers (--server s1,s2,s3; docs/HA.md section 7):
// parsing, and matching a redirect's address against the list. Pure: no
// I/O; name resolution is the caller's parameter.

// DefaultServerPort is the port of a --server element given without one
// (the server's default --listen port).
const DefaultServerPort = 15001

// MaxServers bounds the --server list: a group has at most 7 voters, and
// standbys beyond that are rarely worth a MOM's attention.
const MaxServers = 16

// ErrBadServerList means a --server value is not a valid list.
var ErrBadServerList = errors.New("bad server list")

// ParseServers parses a --server value: a comma-separated list of
// HOST[:PORT] (an IPv6 address with a port in brackets, [::1]:15001), each
// element trimmed of spaces. A missing port is DefaultServerPort. It
// returns the elements as HOST:PORT, in the order given (the order the
// MOM tries them), and refuses an empty list, an empty element, a bad
// host or port, a duplicate (after the default port is applied) and a
// list longer than MaxServers, naming the element.
func ParseServers(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("%w: empty: want HOST[:PORT][,HOST[:PORT]...]", ErrBadServerList)
	}
	parts := strings.Split(v, ",")
	if len(parts) > MaxServers {
		return nil, fmt.Errorf("%w: %d servers, at most %d", ErrBadServerList, len(parts), MaxServers)
	}
	out := make([]string, 0, len(parts))
	seen := make(map[string]int, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("%w: element %d of %q is empty (a doubled, leading or trailing comma?)", ErrBadServerList, i+1, v)
		}
		hp, err := parseServer(p)
		if err != nil {
			return nil, fmt.Errorf("%w: element %d: %w", ErrBadServerList, i+1, err)
		}
		key := strings.ToLower(hp)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("%w: element %d (%s) repeats element %d", ErrBadServerList, i+1, hp, j+1)
		}
		seen[key] = i
		out = append(out, hp)
	}
	return out, nil
}

// parseServer parses one HOST[:PORT] element into HOST:PORT.
func parseServer(p string) (string, error) {
	host, port := p, ""
	switch {
	case strings.HasPrefix(p, "["):
		end := strings.Index(p, "]")
		if end < 0 {
			return "", fmt.Errorf("%q: unclosed [", p)
		}
		host = p[1:end]
		rest := p[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return "", fmt.Errorf("%q: want [IPv6]:PORT", p)
			}
			port = rest[1:]
			if port == "" {
				return "", fmt.Errorf("%q: the port after ':' is missing", p)
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", fmt.Errorf("%q: %q in brackets is not an IPv6 address", p, host)
		}
	case strings.Count(p, ":") == 1:
		host, port, _ = strings.Cut(p, ":")
		if port == "" {
			return "", fmt.Errorf("%q: the port after ':' is missing", p)
		}
	case strings.Count(p, ":") > 1:
		// A bare IPv6 address: its port, if any, needs brackets.
		if _, err := netip.ParseAddr(p); err != nil {
			return "", fmt.Errorf("%q: neither HOST:PORT nor an IPv6 address (write an IPv6 address with a port as [ADDR]:PORT)", p)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%q: the host is missing", p)
	}
	if err := checkServerHost(host); err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	n := uint64(DefaultServerPort)
	if port != "" {
		var err error
		if n, err = strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", p, port)
		}
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}

// checkServerHost accepts an IP address or a host name (RFC 1123 labels).
func checkServerHost(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return fmt.Errorf("%s is the wildcard address, not a server", host)
		}
		if a.Zone() != "" {
			return fmt.Errorf("%s: a zoned address is not supported", host)
		}
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is neither an IP address nor a host name", host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q is neither an IP address nor a host name", host)
			}
		}
	}
	return nil
}

// matchServer returns the index in servers (HOST:PORT, as ParseServers
// gives them) of the element that addr is, or -1. An element with an IP
// address matches that address and port; one with a host name matches
// when resolve(host) lists addr's address (resolve may be nil: names then
// never match). This is how a redirect is judged: a leader address
// outside the list is never dialled (docs/HA.md section 7).
func matchServer(servers []string, addr netip.AddrPort, resolve func(host string) []netip.Addr) int {
	if !addr.IsValid() || addr.Port() == 0 || addr.Addr().IsUnspecified() {
		return -1
	}
	want := addr.Addr().Unmap()
	for i, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port != strconv.Itoa(int(addr.Port())) {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Unmap() == want {
				return i
			}
			continue
		}
		if resolve == nil {
			continue
		}
		for _, a := range resolve(host) {
			if a.Unmap() == want {
				return i
			}
		}
	}
	return -1
}
