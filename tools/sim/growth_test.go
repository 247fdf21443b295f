package sim

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		a, b, na, nb float64
		want         string
	}{
		{1, 1, 1000, 10000, "0.00"},  // constant
		{1, 10, 1000, 10000, "1.00"}, // linear
		{1, 100, 1000, 10000, "2.00"},
		{0, 1, 1000, 10000, "-"},
		{1, 1, 1000, 1000, "-"},
	} {
		if got := slope(tc.a, tc.b, tc.na, tc.nb); got != tc.want {
			t.Errorf("slope(%v, %v, %v, %v) = %s, want %s", tc.a, tc.b, tc.na, tc.nb, got, tc.want)
		}
	}
}

func TestPrintGrowth(t *testing.T) {
	rep := func(n int, create time.Duration) *Report {
		return &Report{Nodes: n, Connected: n, Create: Phase{Count: n, Duration: create}}
	}
	var b strings.Builder
	PrintGrowth(&b, []*Report{rep(1000, time.Second), rep(10000, 10*time.Second)})
	out := b.String()
	for _, want := range []string{"| figure | N = 1000 | N = 10000 | slope 1000-10000 |", "| create node, per node (ms) | 1 | 1 | 0.00 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("growth table lacks %q:\n%s", want, out)
		}
	}
}

// TestNodeAddrsDistinct: every simulated node has its own loopback
// address, in 127.1.0.1-127.16.255.250, none ending in .0 or .255.
func TestNodeAddrsDistinct(t *testing.T) {
	seen := map[netip.Addr]int{}
	for _, i := range []int{0, 1, 249, 250, 63999, 64000, 99999, 100000, MaxNodes - 1} {
		a := NodeAddr(i)
		b := a.As4()
		if !a.IsLoopback() || b[1] < 1 || b[1] > 16 || b[3] == 0 || b[3] == 255 {
			t.Errorf("NodeAddr(%d) = %s", i, a)
		}
		if j, ok := seen[a]; ok {
			t.Errorf("NodeAddr(%d) = NodeAddr(%d) = %s", i, j, a)
		}
		seen[a] = i
	}
	for i := range 2 * 64000 {
		a := NodeAddr(i)
		if j, ok := seen[a]; ok && j != i {
			t.Fatalf("NodeAddr(%d) = NodeAddr(%d) = %s", i, j, a)
		}
		seen[a] = i
	}
}
