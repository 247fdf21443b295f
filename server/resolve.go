package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// Mom= takes an IP address or a host name. A name is resolved once, when
// create node or set node runs, and the node keeps the one address it
// got (shown beside the name): PINGs name addresses, and a node's address
// changes only by set node, which rotates the key.

// Resolver returns the addresses of a host name; Config.Resolve.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// ResolveTimeout bounds the resolution of a Mom= host name.
const ResolveTimeout = 5 * time.Second

// systemResolver resolves through the system's resolver (/etc/hosts,
// DNS, as nsswitch.conf says).
func systemResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// momAddr reads a Mom= value: an address as it is, a host name resolved
// to the one address it must have. The host is "" for an address. A name
// that resolves to no address, to several, or to one no node can hold is
// refused, saying what it resolved to.
func (s *Server) momAddr(ctx context.Context, value string) (netip.Addr, string, error) {
	addr, host, err := admin.ParseMom(strings.TrimSpace(value))
	if err != nil {
		return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%q: %v", value, err)
	}
	if host == "" {
		if err := s.checkNotServer(addr, value); err != nil {
			return netip.Addr{}, "", err
		}
		return addr, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	got, err := s.cfg.Resolve(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &dnsErr) && dnsErr.IsTimeout:
			return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%s: no answer from the resolver within %s; give Mom=ADDR", host, ResolveTimeout)
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%s: no such host", host)
		}
		return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%s: cannot resolve: %v", host, err)
	}
	uniq := make([]netip.Addr, 0, len(got))
	for _, a := range got {
		if a = a.Unmap(); !slices.Contains(uniq, a) {
			uniq = append(uniq, a)
		}
	}
	switch len(uniq) {
	case 0:
		return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%s: resolves to no address", host)
	case 1:
	default:
		slices.SortFunc(uniq, netip.Addr.Compare)
		list := make([]string, len(uniq))
		for i, a := range uniq {
			list[i] = a.String()
		}
		return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue,
			"Mom=%s resolves to %d addresses (%s): a node has exactly one; give it as Mom=ADDR, or a name with one address",
			host, len(uniq), strings.Join(list, ", "))
	}
	if err := proto.CheckNodeAddr(uniq[0]); err != nil {
		return netip.Addr{}, "", admin.Errorf(admin.CodeBadValue, "Mom=%s resolves to %v", host, err)
	}
	if err := s.checkNotServer(uniq[0], host+" (resolved to "+uniq[0].String()+")"); err != nil {
		return netip.Addr{}, "", err
	}
	return uniq[0], host, nil
}

// checkNotServer refuses a node address that is the one the server's
// control listener is bound to: PINGs name their sender and destination
// by address, and the server's name its own, so a node there could not
// be told from the server (and a deny of it would name the server). A
// listener bound to every address (0.0.0.0, ::) names none: nothing is
// refused then (docs/DEPLOYMENT.md: bind the server to its address).
func (s *Server) checkNotServer(a netip.Addr, value string) error {
	ap, err := netip.ParseAddrPort(s.cfg.Listen)
	if err != nil || ap.Addr().IsUnspecified() || ap.Addr().Unmap() != a.Unmap() {
		return nil
	}
	return admin.Errorf(admin.CodeBadValue, "Mom=%s: %s is the server's own address (--listen %s): %v: a node cannot hold it",
		value, a, s.cfg.Listen, proto.ErrNotNodeAddr)
}
