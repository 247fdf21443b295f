package loopbench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
)

// Config configures a bench-munge run.
type Config struct {
	BinDir   string        // momgate-server, momgate-mom, momgate-qmgr
	Dir      string        // scratch directory for daemon state
	Workers  int           // parallel client workers
	Warmup   time.Duration // unmeasured start of each phase
	Duration time.Duration // measured part of each phase
	// MungeRate is MUNGE's measured credentials per second (encode and
	// decode), 0 if MUNGE was not measured; MungeNote says how.
	MungeRate float64
	MungeNote string
	// MungeConnRate is the measured rate of MUNGE-authenticated
	// connections (tools/munge), 0 if not measured; MungeConnNote says how.
	MungeConnRate float64
	MungeConnNote string
	// RawCRate is the same C client and server with MUNGE left out, a
	// reference without a goal; 0 if not measured.
	RawCRate float64
	RawCNote string
	// EchoCommand starts the echo server as its own process; the listen
	// address is appended.
	EchoCommand []string
}

// Report is the outcome of Run.
type Report struct {
	Workers    int     `json:"workers"`
	CPUs       int     `json:"cpus"`
	MungeRate  float64 `json:"munge_per_second,omitempty"`
	MungeNote  string  `json:"munge_note,omitempty"`
	Swap       Result  `json:"swap"`
	Raw        Result  `json:"raw"`
	SwapPerRaw float64 `json:"swap_per_raw"`
	// SwapPerMunge is 0 when MUNGE was not measured.
	SwapPerMunge float64 `json:"swap_per_munge,omitempty"`
	// RawPlusMunge is derived, not measured: the rate of a PBS-style
	// admission that costs one raw connection plus one MUNGE round trip
	// on the same CPUs, 1/(1/raw + 1/munge). 0 when MUNGE was not measured.
	RawPlusMunge float64 `json:"raw_plus_munge_derived,omitempty"`
	// MungeConnRate is MUNGE-authenticated connections per second, 0 when
	// not measured; SwapPerMungeConn is then 0 too.
	MungeConnRate    float64 `json:"munge_conn_per_second,omitempty"`
	MungeConnNote    string  `json:"munge_conn_note,omitempty"`
	SwapPerMungeConn float64 `json:"swap_per_munge_conn,omitempty"`
	// RawCRate is the C reference (Config.RawCRate), 0 if not measured.
	RawCRate float64 `json:"raw_c_per_second,omitempty"`
	RawCNote string  `json:"raw_c_note,omitempty"`
	// Warmup and Duration are those of every measured phase.
	Warmup   time.Duration `json:"warmup_ns"`
	Duration time.Duration `json:"duration_ns"`
}

// Addresses of the run: each daemon and each client worker has its own.
const (
	serverIP = "127.0.80.1"
	momIP    = "127.0.80.2"
	echoIP   = "127.0.80.3"
	swapBase = 81 // swap clients: 127.81.w.i
	rawBase  = 82 // raw clients: 127.82.w.i
	// sourcesPerWorker spreads each worker's connections over a few
	// source addresses, so TIME_WAIT never exhausts a port range.
	sourcesPerWorker = 4
)

// Run starts a server and a MOM, and an echo server, measures the raw
// loopback rate and the PING swap rate, and stops everything.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("workers %d: want >= 1", cfg.Workers)
	}
	d, err := StartDaemons(ctx, cfg.BinDir, cfg.Dir, serverIP, momIP,
		// The limiter stays in the path, with no rate limit: the bench
		// is one busy source per worker.
		[]string{"--accept-rate-per-source", "-1", "--log-level", "warn"})
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	ring, err := keystore.LoadKeyring(filepath.Join(d.MomDir, "keyring.json"))
	if err != nil {
		return nil, err
	}
	echoAddr, stopEcho, err := startEcho(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer stopEcho()

	rep := &Report{Workers: cfg.Workers, CPUs: runtime.NumCPU(), MungeRate: cfg.MungeRate, MungeNote: cfg.MungeNote,
		MungeConnRate: cfg.MungeConnRate, MungeConnNote: cfg.MungeConnNote, RawCRate: cfg.RawCRate, RawCNote: cfg.RawCNote,
		Warmup: cfg.Warmup, Duration: cfg.Duration}
	rep.Raw = Measure(ctx, "raw loopback: connect + 124 B frame + 140 B frame + close", cfg.Workers, cfg.Warmup, cfg.Duration,
		RawOp(echoAddr, Sources(rawBase, cfg.Workers, sourcesPerWorker)))
	op, err := SwapOp(d.MomIM, Sources(swapBase, cfg.Workers, sourcesPerWorker), keys.NewHolder(ring))
	if err != nil {
		return nil, err
	}
	rep.Swap = Measure(ctx, "momgate PING swap via momgate-mom: connect + Ping + PingReply verified + close", cfg.Workers,
		cfg.Warmup, cfg.Duration, op)
	if rep.Raw.PerSecond > 0 {
		rep.SwapPerRaw = rep.Swap.PerSecond / rep.Raw.PerSecond
	}
	if cfg.MungeConnRate > 0 {
		rep.SwapPerMungeConn = rep.Swap.PerSecond / cfg.MungeConnRate
	}
	if cfg.MungeRate > 0 {
		rep.SwapPerMunge = rep.Swap.PerSecond / cfg.MungeRate
		if rep.Raw.PerSecond > 0 {
			rep.RawPlusMunge = 1 / (1/rep.Raw.PerSecond + 1/cfg.MungeRate)
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

// startEcho runs the echo server process and waits until it accepts.
func startEcho(ctx context.Context, cfg Config) (string, func(), error) {
	addr, err := freeAddr(echoIP)
	if err != nil {
		return "", nil, err
	}
	if len(cfg.EchoCommand) == 0 {
		return "", nil, fmt.Errorf("no echo server command")
	}
	args := append(append([]string(nil), cfg.EchoCommand[1:]...), addr)
	cmd := exec.Command(cfg.EchoCommand[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start echo server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, stop, nil
		}
		select {
		case <-done:
			return "", nil, fmt.Errorf("echo server exited: %w", err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("echo server at %s not accepting: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Goals of issue 15 for the swap rate.
const (
	goalSwapPerMungeConn = 2.0
	goalSwapPerRaw       = 0.95
)

// WriteText prints the report for people: what every figure is, the four
// rates and the ratios against the goals of issue 15.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "bench-munge: every rate is operations completed per second over %s measured after %s of warm-up,\n",
		r.Duration, r.Warmup)
	fmt.Fprintf(w, "  with %d concurrent clients for every method, on %d CPUs; every operation but remunge's is a new\n",
		r.Workers, r.CPUs)
	fmt.Fprintf(w, "  loopback TCP connection; failed operations are counted apart, never in the rate\n")
	for _, x := range []Result{r.Raw, r.Swap} {
		label := "momgate PING swaps (real MOM)"
		if x.Name == r.Raw.Name {
			label = "raw loopback connect+frame+frame+close"
		}
		fmt.Fprintf(w, "  %-42s %10.0f /s   %d ops in %.2f s, %d errors", label, x.PerSecond, x.Ops, x.Elapsed.Seconds(), x.Errors)
		if x.FirstError != "" {
			fmt.Fprintf(w, " (first: %s)", x.FirstError)
		}
		fmt.Fprintln(w)
	}
	rate := func(label string, v float64, note string) {
		if v > 0 {
			fmt.Fprintf(w, "  %-42s %10.0f /s   %s\n", label, v, note)
		} else {
			fmt.Fprintf(w, "  %-42s %10s      %s\n", label, "skipped", note)
		}
	}
	rate("MUNGE-authenticated connection", r.MungeConnRate, r.MungeConnNote)
	rate("MUNGE remunge encode+decode (no network)", r.MungeRate, r.MungeNote)
	rate("reference: raw loopback, C, no MUNGE", r.RawCRate, r.RawCNote)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	if r.MungeConnRate > 0 {
		fmt.Fprintf(w, "  swaps / MUNGE-authenticated connections = %.2fx   (goal >= %gx: %s)\n",
			r.SwapPerMungeConn, goalSwapPerMungeConn, verdict(r.SwapPerMungeConn >= goalSwapPerMungeConn))
	}
	fmt.Fprintf(w, "  swaps / raw loopback                    = %.2fx   (goal >= %gx: %s)\n",
		r.SwapPerRaw, goalSwapPerRaw, verdict(r.SwapPerRaw >= goalSwapPerRaw))
	if r.RawCRate > 0 {
		fmt.Fprintf(w, "  swaps / raw loopback in C               = %.2fx   (no goal: the same TCP exchange without the Go runtime)\n",
			r.Swap.PerSecond/r.RawCRate)
	}
	if r.MungeRate > 0 {
		fmt.Fprintf(w, "  swaps / remunge round trips             = %.2fx   (no goal: remunge opens no TCP connection)\n", r.SwapPerMunge)
		fmt.Fprintf(w, "  raw + remunge, derived 1/(1/raw + 1/remunge) = %.0f /s (the old estimate of a MUNGE connection)\n", r.RawPlusMunge)
	}
}
