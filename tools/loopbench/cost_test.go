package loopbench

import (
	"strings"
	"testing"
	"time"
)

func TestParseStraceSummary(t *testing.T) {
	const out = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 41.20    0.004120           4      1000           write
 30.00    0.003000           1      2000      1000 read
  1.00    0.000100           0         5           setsockopt
------ ----------- ----------- --------- --------- ----------------
100.00    0.010000           3      3005      1000 total
`
	got, err := parseStraceSummary(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"write": 1000, "read": 2000, "setsockopt": 5}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %d, want %d", k, got[k], v)
		}
	}
	if _, err := parseStraceSummary(strings.NewReader("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n")); err == nil {
		t.Error("no summary accepted")
	}
}

func TestParseSamples(t *testing.T) {
	const text = `# HELP go_memstats_mallocs_total Total number of heap objects allocated.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total 123456
go_memstats_alloc_bytes_total 7.5e+06
go_gc_duration_seconds{quantile="0"} 1e-05
go_gc_duration_seconds_count 12
`
	got, err := parseSamples(strings.NewReader(text), "go_memstats_mallocs_total", "go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count")
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 123456 || got[1] != 7.5e6 || got[2] != 12 {
		t.Fatalf("got %v", got)
	}
	if _, err := parseSamples(strings.NewReader(text), "missing_total"); err == nil {
		t.Error("missing metric not reported")
	}
}

func TestCostOf(t *testing.T) {
	a := sample{cpu: time.Second, mallocs: 100, bytes: 1000, gcs: 1}
	b := sample{cpu: 2 * time.Second, mallocs: 1100, bytes: 11000, gcs: 3}
	c := costOf("mom", a, b, 1000)
	if c.CPUPerOp != 1000 || c.AllocsPerOp != 1 || c.BytesPerOp != 10 || c.GCs != 2 || c.Note != "" {
		t.Fatalf("got %+v", c)
	}
	if c := costOf("mom", a, b, 0); c.Note == "" {
		t.Error("no operations not noted")
	}
}
