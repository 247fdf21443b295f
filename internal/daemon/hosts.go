package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// HostsEnv is the environment variable that gives momgate-server a fixed
// host table in place of the system's resolver, for the tests of Mom=
// host names: "NAME=ADDR,NAME=ADDR..." (a name given twice has both
// addresses), loopback addresses only, so a test never reads /etc/hosts
// or asks DNS. It is unset in production.
const HostsEnv = "MOMGATE_TEST_HOSTS"

// HostsFromEnv is the resolver HostsEnv describes, for the server's
// Config.Resolve; nil when HostsEnv is unset.
func HostsFromEnv() (func(ctx context.Context, host string) ([]netip.Addr, error), error) {
	spec, ok := os.LookupEnv(HostsEnv)
	if !ok {
		return nil, nil
	}
	return StaticHosts(spec)
}

// StaticHosts parses a HostsEnv table into a resolver over it. Names are
// matched without regard to case; a name not in the table is not found.
func StaticHosts(spec string) (func(ctx context.Context, host string) ([]netip.Addr, error), error) {
	table := map[string][]netip.Addr{}
	for _, entry := range strings.Split(spec, ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		name, addr, ok := strings.Cut(entry, "=")
		a, err := netip.ParseAddr(strings.TrimSpace(addr))
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("%s: %q: want NAME=ADDR", HostsEnv, entry)
		}
		if !a.Unmap().IsLoopback() {
			return nil, fmt.Errorf("%s: %q: a test host table holds loopback addresses only", HostsEnv, entry)
		}
		key := strings.ToLower(strings.TrimSpace(name))
		table[key] = append(table[key], a)
	}
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		addrs, ok := table[strings.ToLower(host)]
		if !ok {
			return nil, &net.DNSError{Err: "no such host (" + HostsEnv + ")", Name: host, IsNotFound: true}
		}
		return addrs, nil
	}, nil
}
