package proto

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
)

func run(first string, count uint32) AddrRun {
	return AddrRun{First: netip.MustParseAddr(first).As4(), Count: count}
}

// rangeAddrs lists n consecutive addresses from first, every step-th.
func rangeAddrs(first string, n, step int) []netip.Addr {
	a := netip.MustParseAddr(first)
	out := make([]netip.Addr, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, a)
		for range step {
			a = a.Next()
		}
	}
	return out
}

func TestRunsFromAddrs(t *testing.T) {
	shuffled := rangeAddrs("10.0.0.1", 100, 1)
	// Reverse and duplicate: order and repeats do not matter.
	for i, j := 0, len(shuffled)-1; i < j; i, j = i+1, j-1 {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	shuffled = append(shuffled, shuffled[:10]...)

	cases := []struct {
		name  string
		addrs []netip.Addr
		want  []AddrRun
	}{
		{"none", nil, nil},
		{"one", addrs("127.0.0.2"), []AddrRun{run("127.0.0.2", 1)}},
		{"contiguous block is one run", rangeAddrs("10.0.0.1", 100, 1), []AddrRun{run("10.0.0.1", 100)}},
		{"shuffled and duplicated block is one run", shuffled, []AddrRun{run("10.0.0.1", 100)}},
		{"fragmented is one run per address", rangeAddrs("10.0.0.1", 5, 2), []AddrRun{
			run("10.0.0.1", 1), run("10.0.0.3", 1), run("10.0.0.5", 1), run("10.0.0.7", 1), run("10.0.0.9", 1)}},
		{"run across a /24 boundary", rangeAddrs("10.0.0.250", 12, 1), []AddrRun{run("10.0.0.250", 12)}},
		{"run across a /16 boundary", rangeAddrs("10.0.255.255", 2, 1), []AddrRun{run("10.0.255.255", 2)}},
		{"two blocks", append(rangeAddrs("192.168.1.10", 3, 1), rangeAddrs("10.0.0.1", 2, 1)...),
			[]AddrRun{run("10.0.0.1", 2), run("192.168.1.10", 3)}},
		{"ends of the address space", addrs("255.255.255.255", "0.0.0.0", "255.255.255.254", "0.0.0.1"),
			[]AddrRun{run("0.0.0.0", 2), run("255.255.255.254", 2)}},
		{"IPv6 skipped, IPv4-mapped kept", addrs("fd00::1", "::ffff:10.0.0.2", "10.0.0.1", "::1"),
			[]AddrRun{run("10.0.0.1", 2)}},
		{"only IPv6", addrs("fd00::1"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := RunsFromAddrs(tc.addrs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("RunsFromAddrs = %v, want %v", got, tc.want)
			}
			// Through the wire and back.
			m, err := Unmarshal(Marshal(&ClusterAddrs{Runs: got}))
			if err != nil {
				t.Fatal(err)
			}
			if back := m.(*ClusterAddrs).Runs; !reflect.DeepEqual(back, tc.want) {
				t.Fatalf("decoded runs %v, want %v", back, tc.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	m := &ClusterAddrs{Runs: RunsFromAddrs(append(append(
		rangeAddrs("10.0.0.250", 12, 1), // 10.0.0.250 - 10.0.1.5
		addrs("10.0.2.1", "255.255.255.255")...),
		rangeAddrs("0.0.0.0", 2, 1)...))}
	in := []string{"10.0.0.250", "10.0.0.255", "10.0.1.0", "10.0.1.5", "10.0.2.1", "::ffff:10.0.1.1",
		"255.255.255.255", "0.0.0.0", "0.0.0.1"}
	out := []string{"10.0.0.249", "10.0.1.6", "10.0.2.0", "10.0.2.2", "255.255.255.254", "0.0.0.2", "9.255.255.255",
		"fd00::1", "::a00:1"}
	for _, s := range in {
		if !m.Contains(netip.MustParseAddr(s)) {
			t.Errorf("Contains(%s) = false", s)
		}
	}
	for _, s := range out {
		if m.Contains(netip.MustParseAddr(s)) {
			t.Errorf("Contains(%s) = true", s)
		}
	}
	if (&ClusterAddrs{}).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Errorf("empty list contains an address")
	}
	if m.Contains(netip.Addr{}) {
		t.Errorf("contains the zero Addr")
	}
}

func TestExpand(t *testing.T) {
	want := append(rangeAddrs("10.0.0.254", 4, 1), addrs("10.0.9.9")...)
	m := &ClusterAddrs{Runs: RunsFromAddrs(want)}
	if got := m.Expand(100); !reflect.DeepEqual(got, want) {
		t.Fatalf("Expand(100) = %v, want %v", got, want)
	}
	if got := m.Expand(3); !reflect.DeepEqual(got, want[:3]) {
		t.Fatalf("Expand(3) = %v", got)
	}
	if got := m.Expand(0); len(got) != 0 {
		t.Fatalf("Expand(0) = %v", got)
	}
	// A huge run is cut at max, not expanded in full.
	all := &ClusterAddrs{Runs: []AddrRun{{Count: 0xffffffff}}}
	if got := all.Expand(5); len(got) != 5 || got[4] != netip.MustParseAddr("0.0.0.4") {
		t.Fatalf("Expand(5) of the whole space = %v", got)
	}
	top := &ClusterAddrs{Runs: []AddrRun{run("255.255.255.254", 2)}}
	if got := top.Expand(10); !reflect.DeepEqual(got, addrs("255.255.255.254", "255.255.255.255")) {
		t.Fatalf("Expand at the top of the space = %v", got)
	}
}

// TestClusterAddrsCountLimits: the run count is capped at MaxClusterRuns
// by the decoder and, in practice, lower by MaxFrameSize.
func TestClusterAddrsCountLimits(t *testing.T) {
	// The most runs a 1 MiB frame holds: (MaxFrameSize - 8 - 4) / 8.
	const fit = (MaxFrameSize - HeaderSize - 4) / 8
	fragmented := func(n int) *ClusterAddrs {
		runs := make([]AddrRun, n)
		for i := range runs {
			binary.BigEndian.PutUint32(runs[i].First[:], uint32(0x0a000000+2*i))
			runs[i].Count = 1
		}
		return &ClusterAddrs{Runs: runs}
	}
	m, err := Unmarshal(Marshal(fragmented(fit)))
	if err != nil {
		t.Fatalf("%d fragmented runs: %v", fit, err)
	}
	if got := len(m.(*ClusterAddrs).Runs); got != fit {
		t.Fatalf("decoded %d runs, want %d", got, fit)
	}
	// One more does not fit in a frame.
	_, err = Unmarshal(Marshal(fragmented(fit + 1)))
	checkSentinel(t, err, ErrOversize)
	// A count over the limit is refused from the count alone.
	_, err = Unmarshal(frameOf(V1, TypeClusterAddrs, binary.BigEndian.AppendUint32(nil, MaxClusterRuns+1)))
	checkSentinel(t, err, ErrCountLimit)
	// A count at the limit with too few runs is truncated, and nothing is
	// allocated for the runs that are not there.
	_, err = Unmarshal(frameOf(V1, TypeClusterAddrs, binary.BigEndian.AppendUint32(nil, MaxClusterRuns)))
	checkSentinel(t, err, ErrTruncated)
	// The fragmented plan from 3 addresses per /24: one run per address.
	var plan []netip.Addr
	for i := 0; i < 300; i++ {
		plan = append(plan, netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 7}), netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 9}))
	}
	if got := len(RunsFromAddrs(plan)); got != len(plan) {
		t.Fatalf("fragmented plan of %d addresses gave %d runs", len(plan), got)
	}
}

// TestContainsUnsortedRuns: a decoded list is not necessarily sorted (the
// protocol does not require it); Contains must still find every address.
// Regression: Contains used a binary search that assumed sorted runs and
// missed 10.0.0.9 here.
func TestContainsUnsortedRuns(t *testing.T) {
	frame := frameOf(V1, TypeClusterAddrs, (&ClusterAddrs{Runs: []AddrRun{
		run("10.0.0.9", 1), run("10.0.0.1", 2), run("10.0.0.2", 3)}}).AppendBody(nil))
	m, err := Unmarshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	ca := m.(*ClusterAddrs)
	for _, s := range []string{"10.0.0.9", "10.0.0.1", "10.0.0.2", "10.0.0.4"} {
		if !ca.Contains(netip.MustParseAddr(s)) {
			t.Errorf("Contains(%s) = false", s)
		}
	}
	for _, s := range []string{"10.0.0.5", "10.0.0.8", "10.0.0.10", "10.0.0.0"} {
		if ca.Contains(netip.MustParseAddr(s)) {
			t.Errorf("Contains(%s) = true", s)
		}
	}
}
