// Command momgate-bench runs the loopback benchmarks of `make bench-munge`:
// momgate PING swaps through a real MOM daemon and the raw loopback
// connection rate, beside MUNGE's rate measured by scripts/bench-munge.sh.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/tools/loopbench"
)

func main() {
	if err := app().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momgate-bench:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:  "momgate-bench",
		Usage: "loopback benchmarks: PING swaps through a real MOM vs raw connections (see make bench-munge)",
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "start a server and a MOM from --bin, measure raw and PING swap rates, print them with the ratios",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "bin", Usage: "directory of momgate-server, momgate-mom, momgate-qmgr (default: this binary's)"},
					&cli.IntFlag{Name: "workers", Value: runtime.NumCPU(), Usage: "parallel client workers"},
					&cli.DurationFlag{Name: "duration", Value: 5 * time.Second, Usage: "measured time per phase"},
					&cli.DurationFlag{Name: "warmup", Value: time.Second, Usage: "unmeasured time before each phase"},
					&cli.Float64Flag{Name: "munge-rate", Usage: "MUNGE credentials per second measured by remunge (0: not measured)"},
					&cli.StringFlag{Name: "munge-note", Usage: "how the MUNGE rate was measured, or why it was skipped"},
					&cli.Float64Flag{Name: "munge-conn-rate", Usage: "MUNGE-authenticated connections per second measured by munge-conn-client (0: not measured)"},
					&cli.StringFlag{Name: "munge-conn-note", Usage: "how the MUNGE connection rate was measured, or why it was skipped"},
					&cli.Float64Flag{Name: "raw-c-rate", Usage: "reference: connections per second of the same C client and server without MUNGE (0: not measured)"},
					&cli.StringFlag{Name: "raw-c-note", Usage: "how the C reference rate was measured, or why not"},
					&cli.BoolFlag{Name: "cost", Usage: "also measure CPU time and allocations per operation of the servers and the client"},
					&cli.BoolFlag{Name: "strace", Usage: "then count system calls per operation with strace -c (extra phases, rates meaningless under strace)"},
					&cli.DurationFlag{Name: "strace-duration", Value: 3 * time.Second, Usage: "measured time of each strace phase"},
					&cli.BoolFlag{Name: "json", Usage: "machine-readable JSON output"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("run takes no arguments, got %q", c.Args().Slice())
					}
					if c.Int("workers") < 1 || c.Int("workers") > 1024 {
						return fmt.Errorf("--workers %d: want 1..1024", c.Int("workers"))
					}
					if c.Duration("duration") <= 0 || c.Duration("warmup") < 0 {
						return fmt.Errorf("--duration must be > 0 and --warmup >= 0")
					}
					for _, f := range []string{"munge-rate", "munge-conn-rate", "raw-c-rate"} {
						if v := c.Float64(f); v < 0 || v != v {
							return fmt.Errorf("--%s %g: want >= 0", f, v)
						}
					}
					self, err := os.Executable()
					if err != nil {
						return err
					}
					bin := c.String("bin")
					if bin == "" {
						bin = filepath.Dir(self)
					}
					dir, err := os.MkdirTemp("", "momgate-bench-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(dir)
					ctx, stop := daemon.SignalContext()
					defer stop()
					rep, err := loopbench.Run(ctx, loopbench.Config{
						BinDir: bin, Dir: dir, Workers: c.Int("workers"), Warmup: c.Duration("warmup"),
						Duration: c.Duration("duration"), MungeRate: c.Float64("munge-rate"), MungeNote: c.String("munge-note"),
						MungeConnRate: c.Float64("munge-conn-rate"), MungeConnNote: c.String("munge-conn-note"),
						RawCRate: c.Float64("raw-c-rate"), RawCNote: c.String("raw-c-note"),
						EchoCommand: []string{self, "echo"}, Cost: c.Bool("cost"), Strace: c.Bool("strace"),
						StraceDuration: c.Duration("strace-duration"),
					})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						enc := json.NewEncoder(c.App.Writer)
						enc.SetIndent("", "  ")
						return enc.Encode(rep)
					}
					rep.WriteText(c.App.Writer)
					return nil
				},
			},
			{
				Name:      "echo",
				Usage:     "serve the raw exchange (read one frame, write one frame, wait for close) until SIGTERM",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Required: true, Usage: "IP:PORT"},
					&cli.StringFlag{Name: "metrics-listen", Usage: "serve the Go runtime's and the process's metrics at http://IP:PORT/metrics (loopback)"},
				},
				Action: func(c *cli.Context) error {
					ln, err := net.Listen("tcp", c.String("listen"))
					if err != nil {
						return err
					}
					ctx, stop := daemon.SignalContext()
					defer stop()
					if m := c.String("metrics-listen"); m != "" {
						_, serve, err := metrics.Bind(m, false, logrus.StandardLogger(), func() error { return nil })
						if err != nil {
							return err
						}
						go func() { _ = serve(ctx) }()
					}
					return loopbench.Echo(ctx, ln)
				},
			},
		},
	}
}
