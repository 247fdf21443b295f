package sim

import "testing"

func TestNamedLeader(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"not_leader: this member (s3) does not lead the group; s2 leads (control address 127.0.5.2:4000): run momgate-qmgr on that host", "s2"},
		{"not_leader: this member (s3) does not lead the group and no leader is known (an election, or no quorum)", ""},
		{"something else; entirely", ""},
		{"", ""},
	} {
		if got := namedLeader(tc.msg); got != tc.want {
			t.Errorf("namedLeader(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
}

func TestParseListenCounters(t *testing.T) {
	netstat := "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPReqQFullDrop\n" +
		"TcpExt: 0 12 15 0\n" +
		"IpExt: InNoRoutes\nIpExt: 0\n"
	c, err := parseListenCounters(netstat)
	if err != nil || c != (ListenCounters{Overflows: 12, Drops: 15}) {
		t.Fatalf("parse: %+v, %v", c, err)
	}
	if d := c.Sub(ListenCounters{Overflows: 2, Drops: 5}); d != (ListenCounters{Overflows: 10, Drops: 10}) {
		t.Fatalf("Sub: %+v", d)
	}
	for _, bad := range []string{
		"",
		"TcpExt: ListenOverflows ListenDrops\n",
		"TcpExt: ListenOverflows ListenDrops\nTcpExt: 1\n",
		"TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 x\n",
		"TcpExt: SyncookiesSent\nTcpExt: 1\n",
	} {
		if _, err := parseListenCounters(bad); err == nil {
			t.Errorf("parse(%q): no error", bad)
		}
	}
	if _, err := readListenCounters(); err != nil {
		t.Logf("this machine: %v", err) // not every kernel has /proc/net/netstat
	}
}
