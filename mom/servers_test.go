package mom

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/tools/fuzzcorpus"
)

func TestParseServers(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"127.0.0.1:15001", []string{"127.0.0.1:15001"}}, // today's single value, unchanged
		{"server.example:2000", []string{"server.example:2000"}},
		{"10.0.0.1", []string{"10.0.0.1:15001"}},
		{"s1,s2:16001,s3", []string{"s1:15001", "s2:16001", "s3:15001"}},
		{" s1 , s2 ", []string{"s1:15001", "s2:15001"}},
		{"[::1]:2000,::2,[fd00::3]", []string{"[::1]:2000", "[::2]:15001", "[fd00::3]:15001"}},
		{"a_b.example:1", []string{"a_b.example:1"}},
		{"s1:65535", []string{"s1:65535"}},
	}
	for _, tt := range good {
		got, err := ParseServers(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseServers(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"  ", "empty"},
		{"s1,,s2", "element 2 of \"s1,,s2\" is empty"},
		{"s1,", "element 2 of \"s1,\" is empty"},
		{",s1", "element 1 of \",s1\" is empty"},
		{"s1, ,s2", "element 2"},
		{"s1:0", "port \"0\" is not a number from 1 to 65535"},
		{"s1:65536", "port \"65536\""},
		{"s1:http", "port \"http\""},
		{"s1:", "the port after ':' is missing"},
		{":15001", "the host is missing"},
		{"[::1]:", "the port after ':' is missing"},
		{"[::1", "unclosed ["},
		{"[::1]x", "want [IPv6]:PORT"},
		{"[10.0.0.1]:1", "is not an IPv6 address"},
		{"fd00::1::2", "neither HOST:PORT nor an IPv6 address"},
		{"0.0.0.0:15001", "wildcard"},
		{"[::]:15001", "wildcard"},
		{"bad host:1", "neither an IP address nor a host name"},
		{"-s1:1", "neither an IP address nor a host name"},
		{"s1..x:1", "neither an IP address nor a host name"},
		{"s1,s2,s1", "element 3 (s1:15001) repeats element 1"},
		{"s1:15001,S1", "element 2 (S1:15001) repeats element 1"}, // the default port applied, case folded
		{"10.0.0.1,10.0.0.1:15001", "repeats element 1"},
		{strings.Repeat("s,", MaxServers) + "s", "at most 16"},
	}
	for _, tt := range bad {
		got, err := ParseServers(tt.in)
		if err == nil || !errors.Is(err, ErrBadServerList) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseServers(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.msg)
		}
	}
}

func TestMatchServer(t *testing.T) {
	list := []string{"10.0.0.1:15001", "s2.example:15001", "[fd00::3]:15001", "10.0.0.4:16001"}
	resolve := func(host string) []netip.Addr {
		if host == "s2.example" {
			return []netip.Addr{netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.2")}
		}
		return nil
	}
	tests := []struct {
		addr string
		want int
	}{
		{"10.0.0.1:15001", 0},
		{"[::ffff:10.0.0.1]:15001", 0}, // IPv4-mapped, as a 16-byte Addr carries it
		{"10.0.0.2:15001", 1},          // by the name's resolution
		{"[fd00::3]:15001", 2},
		{"10.0.0.4:16001", 3},
		{"10.0.0.4:15001", -1}, // right host, wrong port
		{"10.0.0.1:15002", -1},
		{"10.0.0.66:15001", -1}, // an attacker's address
		{"0.0.0.0:15001", -1},
		{"10.0.0.1:0", -1},
	}
	for _, tt := range tests {
		if got := matchServer(list, netip.MustParseAddrPort(tt.addr), resolve); got != tt.want {
			t.Errorf("matchServer(%s) = %d, want %d", tt.addr, got, tt.want)
		}
	}
	if got := matchServer(list, netip.AddrPort{}, resolve); got != -1 {
		t.Errorf("matchServer(invalid) = %d", got)
	}
	if got := matchServer(list, netip.MustParseAddrPort("10.0.0.2:15001"), nil); got != -1 {
		t.Errorf("without a resolver a name never matches: got %d", got)
	}
}

// serverListSeeds is the seed corpus of FuzzParseServers.
func serverListSeeds() []fuzzcorpus.Seed {
	return []fuzzcorpus.Seed{
		fuzzcorpus.String("single", "127.0.0.1:15001"),
		fuzzcorpus.String("list", "s1,s2:16001,s3"),
		fuzzcorpus.String("ipv6", "[::1]:2000,::2"),
		fuzzcorpus.String("empty_element", "s1,,s2"),
		fuzzcorpus.String("port_zero", "s1:0"),
		fuzzcorpus.String("unclosed", "[::1"),
		fuzzcorpus.String("comma", ","),
		fuzzcorpus.String("duplicate_case", "a,A"),
	}
}

func TestServerListSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzParseServers", serverListSeeds())
}

// FuzzParseServers: no --server value crashes the parser, and a list it
// accepts is a fixed point.
func FuzzParseServers(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		list, err := ParseServers(v)
		if err != nil {
			return
		}
		if len(list) == 0 || len(list) > MaxServers {
			t.Fatalf("%q: %d servers", v, len(list))
		}
		// The output is a fixed point: parsing it again gives it.
		again, err := ParseServers(strings.Join(list, ","))
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("%q: %q parses again as %q, %v", v, list, again, err)
		}
	})
}
