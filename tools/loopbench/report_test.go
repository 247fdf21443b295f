package loopbench

import (
	"strings"
	"testing"
	"time"
)

// TestWriteTextNamesEveryFigure checks that the text report says what the
// figures are and prints all four rates with both goal ratios.
func TestWriteTextNamesEveryFigure(t *testing.T) {
	r := &Report{
		Workers: 2, CPUs: 2, Warmup: time.Second, Duration: 5 * time.Second,
		Raw:           Result{Name: "raw", Ops: 50000, Elapsed: 5 * time.Second, PerSecond: 10000},
		Swap:          Result{Name: "swap", Ops: 40000, Elapsed: 5 * time.Second, PerSecond: 8000},
		MungeRate:     9000,
		MungeNote:     "remunge note",
		MungeConnRate: 4000,
		MungeConnNote: "conn note",
		RawCRate:      32000,
		RawCNote:      "c note",
		SwapPerRaw:    0.8, SwapPerMunge: 8000.0 / 9000, SwapPerMungeConn: 2, RawPlusMunge: 4737,
	}
	var b strings.Builder
	r.WriteText(&b)
	out := b.String()
	for _, want := range []string{
		"over 5s measured after 1s of warm-up",
		"with 2 concurrent clients for every method",
		"raw loopback connect+frame+frame+close",
		"momgate PING swaps (real MOM)",
		"MUNGE-authenticated connection                   4000 /s   conn note",
		"MUNGE remunge encode+decode (no network)         9000 /s   remunge note",
		"swaps / MUNGE-authenticated connections = 2.00x   (goal >= 2x: met)",
		"swaps / raw loopback                    = 0.80x   (goal >= 0.95x: NOT met)",
		"reference: raw loopback, C, no MUNGE            32000 /s   c note",
		"swaps / raw loopback in C               = 0.25x",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	r.MungeConnRate, r.MungeConnNote, r.SwapPerMungeConn = 0, "skipped: not installed", 0
	b.Reset()
	r.WriteText(&b)
	if out := b.String(); !strings.Contains(out, "skipped      skipped: not installed") ||
		strings.Contains(out, "swaps / MUNGE-authenticated") {
		t.Errorf("skipped MUNGE connection not reported as skipped:\n%s", out)
	}
}
