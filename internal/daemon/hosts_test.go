package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestStaticHosts(t *testing.T) {
	resolve, err := StaticHosts("cn01=127.0.0.51, CN02=127.0.0.52,dual=127.0.0.60,dual=::1,")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][]netip.Addr{
		"cn01": {netip.MustParseAddr("127.0.0.51")},
		"Cn02": {netip.MustParseAddr("127.0.0.52")},
		"dual": {netip.MustParseAddr("127.0.0.60"), netip.MustParseAddr("::1")},
	} {
		got, err := resolve(context.Background(), host)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("resolve(%s) = %v, %v; want %v", host, got, err, want)
		}
	}
	_, err = resolve(context.Background(), "cn09")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("resolve(cn09) = %v, want not found", err)
	}
	for _, bad := range []string{"cn01", "=127.0.0.1", "cn01=nope", "cn01=10.0.0.1"} {
		if _, err := StaticHosts(bad); err == nil || !strings.Contains(err.Error(), HostsEnv) {
			t.Errorf("StaticHosts(%q) = %v, want an error naming %s", bad, err, HostsEnv)
		}
	}
	t.Setenv(HostsEnv, "")
	if r, err := HostsFromEnv(); err != nil || r == nil {
		t.Errorf("HostsFromEnv with an empty table: nil %v, %v", r == nil, err)
	}
}
