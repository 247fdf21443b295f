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
	"strings"
	"sync/atomic"
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
	// EchoCommand starts the echo server as its own process; --listen
	// ADDR and --metrics-listen ADDR are appended.
	EchoCommand []string
	// Cost measures, in the same phases, what each server process and
	// the client spend per operation (CPU, allocations).
	Cost bool
	// Strace adds, after the measured phases, one phase of each kind with
	// strace -c attached to the server and one with it on the client,
	// each StraceDuration long (default 3 s), for system calls per
	// operation.
	Strace         bool
	StraceDuration time.Duration
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
	// SessionSwap is between MOMs that reuse their ephemeral keys (both
	// the MOM and each client worker, as two MOMs swap again and again);
	// SessionSwapFresh a client with a fresh key per swap, a peer the MOM
	// never met.
	SessionSwap             Result  `json:"session_swap"`
	SessionSwapPerRaw       float64 `json:"session_swap_per_raw"`
	SessionSwapPerSwap      float64 `json:"session_swap_per_swap"`
	SessionSwapFresh        Result  `json:"session_swap_fresh"`
	SessionSwapFreshPerRaw  float64 `json:"session_swap_fresh_per_raw"`
	SessionSwapFreshPerSwap float64 `json:"session_swap_fresh_per_swap"`
	// SessionCost and SessionFreshCost are the MOM's and the client's
	// cost per session swap (Config.Cost); SessionSyscalls the system
	// calls per session swap (Config.Strace).
	SessionCost      []Cost     `json:"session_cost,omitempty"`
	SessionFreshCost []Cost     `json:"session_fresh_cost,omitempty"`
	SessionSyscalls  []Syscalls `json:"session_syscalls,omitempty"`
	// Micro is the per-core figures (record open against the bare AEAD,
	// the X25519 floor), measured first, before the daemons start.
	Micro            *Micro            `json:"micro,omitempty"`
	IM               map[string]Result `json:"im"`
	IMAuthPerNone    float64           `json:"im_auth_per_none"`
	IMEncryptPerNone float64           `json:"im_encrypt_per_none"`
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
	// RawCost and SwapCost are the server's and the client's cost per
	// operation in the raw and swap phases (Config.Cost).
	RawCost  []Cost `json:"raw_cost,omitempty"`
	SwapCost []Cost `json:"swap_cost,omitempty"`
	// RawSyscalls and SwapSyscalls are system calls per operation, the
	// server's then the client's (Config.Strace).
	RawSyscalls  []Syscalls `json:"raw_syscalls,omitempty"`
	SwapSyscalls []Syscalls `json:"swap_syscalls,omitempty"`
}

// Addresses of the run: each daemon and each client worker has its own.
const (
	serverIP    = "127.0.80.1"
	momIP       = "127.0.80.2"
	echoIP      = "127.0.80.3"
	swapBase    = 81 // swap clients: 127.81.w.i
	rawBase     = 82 // raw clients: 127.82.w.i
	sessionBase = 84 // session swap clients: 127.84.w.i
	// sessionFreshBase: session swap clients with a fresh key per swap,
	// 127.88.w.i (85-87 are the IM clients).
	sessionFreshBase = 88
	imBase           = 85 // IM clients: 127.85.w.i
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
	micro, err := RunMicro()
	if err != nil {
		return nil, err
	}
	momMetrics, err := freeAddr(momIP)
	if err != nil {
		return nil, err
	}
	d, err := StartDaemons(ctx, cfg.BinDir, cfg.Dir, serverIP, momIP,
		// The limiter stays in the path, with no rate limit: the bench
		// is one busy source per worker.
		[]string{"--accept-rate-per-source", "-1", "--log-level", "warn", "--metrics-listen", momMetrics})
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	ring, err := keystore.LoadKeyring(filepath.Join(d.MomDir, "keyring.json"))
	if err != nil {
		return nil, err
	}
	echo, err := startEcho(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer echo.stop()
	echoAddr := echo.addr
	servers := map[string]probe{
		"raw":  {name: "echo server", pid: echo.pid, metrics: "http://" + echo.metrics + "/metrics"},
		"swap": {name: "momgate-mom", pid: d.Pid("mom"), metrics: "http://" + momMetrics + "/metrics"},
	}
	servers["session"] = servers["swap"]
	client := probe{name: "client", pid: os.Getpid()}
	// window samples the server and the client around a measured phase;
	// done turns the samples into costs per operation of the phase.
	window := func(kind string) (w *Window, done func(ops uint64) []Cost) {
		if !cfg.Cost {
			return nil, func(uint64) []Cost { return nil }
		}
		var a, b []sample
		read := func() []sample { return []sample{servers[kind].read(ctx), client.read(ctx)} }
		return &Window{Begin: func() { a = read() }, End: func() { b = read() }}, func(ops uint64) []Cost {
			return []Cost{costOf(servers[kind].name, a[0], b[0], ops), costOf(client.name, a[1], b[1], ops)}
		}
	}
	rep := &Report{Workers: cfg.Workers, CPUs: runtime.NumCPU(), MungeRate: cfg.MungeRate, MungeNote: cfg.MungeNote,
		MungeConnRate: cfg.MungeConnRate, MungeConnNote: cfg.MungeConnNote, RawCRate: cfg.RawCRate, RawCNote: cfg.RawCNote,
		Warmup: cfg.Warmup, Duration: cfg.Duration, Micro: micro}
	rawOp := RawOp(echoAddr, Sources(rawBase, cfg.Workers, sourcesPerWorker))
	const rawName = "raw loopback: connect + 124 B frame + 140 B frame + close"
	w, done := window("raw")
	rep.Raw = measure(ctx, rawName, cfg.Workers, cfg.Warmup, cfg.Duration, rawOp, w)
	rep.RawCost = done(rep.Raw.Ops)
	swapOp, err := SwapOp(d.MomIM, Sources(swapBase, cfg.Workers, sourcesPerWorker), keys.NewHolder(ring))
	if err != nil {
		return nil, err
	}
	const swapName = "momgate PING swap via momgate-mom: connect + Ping + PingReply verified + close"
	w, done = window("swap")
	rep.Swap = measure(ctx, swapName, cfg.Workers, cfg.Warmup, cfg.Duration, swapOp, w)
	rep.SwapCost = done(rep.Swap.Ops)
	// Session swaps with forward secrecy, in the same run: between MOMs
	// that reuse their ephemeral keys, then from peers the MOM never met.
	sessionOp, err := SessionSwapOp(ctx, d.MomIM, Sources(sessionBase, cfg.Workers, sourcesPerWorker), keys.NewHolder(ring), true)
	if err != nil {
		return nil, err
	}
	w, done = window("session")
	rep.SessionSwap = measure(ctx, "session swap via momgate-mom, ephemeral keys reused: "+sessionSwapOfThePhase, cfg.Workers, cfg.Warmup, cfg.Duration, sessionOp, w)
	rep.SessionCost = done(rep.SessionSwap.Ops)
	freshOp, err := SessionSwapOp(ctx, d.MomIM, Sources(sessionFreshBase, cfg.Workers, sourcesPerWorker), keys.NewHolder(ring), false)
	if err != nil {
		return nil, err
	}
	w, done = window("session")
	rep.SessionSwapFresh = measure(ctx, "session swap via momgate-mom, a fresh client key per swap: "+sessionSwapOfThePhase, cfg.Workers, cfg.Warmup, cfg.Duration, freshOp, w)
	rep.SessionFreshCost = done(rep.SessionSwapFresh.Ops)
	if cfg.Strace {
		sd := cfg.StraceDuration
		if sd <= 0 {
			sd = 3 * time.Second
		}
		for _, ph := range []struct {
			kind string
			op   Op
			out  *[]Syscalls
		}{{"raw", rawOp, &rep.RawSyscalls}, {"swap", swapOp, &rep.SwapSyscalls}, {"session", sessionOp, &rep.SessionSyscalls}} {
			for _, p := range []probe{servers[ph.kind], client} {
				sc, err := traced(ctx, cfg, p, ph.op, sd)
				if err != nil {
					return nil, err
				}
				*ph.out = append(*ph.out, sc)
			}
		}
	}
	if rep.Raw.PerSecond > 0 {
		rep.SwapPerRaw = rep.Swap.PerSecond / rep.Raw.PerSecond
		rep.SessionSwapPerRaw = rep.SessionSwap.PerSecond / rep.Raw.PerSecond
		rep.SessionSwapFreshPerRaw = rep.SessionSwapFresh.PerSecond / rep.Raw.PerSecond
	}
	if rep.Swap.PerSecond > 0 {
		rep.SessionSwapPerSwap = rep.SessionSwap.PerSecond / rep.Swap.PerSecond
		rep.SessionSwapFreshPerSwap = rep.SessionSwapFresh.PerSecond / rep.Swap.PerSecond
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

// traced runs one phase of op with strace attached to p and returns p's
// system calls per operation.
func traced(ctx context.Context, cfg Config, p probe, op Op, d time.Duration) (Syscalls, error) {
	var t *tracer
	var terr error
	var ops atomic.Uint64
	counting := atomic.Bool{}
	res := measure(ctx, "strace "+p.name, cfg.Workers, cfg.Warmup, d, func(ctx context.Context, w int) error {
		err := op(ctx, w)
		if err == nil && counting.Load() {
			ops.Add(1)
		}
		return err
	}, &Window{
		// Operations are counted from the moment strace starts: one
		// finished during the attach has only some of its calls counted,
		// a handful in thousands.
		Begin: func() {
			counting.Store(true)
			t, terr = startStrace(cfg.Dir, strings.ReplaceAll(p.name, " ", "-"), p.pid)
		},
		End: func() { counting.Store(false) },
	})
	if terr != nil {
		return Syscalls{Process: p.name, Note: terr.Error()}, nil
	}
	sc := t.stop(p.name, ops.Load())
	if res.Errors > 0 {
		sc.Note = fmt.Sprintf("%d operations failed under strace (first: %s)", res.Errors, res.FirstError)
	}
	return sc, ctx.Err()
}

// echoServer is the echo server process.
type echoServer struct {
	addr, metrics string
	pid           int
	stop          func()
}

// startEcho runs the echo server process and waits until it accepts.
func startEcho(ctx context.Context, cfg Config) (*echoServer, error) {
	addr, err := freeAddr(echoIP)
	if err != nil {
		return nil, err
	}
	maddr, err := freeAddr(echoIP)
	if err != nil {
		return nil, err
	}
	if len(cfg.EchoCommand) == 0 {
		return nil, fmt.Errorf("no echo server command")
	}
	args := append(append([]string(nil), cfg.EchoCommand[1:]...), "--listen", addr, "--metrics-listen", maddr)
	cmd := exec.Command(cfg.EchoCommand[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start echo server: %w", err)
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
			return &echoServer{addr: addr, metrics: maddr, pid: cmd.Process.Pid, stop: stop}, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("echo server exited: %w", err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("echo server at %s not accepting: %w", addr, err)
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
	goalOpenPerBare       = 0.9
	imProtectionsMeasured = "none, auth, encrypt"
	imFramesOfTheIMPhase  = "IMPoll 79 B / IMReply 80 B (a 61-byte job name)"
	sessionSwapOfThePhase = "connect + SessionPing (encrypt only: ephemeral X25519) + SessionReply verified + keys derived + close"
)

// runSealed measures IM request/response under each protection (issue
// 12), with the MOM's im_security set to none so that it takes what the
// bench offers. (The session swaps are measured by Run, beside the raw
// and plain swap phases.)
func (rep *Report) runSealed(ctx context.Context, cfg Config, d *Daemons, holder *keys.Holder) error {
	if err := d.SetServer(ctx, "im_security", "none", "sessions", "im_security", "none"); err != nil {
		return err
	}
	// The three protections are measured in turn, imRounds times each,
	// each turn a third of the duration, and summed: a load that moves
	// during the phase weighs on all three alike.
	prots := []session.Protection{session.None, session.Auth, session.Encrypt}
	ops := make([]Op, len(prots))
	for i, p := range prots {
		op, closeIM, err := IMOp(d.MomIM, Sources(imBase+byte(p), cfg.Workers, 1), holder, p)
		if err != nil {
			return err
		}
		defer closeIM()
		ops[i] = op
	}
	rep.IM = map[string]Result{}
	turn := cfg.Duration / imRounds
	for r := range imRounds {
		for i, p := range prots {
			warm := time.Duration(0)
			if r == 0 {
				warm = cfg.Warmup
			}
			name := "IM request/response via momgate-mom, im_security " + p.String() + ": " + imFramesOfTheIMPhase
			rep.IM[p.String()] = addResults(rep.IM[p.String()], Measure(ctx, name, cfg.Workers, warm, turn, ops[i]))
		}
	}
	if none := rep.IM["none"].PerSecond; none > 0 {
		rep.IMAuthPerNone = rep.IM["auth"].PerSecond / none
		rep.IMEncryptPerNone = rep.IM["encrypt"].PerSecond / none
	}
	return ctx.Err()
}

// imRounds is how many turns each IM protection gets (runSealed).
const imRounds = 3

// addResults sums two measurements of the same operation.
func addResults(a, b Result) Result {
	if a.Name == "" {
		return b
	}
	a.Ops += b.Ops
	a.Errors += b.Errors
	a.Elapsed += b.Elapsed
	if a.FirstError == "" {
		a.FirstError = b.FirstError
	}
	if a.Elapsed > 0 {
		a.PerSecond = float64(a.Ops) / a.Elapsed.Seconds()
	}
	return a
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
	r.writeCosts(w)
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
	if mi := r.Micro; mi != nil {
		fmt.Fprintf(w, "  sealed frame open+verify per core (one goroutine) against the bare ChaCha20-Poly1305 open of the same size:\n")
		for _, p := range []string{"encrypt", "auth"} {
			for _, sz := range microSizes {
				k := p + "/" + sz.name
				fmt.Fprintf(w, "    %-14s open %12.0f /s   bare %12.0f /s   = %.2fx   (goal >= %gx: %s)\n", k,
					mi.Open[k].PerSecond, mi.BareOpen[k].PerSecond, mi.OpenPerBare[k], goalOpenPerBare, verdict(mi.OpenPerBare[k] >= goalOpenPerBare))
			}
		}
		fmt.Fprintf(w, "  X25519 floor: one scalar multiplication %.1f us per core (a swap with a peer never met: 1 at the MOM, 2 at the client; with keys reused: none)\n",
			mi.X25519.NsPerOp/1e3)
	}
	fmt.Fprintf(w, "  sealed sessions: session swap = %s\n", sessionSwapOfThePhase)
	line("session swaps, FS, keys reused (real MOM)", r.SessionSwap)
	line("session swaps, FS, fresh client key", r.SessionSwapFresh)
	fmt.Fprintf(w, "  session swaps (reused) / raw loopback   = %.2fx   (goal >= %gx: %s; MOMs that swap again within a key's 120 s: no X25519)\n",
		r.SessionSwapPerRaw, goalSessionSwapPerRaw, verdict(r.SessionSwapPerRaw >= goalSessionSwapPerRaw))
	fmt.Fprintf(w, "  session swaps (fresh) / raw loopback    = %.2fx   (goal >= %gx: %s; a peer never met: one X25519 at the MOM, a key pair and one at the client)\n",
		r.SessionSwapFreshPerRaw, goalSessionSwapPerRaw, verdict(r.SessionSwapFreshPerRaw >= goalSessionSwapPerRaw))
	fmt.Fprintf(w, "  session swaps / plain PING swaps        = %.2fx reused, %.2fx fresh   (no goal: what forward secrecy costs a new connection)\n",
		r.SessionSwapPerSwap, r.SessionSwapFreshPerSwap)
	fmt.Fprintf(w, "  IM request/response on one connection per client, %s; im_security %s:\n", imFramesOfTheIMPhase, imProtectionsMeasured)
	for _, p := range []string{"none", "auth", "encrypt"} {
		line("IM polls answered, "+p, r.IM[p])
	}
	fmt.Fprintf(w, "  IM auth / none                          = %.2fx   (goal >= %gx: %s)\n",
		r.IMAuthPerNone, goalIMSealedPerNone, verdict(r.IMAuthPerNone >= goalIMSealedPerNone))
	fmt.Fprintf(w, "  IM encrypt / none                       = %.2fx   (goal >= %gx: %s; 256 B and 64 KiB frames: BenchmarkIMRequestResponse)\n",
		r.IMEncryptPerNone, goalIMSealedPerNone, verdict(r.IMEncryptPerNone >= goalIMSealedPerNone))
}

// writeCosts prints the cost per operation of each process (Config.Cost,
// Config.Strace), raw beside swap.
func (r *Report) writeCosts(w io.Writer) {
	if len(r.RawCost) > 0 && len(r.SwapCost) > 0 {
		fmt.Fprintf(w, "  per operation, measured phases (CPU: /proc/PID/stat; allocations: Go runtime counters):\n")
		fmt.Fprintf(w, "    %-14s %-24s %10s %10s %12s %6s\n", "phase", "process", "CPU us", "allocs", "alloc bytes", "GCs")
		for _, ph := range []struct {
			name  string
			costs []Cost
		}{{"raw", r.RawCost}, {"swap", r.SwapCost}, {"session", r.SessionCost}, {"session fresh", r.SessionFreshCost}} {
			for _, c := range ph.costs {
				fmt.Fprintf(w, "    %-14s %-24s %10.1f %10.1f %12.0f %6.0f", ph.name, c.Process, c.CPUPerOp, c.AllocsPerOp, c.BytesPerOp, c.GCs)
				if c.Note != "" {
					fmt.Fprintf(w, "   (%s)", c.Note)
				}
				fmt.Fprintln(w)
			}
		}
	}
	for i, group := range [][]Syscalls{r.RawSyscalls, r.SwapSyscalls, r.SessionSyscalls} {
		phase := [...]string{"raw", "swap", "session swap"}[i]
		for _, s := range group {
			fmt.Fprintf(w, "  system calls per operation under strace -c, %s, %s: %.1f", phase, s.Process, s.PerOp)
			if s.Note != "" {
				fmt.Fprintf(w, " (%s)", s.Note)
			}
			var parts []string
			for _, c := range s.Calls {
				if c.PerOp >= 0.05 {
					parts = append(parts, fmt.Sprintf("%s %.2f", c.Name, c.PerOp))
				}
			}
			fmt.Fprintf(w, "\n    %s\n", strings.Join(parts, ", "))
		}
	}
}
