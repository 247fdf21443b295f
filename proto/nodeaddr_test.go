package proto

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckNodeAddr(t *testing.T) {
	for _, s := range []string{"10.0.1.17", "127.0.0.2", "192.168.255.255", "169.254.3.4", "fd00::7", "::1", "2001:db8::1", "fe80::1", "::ffff:10.0.0.1", "223.255.255.254"} {
		if err := CheckNodeAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
	for _, s := range []string{"255.255.255.255", "::ffff:255.255.255.255", "0.0.0.0", "::", "0.1.2.3", "224.0.0.1", "239.255.255.250",
		"240.0.0.1", "ff02::1", "ff05::2", "::10.0.0.1", "fe80::1%eth0"} {
		err := CheckNodeAddr(netip.MustParseAddr(s))
		if !errors.Is(err, ErrNotNodeAddr) {
			t.Errorf("%s accepted: %v", s, err)
		}
	}
	if err := CheckNodeAddr(netip.Addr{}); !errors.Is(err, ErrNotNodeAddr) {
		t.Error("the zero Addr accepted")
	}
}
