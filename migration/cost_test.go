package migration

import (
	"fmt"
	"strings"
	"testing"
)

// TestCostGoals checks the goals of issue 7 at N = 10,000 on the byte and
// message counts the real encoder produces (no timing involved).
func TestCostGoals(t *testing.T) {
	const n = 10000
	for _, plan := range []AddrPlan{PlanContiguous, PlanFragmented} {
		legacy, ping := LegacyAdd(plan, n), PingAdd(n)
		if legacy.Messages != n+1 {
			t.Errorf("%s: legacy add sends %d messages, want N+1 = %d", plan, legacy.Messages, n+1)
		}
		if ping.Messages != 1 {
			t.Errorf("%s: ping add sends %d messages, want 1", plan, ping.Messages)
		}
		ratio := float64(legacy.Bytes) / float64(ping.Bytes)
		goal := 1e2
		if plan == PlanFragmented {
			goal = 1e6
		}
		if ratio < goal {
			t.Errorf("%s: add bytes legacy/ping = %.3g, goal >= %.0g", plan, ratio, goal)
		}
	}
	// The list really is one run, or N runs.
	if got := len(ListFrame(PlanAddrs(PlanContiguous, n))); got != 8+4+8 {
		t.Errorf("contiguous list of %d: %d bytes, want 20", n, got)
	}
	if got := len(ListFrame(PlanAddrs(PlanFragmented, n))); got != 8+4+8*n {
		t.Errorf("fragmented list of %d: %d bytes, want %d", n, got, 12+8*n)
	}
	if d := PingDelete(n); d.Messages != n-1 {
		t.Errorf("ping delete: %d messages, want N-1", d.Messages)
	}
}

func TestCostTable(t *testing.T) {
	tab := CostTable([]int{100})
	if lines := strings.Count(tab, "\n"); lines != 2+4 {
		t.Fatalf("table has %d lines:\n%s", lines, tab)
	}
	if !strings.Contains(tab, "| 100 | fragmented | add | 101 | 82,820 | 1 | 114 | 101x | 726x |") {
		t.Fatalf("fragmented add row missing or wrong:\n%s", tab)
	}
	if group(1234567) != "1,234,567" || group(12) != "12" {
		t.Fatal("group")
	}
}

// BenchmarkPushCost reports, per node add or delete, the messages and
// bytes the server sends in legacy and ping modes (metrics msgs/op and
// pushbytes/op); ns/op is the time to compute the legacy list once.
func BenchmarkPushCost(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		for _, plan := range []AddrPlan{PlanContiguous, PlanFragmented} {
			for _, ev := range []string{"add", "delete"} {
				b.Run(fmt.Sprintf("legacy/%s/%s/N=%d", ev, plan, n), func(b *testing.B) {
					var c Cost
					for b.Loop() {
						if ev == "add" {
							c = LegacyAdd(plan, n)
						} else {
							c = LegacyDelete(plan, n)
						}
					}
					b.ReportMetric(float64(c.Messages), "msgs/op")
					b.ReportMetric(float64(c.Bytes), "pushbytes/op")
				})
			}
		}
		for _, ev := range []string{"add", "delete"} {
			b.Run(fmt.Sprintf("ping/%s/N=%d", ev, n), func(b *testing.B) {
				var c Cost
				for b.Loop() {
					if ev == "add" {
						c = PingAdd(n)
					} else {
						c = PingDelete(n)
					}
				}
				b.ReportMetric(float64(c.Messages), "msgs/op")
				b.ReportMetric(float64(c.Bytes), "pushbytes/op")
			})
		}
	}
}
