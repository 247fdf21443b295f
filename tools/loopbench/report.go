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
	"github.com/momgate/momgate/session"
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
	// Sealed sessions (issue 12): the session swap with forward secrecy
	// on new connections, against the raw rate and today's swap; IM
	// request and response on one connection per worker under each
	// protection, against none.
	SessionSwap        Result            `json:"session_swap"`
	SessionSwapPerRaw  float64           `json:"session_swap_per_raw"`
	SessionSwapPerSwap float64           `json:"session_swap_per_swap"`
	IM                 map[string]Result `json:"im"`
	IMAuthPerNone      float64           `json:"im_auth_per_none"`
	IMEncryptPerNone   float64           `json:"im_encrypt_per_none"`
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
	serverIP    = "127.0.80.1"
	momIP       = "127.0.80.2"
	echoIP      = "127.0.80.3"
	swapBase    = 81 // swap clients: 127.81.w.i
	rawBase     = 82 // raw clients: 127.82.w.i
	sessionBase = 84 // session swap clients: 127.84.w.i
	imBase      = 85 // IM clients: 127.85.w.i
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
	if err := rep.runSealed(ctx, cfg, d, keys.NewHolder(ring)); err != nil {
		return rep, err
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

// Goals of issue 15 for the swap rate, and of issue 12 for sealed
// sessions.
const (
	goalSwapPerMungeConn  = 2.0
	goalSwapPerRaw        = 0.95
	goalSessionSwapPerRaw = 0.8
	goalIMSealedPerNone   = 0.85
	imProtectionsMeasured = "none, auth, encrypt"
	imFramesOfTheIMPhase  = "IMPoll 79 B / IMReply 80 B (a 61-byte job name)"
	sessionSwapOfThePhase = "connect + SessionPing (encrypt only: ephemeral X25519) + SessionReply verified + keys derived + close"
)

// runSealed measures the sealed-session phases (issue 12): the session
// swap with forward secrecy beside the raw and plain swap rates measured
// just before, and IM request/response under each protection, with the
// MOM's im_security set to none so that it takes what the bench offers.
func (rep *Report) runSealed(ctx context.Context, cfg Config, d *Daemons, holder *keys.Holder) error {
	op, err := SessionSwapOp(d.MomIM, Sources(sessionBase, cfg.Workers, sourcesPerWorker), holder)
	if err != nil {
		return err
	}
	rep.SessionSwap = Measure(ctx, "session swap via momgate-mom: "+sessionSwapOfThePhase, cfg.Workers, cfg.Warmup, cfg.Duration, op)
	if rep.Raw.PerSecond > 0 {
		rep.SessionSwapPerRaw = rep.SessionSwap.PerSecond / rep.Raw.PerSecond
	}
	if rep.Swap.PerSecond > 0 {
		rep.SessionSwapPerSwap = rep.SessionSwap.PerSecond / rep.Swap.PerSecond
	}
	if err := d.SetServer(ctx, "im_security", "none", "sessions", "im_security", "none"); err != nil {
		return err
	}
	rep.IM = map[string]Result{}
	for _, p := range []session.Protection{session.None, session.Auth, session.Encrypt} {
		op, closeIM, err := IMOp(d.MomIM, Sources(imBase+byte(p), cfg.Workers, 1), holder, p)
		if err != nil {
			return err
		}
		rep.IM[p.String()] = Measure(ctx, "IM request/response via momgate-mom, im_security "+p.String()+": "+imFramesOfTheIMPhase,
			cfg.Workers, cfg.Warmup, cfg.Duration, op)
		closeIM()
	}
	if none := rep.IM["none"].PerSecond; none > 0 {
		rep.IMAuthPerNone = rep.IM["auth"].PerSecond / none
		rep.IMEncryptPerNone = rep.IM["encrypt"].PerSecond / none
	}
	return ctx.Err()
}

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
	r.writeSealed(w, verdict)
	if r.MungeRate > 0 {
		fmt.Fprintf(w, "  swaps / remunge round trips             = %.2fx   (no goal: remunge opens no TCP connection)\n", r.SwapPerMunge)
		fmt.Fprintf(w, "  raw + remunge, derived 1/(1/raw + 1/remunge) = %.0f /s (the old estimate of a MUNGE connection)\n", r.RawPlusMunge)
	}
}

// writeSealed prints the sealed-session figures and their ratios.
func (r *Report) writeSealed(w io.Writer, verdict func(bool) string) {
	line := func(label string, x Result) {
		fmt.Fprintf(w, "  %-42s %10.0f /s   %d ops in %.2f s, %d errors", label, x.PerSecond, x.Ops, x.Elapsed.Seconds(), x.Errors)
		if x.FirstError != "" {
			fmt.Fprintf(w, " (first: %s)", x.FirstError)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  sealed sessions: session swap = %s\n", sessionSwapOfThePhase)
	line("session swaps, forward secret (real MOM)", r.SessionSwap)
	fmt.Fprintf(w, "  session swaps / raw loopback            = %.2fx   (goal >= %gx: %s)\n",
		r.SessionSwapPerRaw, goalSessionSwapPerRaw, verdict(r.SessionSwapPerRaw >= goalSessionSwapPerRaw))
	fmt.Fprintf(w, "  session swaps / plain PING swaps        = %.2fx   (no goal: what forward secrecy costs a new connection)\n", r.SessionSwapPerSwap)
	fmt.Fprintf(w, "  IM request/response on one connection per client, %s; im_security %s:\n", imFramesOfTheIMPhase, imProtectionsMeasured)
	for _, p := range []string{"none", "auth", "encrypt"} {
		line("IM polls answered, "+p, r.IM[p])
	}
	fmt.Fprintf(w, "  IM auth / none                          = %.2fx   (goal >= %gx: %s)\n",
		r.IMAuthPerNone, goalIMSealedPerNone, verdict(r.IMAuthPerNone >= goalIMSealedPerNone))
	fmt.Fprintf(w, "  IM encrypt / none                       = %.2fx   (goal >= %gx: %s; 256 B and 64 KiB frames: BenchmarkIMRequestResponse)\n",
		r.IMEncryptPerNone, goalIMSealedPerNone, verdict(r.IMEncryptPerNone >= goalIMSealedPerNone))
}
