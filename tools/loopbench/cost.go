package loopbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Cost is what one process spent on a measured phase, per operation
// completed in it: CPU time (user + system, from /proc/PID/stat),
// allocations and allocated bytes (the Go runtime's counters, scraped from
// the process's Prometheus endpoint before and after the measured window).
type Cost struct {
	Process     string  `json:"process"`
	CPUPerOp    float64 `json:"cpu_us_per_op"`      // microseconds
	AllocsPerOp float64 `json:"allocs_per_op"`      // heap allocations
	BytesPerOp  float64 `json:"alloc_bytes_per_op"` // heap bytes allocated
	// GCs is the number of garbage collections in the window.
	GCs float64 `json:"gcs"`
	// Note says why a figure is missing.
	Note string `json:"note,omitempty"`
}

// probe samples a process's counters at the edges of a measured window.
type probe struct {
	name    string
	pid     int
	metrics string // http://IP:PORT/metrics, "" for none; the runtime's own counters when pid is this process
}

// sample is one reading of a process's counters.
type sample struct {
	cpu            time.Duration
	mallocs, bytes float64
	gcs            float64
	err            error
}

func (p probe) read(ctx context.Context) sample {
	var s sample
	s.cpu, s.err = cpuOf(p.pid)
	if s.err != nil {
		return s
	}
	if p.pid == os.Getpid() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.mallocs, s.bytes, s.gcs = float64(ms.Mallocs), float64(ms.TotalAlloc), float64(ms.NumGC)
		return s
	}
	if p.metrics == "" {
		s.err = errors.New("no metrics endpoint")
		return s
	}
	m, err := scrape(ctx, p.metrics, "go_memstats_mallocs_total", "go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count")
	if err != nil {
		s.err = err
		return s
	}
	s.mallocs, s.bytes, s.gcs = m[0], m[1], m[2]
	return s
}

// costOf is the cost per operation between two samples.
func costOf(name string, a, b sample, ops uint64) Cost {
	c := Cost{Process: name}
	if ops == 0 {
		c.Note = "no operations"
		return c
	}
	if err := errors.Join(a.err, b.err); err != nil {
		c.Note = err.Error()
	}
	n := float64(ops)
	if a.cpu > 0 || b.cpu > 0 {
		c.CPUPerOp = float64(b.cpu-a.cpu) / float64(time.Microsecond) / n
	}
	if a.err == nil && b.err == nil {
		c.AllocsPerOp = (b.mallocs - a.mallocs) / n
		c.BytesPerOp = (b.bytes - a.bytes) / n
		c.GCs = b.gcs - a.gcs
	}
	return c
}

// cpuOf is the user + system CPU time of pid, all threads, from
// /proc/PID/stat (clock ticks of 10 ms).
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time: /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ is 100 on Linux
}

// scrape reads the named unlabelled samples from a Prometheus text
// endpoint, in the order asked.
func scrape(ctx context.Context, url string, names ...string) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseSamples(resp.Body, names...)
}

// parseSamples finds "NAME VALUE" lines in Prometheus text format.
func parseSamples(r io.Reader, names ...string) ([]float64, error) {
	out := make([]float64, len(names))
	found := make([]bool, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for i, n := range names {
			v, ok := strings.CutPrefix(line, n+" ")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("metric %s: %w", n, err)
			}
			out[i], found[i] = f, true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("metric %s not exported", names[i])
		}
	}
	return out, nil
}
